using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KtConnect.Engine.Net;

/// <summary>Opens a stream to a host given by name or address, without resolving names itself.</summary>
public interface IHostDialer
{
    Task<Stream> DialAsync(string host, int port, CancellationToken cancellationToken);
}

/// <summary>A SOCKS or HTTP CONNECT request was malformed or not allowed.</summary>
public sealed class ProxyProtocolException : KtException
{
    public ProxyProtocolException(string message)
        : base("ProxyProtocolError", KtErrorCategory.ProtocolError, message)
    {
    }
}

public sealed record ProxyOptions
{
    /// <summary>Where to listen; must be a loopback address (the proxy has no other access control).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>When set (with <see cref="Password"/>), SOCKS5 requires RFC 1929 and HTTP CONNECT Basic auth.</summary>
    public string? Username { get; init; }

    public string? Password { get; init; }

    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan DialTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// SOCKS5 (RFC 1928: CONNECT with IPv4, IPv6 and domain names; RFC 1929 username/password) and HTTP CONNECT
/// on one loopback port, told apart by the first byte. Domain names go to the dialer unresolved so that
/// cluster names resolve on the cluster side. Owns its accept loop and every connection it relays.
/// </summary>
public sealed class Socks5Server : IAsyncDisposable
{
    private readonly IHostDialer _dialer;
    private readonly ProxyOptions _options;
    private readonly ILogger _logger;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _cts = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Task, bool> _connections = new();
    private Task? _acceptLoop;

