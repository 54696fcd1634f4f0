using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using KtConnect.Engine.Net.Linux;
using KtConnect.Engine.Net.MacOS;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KtConnect.Engine.Net.Redirect;

/// <summary>
/// Accepts connections the firewall redirected to it, reads where each was going (SO_ORIGINAL_DST /
/// IP6T_SO_ORIGINAL_DST), dials that destination and relays. A connection made to the listener directly
/// (original destination = the listener itself) is closed: it was not redirected.
/// On macOS the original destination comes from pf (<see cref="PfNatLookup"/>, DIOCNATLOOK on /dev/pf).
/// </summary>
[SupportedOSPlatform("linux")]
[SupportedOSPlatform("macos")]
public sealed class TransparentListener : IAsyncDisposable
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;
    private const int SoOriginalDst = 80;

    private readonly Socket _listener;
    private readonly IFlowDialer _dialer;
    private readonly ILogger _logger;
    private readonly Func<Socket, IPEndPoint> _originalDestination;
    private readonly IDisposable? _pf;
    private readonly CancellationTokenSource _cts = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Task, bool> _connections = new();
    private Task? _loop;

    /// <summary>
    /// Serves <paramref name="listener"/>: a bound, listening socket created in the namespace the redirect lives in.
    /// <paramref name="originalDestination"/> replaces the platform's lookup (SO_ORIGINAL_DST on Linux, pf's
    /// DIOCNATLOOK on macOS); it must throw a <see cref="KtException"/> for a connection it knows nothing of.
    /// </summary>
    public TransparentListener(Socket listener, IFlowDialer dialer, ILogger? logger = null, Func<Socket, IPEndPoint>? originalDestination = null)
    {
        _listener = listener ?? throw new ArgumentNullException(nameof(listener));
        _dialer = dialer ?? throw new ArgumentNullException(nameof(dialer));
        _logger = logger ?? NullLogger.Instance;
        if (originalDestination is not null)
        {
            _originalDestination = originalDestination;
        }
        else if (OperatingSystem.IsMacOS())
        {
            var pf = PfNatLookup.Open();
            _pf = pf;
            _originalDestination = pf.Lookup;
        }
        else if (OperatingSystem.IsLinux())
        {
            _originalDestination = GetOriginalDestination;
        }
        else
        {
            throw new PlatformNotSupportedException("Redirect mode needs Linux (netfilter) or macOS (pf).");
        }
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public long Relayed;

    public void Start() => _loop = AcceptLoopAsync(_cts.Token);

    private async Task AcceptLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }
            var t = HandleAsync(s, ct);
            _connections.TryAdd(t, true);
            _ = t.ContinueWith(static (x, d) => ((System.Collections.Concurrent.ConcurrentDictionary<Task, bool>)d!).TryRemove(x, out _), _connections,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task HandleAsync(Socket client, CancellationToken ct)
    {
        await Task.Yield();
        await using var a = new HalfCloseNetworkStream(client);
        IPEndPoint original;
        try
        {
            original = _originalDestination(client);
        }
        catch (KtException e)
        {
            _logger.LogDebug(e, "no original destination");
            return;
        }
        if (IsListener(original)) return;
        Stream b;
        try
        {
            b = await _dialer.DialAsync(original, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _logger.LogDebug(e, "dial {Destination} failed", original);
            // Reset rather than close, so the client sees a refusal and not an empty reply.
            client.LingerState = new LingerOption(true, 0);
            return;
        }
        Interlocked.Increment(ref Relayed);
        await using (b.ConfigureAwait(false))
        {
            await Socks5Server.RelayAsync(a, b, ct).ConfigureAwait(false);
        }
    }

    /// <summary>True when the "original" destination is this listener: the connection was made to it directly.</summary>
    private bool IsListener(IPEndPoint original)
    {
        var local = LocalEndPoint;
        if (original.Port != local.Port) return false;
        var a = original.Address.IsIPv4MappedToIPv6 ? original.Address.MapToIPv4() : original.Address;
        var b = local.Address.IsIPv4MappedToIPv6 ? local.Address.MapToIPv4() : local.Address;
        if (a.Equals(b)) return true;
        return (b.Equals(IPAddress.Any) || b.Equals(IPAddress.IPv6Any)) && IPAddress.IsLoopback(a);
    }

    /// <summary>The destination the client connected to before the kernel redirected it (Linux netfilter).</summary>
    [SupportedOSPlatform("linux")]
    public static unsafe IPEndPoint GetOriginalDestination(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var v6 = socket.AddressFamily == AddressFamily.InterNetworkV6 && !((IPEndPoint)socket.LocalEndPoint!).Address.IsIPv4MappedToIPv6;
        var buf = stackalloc byte[28];
        var len = 28;
        var rc = LinuxNative.GetSockOpt(socket.Handle, v6 ? SolIpv6 : SolIp, SoOriginalDst, buf, &len);
        if (rc != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new KtException("OriginalDestinationUnavailable", KtErrorCategory.ProtocolError,
                $"getsockopt(SO_ORIGINAL_DST) failed: {LinuxNative.Error(errno)}.");
        }
        return ParseSockAddr(new ReadOnlySpan<byte>(buf, len));
    }

    /// <summary>Decodes a Linux sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes).</summary>
    public static IPEndPoint ParseSockAddr(ReadOnlySpan<byte> sa)
    {
        if (sa.Length < 8) throw new KtException("OriginalDestinationUnavailable", KtErrorCategory.ProtocolError, "sockaddr too short.");
        var family = BinaryPrimitives.ReadUInt16LittleEndian(sa);
        var port = BinaryPrimitives.ReadUInt16BigEndian(sa[2..]);
        if (family == 2) return new IPEndPoint(new IPAddress(sa.Slice(4, 4)), port);
        if (family == 10 && sa.Length >= 24)
        {
            var scope = sa.Length >= 28 ? BinaryPrimitives.ReadUInt32LittleEndian(sa[24..]) : 0;
            return new IPEndPoint(new IPAddress(sa.Slice(8, 16), scope), port);
        }
        throw new KtException("OriginalDestinationUnavailable", KtErrorCategory.ProtocolError, $"Unknown address family {family}.");
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        if (_loop is not null) await _loop.ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_connections.Keys).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
        _cts.Dispose();
        _pf?.Dispose();
    }
}