    public Socks5Server(IHostDialer dialer, ProxyOptions? options = null, ILogger? logger = null)
    {
        _dialer = dialer ?? throw new ArgumentNullException(nameof(dialer));
        _options = options ?? new ProxyOptions();
        _logger = logger ?? NullLogger.Instance;
        if (!IPAddress.IsLoopback(_options.Listen.Address))
            throw new KtException("ProxyListenNotLoopback", KtErrorCategory.InvalidArgument,
                $"The proxy listens on loopback addresses only, not {_options.Listen.Address}: it has no access control of its own.",
                target: _options.Listen);
        if ((_options.Username is null) != (_options.Password is null))
            throw new KtException("ProxyCredentialsIncomplete", KtErrorCategory.InvalidArgument, "Give both a username and a password, or neither.");
        _listener = new Socket(_options.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public long ConnectionsAccepted;

    public void Start()
    {
        _listener.Bind(_options.Listen);
        _listener.Listen(1024);
        _acceptLoop = AcceptLoopAsync(_cts.Token);
    }

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _logger.LogDebug(e, "proxy accept failed");
                continue;
            }
            Interlocked.Increment(ref ConnectionsAccepted);
            client.NoDelay = true;
            var task = HandleAsync(client, cancellationToken);
            _connections.TryAdd(task, true);
            _ = task.ContinueWith(static (t, s) => ((System.Collections.Concurrent.ConcurrentDictionary<Task, bool>)s!).TryRemove(t, out _),
                _connections, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task HandleAsync(Socket client, CancellationToken cancellationToken)
    {
        await Task.Yield();
        using var _ = client;
        var stream = new HalfCloseNetworkStream(client);
        await using (stream.ConfigureAwait(false))
        {
            Stream? remote = null;
            byte[] leftover = [];
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                handshake.CancelAfter(_options.HandshakeTimeout);
                try
                {
                    var first = new byte[1];
                    await stream.ReadExactlyAsync(first, handshake.Token).ConfigureAwait(false);
                    if (first[0] == 0x05) remote = await Socks5Async(stream, handshake.Token).ConfigureAwait(false);
                    else if (first[0] == (byte)'C') (remote, leftover) = await HttpConnectAsync(stream, handshake.Token).ConfigureAwait(false);
                    else return;
                }
                catch (Exception e) when (e is IOException or EndOfStreamException or OperationCanceledException or ProxyProtocolException
                                          or SocketException)
                {
                    _logger.LogDebug(e, "proxy handshake failed");
                    return;
                }
            }
            if (remote is null) return;
            await using (remote.ConfigureAwait(false))
            {
                if (leftover.Length > 0) await remote.WriteAsync(leftover, cancellationToken).ConfigureAwait(false);
                await RelayAsync(stream, remote, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // ------------------------------------------------------------------ SOCKS5

    private async Task<Stream?> Socks5Async(Stream s, CancellationToken ct)
    {
        var head = new byte[1];
        await s.ReadExactlyAsync(head, ct).ConfigureAwait(false);
        var methods = new byte[head[0]];
        await s.ReadExactlyAsync(methods, ct).ConfigureAwait(false);
        var wanted = _options.Username is null ? (byte)0x00 : (byte)0x02;
        if (Array.IndexOf(methods, wanted) < 0)
        {
            await s.WriteAsync(new byte[] { 0x05, 0xFF }, ct).ConfigureAwait(false);
            return null;
        }
        await s.WriteAsync(new byte[] { 0x05, wanted }, ct).ConfigureAwait(false);
        if (wanted == 0x02 && !await UserPassAsync(s, ct).ConfigureAwait(false)) return null;

        var req = new byte[4];
        await s.ReadExactlyAsync(req, ct).ConfigureAwait(false);
        if (req[0] != 0x05) throw new ProxyProtocolException($"SOCKS request version {req[0]} is not 5.");
        string host;
        switch (req[3])
        {
            case 0x01:
            {
                var a = new byte[4];
                await s.ReadExactlyAsync(a, ct).ConfigureAwait(false);
                host = new IPAddress(a).ToString();
                break;
            }
            case 0x04:
            {
                var a = new byte[16];
                await s.ReadExactlyAsync(a, ct).ConfigureAwait(false);
                host = new IPAddress(a).ToString();
                break;
            }
            case 0x03:
            {
                var len = new byte[1];
                await s.ReadExactlyAsync(len, ct).ConfigureAwait(false);
                var name = new byte[len[0]];
                await s.ReadExactlyAsync(name, ct).ConfigureAwait(false);
                host = Encoding.ASCII.GetString(name);
                if (host.Length == 0 || host.Any(c => c <= ' ' || c > '~'))
                {
                    await ReplyAsync(s, 0x01, ct).ConfigureAwait(false);
                    return null;
                }
                break;
            }
            default:
                await ReplyAsync(s, 0x08, ct).ConfigureAwait(false);
                return null;
        }
        var portBytes = new byte[2];
        await s.ReadExactlyAsync(portBytes, ct).ConfigureAwait(false);
        var port = BinaryPrimitives.ReadUInt16BigEndian(portBytes);
        if (req[1] != 0x01)
        {
            await ReplyAsync(s, 0x07, ct).ConfigureAwait(false); // BIND and UDP ASSOCIATE are not supported
            return null;
        }
        Stream remote;
        try
        {
            remote = await DialAsync(host, port, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            _logger.LogDebug(e, "SOCKS dial {Host}:{Port} failed", host, port);
            await ReplyAsync(s, ReplyCode(e), ct).ConfigureAwait(false);
            return null;
        }
        await ReplyAsync(s, 0x00, ct).ConfigureAwait(false);
        return remote;
    }

    private async Task<bool> UserPassAsync(Stream s, CancellationToken ct)
    {
        var b = new byte[2];
        await s.ReadExactlyAsync(b, ct).ConfigureAwait(false);
        if (b[0] != 0x01) throw new ProxyProtocolException($"Username/password version {b[0]} is not 1.");
        var user = new byte[b[1]];
        await s.ReadExactlyAsync(user, ct).ConfigureAwait(false);
        await s.ReadExactlyAsync(b.AsMemory(0, 1), ct).ConfigureAwait(false);
        var pass = new byte[b[0]];
        await s.ReadExactlyAsync(pass, ct).ConfigureAwait(false);
        var ok = CredentialsMatch(user, pass);
        await s.WriteAsync(new byte[] { 0x01, ok ? (byte)0x00 : (byte)0x01 }, ct).ConfigureAwait(false);
        return ok;
    }

    private bool CredentialsMatch(ReadOnlySpan<byte> user, ReadOnlySpan<byte> pass) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(user), SHA256.HashData(Encoding.UTF8.GetBytes(_options.Username!)))
        & CryptographicOperations.FixedTimeEquals(SHA256.HashData(pass), SHA256.HashData(Encoding.UTF8.GetBytes(_options.Password!)));

    private static Task ReplyAsync(Stream s, byte code, CancellationToken ct) =>
        s.WriteAsync(new byte[] { 0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0 }, ct).AsTask();

    /// <summary>RFC 1928 reply code for a dial failure.</summary>
    public static byte ReplyCode(Exception e)
    {
        var se = e as SocketException ?? e.InnerException as SocketException;
        return se?.SocketErrorCode switch
        {
            SocketError.ConnectionRefused => 0x05,
            SocketError.NetworkUnreachable or SocketError.NetworkDown => 0x03,
            SocketError.HostUnreachable or SocketError.HostNotFound or SocketError.HostDown or SocketError.TryAgain or SocketError.NoData => 0x04,
            SocketError.TimedOut => 0x06,
            _ => e is OperationCanceledException or TimeoutException ? (byte)0x06 : (byte)0x01,
        };
    }

    // ------------------------------------------------------------------ HTTP CONNECT

    private async Task<(Stream?, byte[])> HttpConnectAsync(Stream s, CancellationToken ct)
    {
        var buffer = new byte[8192];
        buffer[0] = (byte)'C';
        var length = 1;
        int end;
        while ((end = IndexOfHeaderEnd(buffer.AsSpan(0, length))) < 0)
        {
            if (length == buffer.Length) throw new ProxyProtocolException("HTTP CONNECT request headers are larger than 8 KiB.");
            var n = await s.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false);
            if (n == 0) throw new EndOfStreamException();
            length += n;
        }
        var head = Encoding.ASCII.GetString(buffer, 0, end);
        var leftover = buffer.AsSpan(end + 4, length - end - 4).ToArray();
        var lines = head.Split("\r\n");
        var parts = lines[0].Split(' ');
        if (parts.Length != 3 || parts[0] != "CONNECT" || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            await HttpReplyAsync(s, "405 Method Not Allowed", ct).ConfigureAwait(false);
            return (null, []);
        }
        if (!TrySplitHostPort(parts[1], out var host, out var port))
        {
            await HttpReplyAsync(s, "400 Bad Request", ct).ConfigureAwait(false);
            return (null, []);
        }
        if (_options.Username is not null && !HttpAuthorized(lines))
        {
            await HttpReplyAsync(s, "407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"kt\"", ct).ConfigureAwait(false);
            return (null, []);
        }
        Stream remote;
        try
        {
            remote = await DialAsync(host, port, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            _logger.LogDebug(e, "HTTP CONNECT dial {Host}:{Port} failed", host, port);
            await HttpReplyAsync(s, ReplyCode(e) == 0x06 ? "504 Gateway Timeout" : "502 Bad Gateway", ct).ConfigureAwait(false);
            return (null, []);
        }
        await s.WriteAsync("HTTP/1.1 200 Connection established\r\n\r\n"u8.ToArray(), ct).ConfigureAwait(false);
        return (remote, leftover);
    }

    private bool HttpAuthorized(string[] lines)
    {
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || !line[..colon].Trim().Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase)) continue;
            var value = line[(colon + 1)..].Trim();
            if (!value.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
            byte[] decoded;
            try
            {
                decoded = Convert.FromBase64String(value[6..].Trim());
            }
            catch (FormatException)
            {
                return false;
            }
            var sep = Array.IndexOf(decoded, (byte)':');
            return sep >= 0 && CredentialsMatch(decoded.AsSpan(0, sep), decoded.AsSpan(sep + 1));
        }
        return false;
    }

    /// <summary>Splits "host:port", "[v6]:port"; false when the port is missing or invalid.</summary>
    public static bool TrySplitHostPort(string authority, out string host, out int port)
    {
        ArgumentNullException.ThrowIfNull(authority);
        host = "";
        port = 0;
        int colon;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= authority.Length || authority[close + 1] != ':') return false;
            host = authority[1..close];
            colon = close + 1;
        }
        else
        {
            colon = authority.LastIndexOf(':');
            if (colon <= 0) return false;
            host = authority[..colon];
            if (host.Contains(':', StringComparison.Ordinal)) return false;
        }
        return int.TryParse(authority.AsSpan(colon + 1), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out port) && port is > 0 and < 65536 && host.Length > 0;
    }

    private static int IndexOfHeaderEnd(ReadOnlySpan<byte> b) => b.IndexOf("\r\n\r\n"u8);

    private static Task HttpReplyAsync(Stream s, string status, CancellationToken ct) =>
        s.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), ct).AsTask();

    // ------------------------------------------------------------------ relay

    private async Task<Stream> DialAsync(string host, int port, CancellationToken ct)
    {
        using var dial = CancellationTokenSource.CreateLinkedTokenSource(ct);
        dial.CancelAfter(_options.DialTimeout);
        return await _dialer.DialAsync(host, port, dial.Token).ConfigureAwait(false);
    }

    /// <summary>The largest buffer a relay direction grows to (see <see cref="RelayBufferSize"/>).</summary>
    public const int MaxRelayBuffer = 256 * 1024;

    /// <summary>Copies both ways with half-close; an error on either side ends both.</summary>
    public static async Task RelayAsync(Stream a, Stream b, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await Task.WhenAll(CopyAsync(a, b, cts), CopyAsync(b, a, cts)).ConfigureAwait(false);
    }

    private static async Task CopyAsync(Stream from, Stream to, CancellationTokenSource cts)
    {
        try
        {
            var size = new RelayBufferSize(MaxRelayBuffer);
            while (true)
            {
                // Wait for data without a buffer, so idle connections pin no memory.
                await from.ReadAsync(Memory<byte>.Empty, cts.Token).ConfigureAwait(false);
                var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(size.Next);
                try
                {
                    var n = await from.ReadAsync(buffer.AsMemory(0, size.Next), cts.Token).ConfigureAwait(false);
                    if (n == 0) break;
                    await to.WriteAsync(buffer.AsMemory(0, n), cts.Token).ConfigureAwait(false);
                    size.Read(n);
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }
            }
            if (to is IHalfCloseStream half) await half.ShutdownWriteAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or SocketException)
        {
            await cts.CancelAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_connections.Keys).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
        _cts.Dispose();
    }
}
