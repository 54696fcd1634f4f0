using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KtConnect.Tests.Unit.Kube.Config;

/// <summary>
/// A minimal forward proxy on 127.0.0.1:0 speaking HTTP CONNECT or SOCKS5 (RFC 1928, with RFC 1929
/// username/password when the client offers it). Records what each client asked for.
/// </summary>
internal sealed class TestProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;

    public TestProxy()
    {
        _listener.Start();
        _loop = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>"CONNECT host:port" or "SOCKS5 host:port user=..." per tunnel.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    private async Task AcceptLoopAsync()
    {
        var tunnels = new List<Task>();
        try
        {
            while (true) tunnels.Add(ServeAsync(await _listener.AcceptTcpClientAsync(_cts.Token)));
        }
        catch (OperationCanceledException)
        {
        }
        catch (InvalidOperationException) when (_cts.IsCancellationRequested)
        {
            // Stopped between two accepts ("Not listening").
        }
        await Task.WhenAll(tunnels);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            var ct = _cts.Token;
            var s = client.GetStream();
            try
            {
                var first = new byte[1];
                await s.ReadExactlyAsync(first, ct);
                TcpClient upstream;
                if (first[0] == 5)
                {
                    upstream = await Socks5Async(s, ct);
                }
                else
                {
                    var header = new StringBuilder(((char)first[0]).ToString());
                    var one = new byte[1];
                    while (!header.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
                    {
                        await s.ReadExactlyAsync(one, ct);
                        header.Append((char)one[0]);
                    }
                    var target = header.ToString().Split(' ')[1];
                    Requests.Enqueue("CONNECT " + target);
                    var colon = target.LastIndexOf(':');
                    upstream = new TcpClient();
                    await upstream.ConnectAsync(target[..colon].Trim('[', ']'), int.Parse(target[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), ct);
                    await s.WriteAsync("HTTP/1.1 200 Connection established\r\n\r\n"u8.ToArray(), ct);
                }
                using (upstream)
                {
                    var u = upstream.GetStream();
                    var a = s.CopyToAsync(u, ct);
                    var b = u.CopyToAsync(s, ct);
                    await Task.WhenAny(a, b);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or EndOfStreamException)
            {
            }
        }
    }

    private async Task<TcpClient> Socks5Async(NetworkStream s, CancellationToken ct)
    {
        var n = new byte[1];
        await s.ReadExactlyAsync(n, ct);
        var methods = new byte[n[0]];
        await s.ReadExactlyAsync(methods, ct);
        string? user = null;
        if (methods.Contains((byte)2))
        {
            await s.WriteAsync(new byte[] { 5, 2 }, ct);
            var head = new byte[2];
            await s.ReadExactlyAsync(head, ct); // version 1, username length
            var u = new byte[head[1]];
            await s.ReadExactlyAsync(u, ct);
            await s.ReadExactlyAsync(n, ct);
            var p = new byte[n[0]];
            await s.ReadExactlyAsync(p, ct);
            user = Encoding.UTF8.GetString(u) + ":" + Encoding.UTF8.GetString(p);
            await s.WriteAsync(new byte[] { 1, 0 }, ct);
        }
        else
        {
            await s.WriteAsync(new byte[] { 5, 0 }, ct);
        }
        var req = new byte[4];
        await s.ReadExactlyAsync(req, ct); // VER CMD RSV ATYP
        string host;
        switch (req[3])
        {
            case 1:
                var v4 = new byte[4];
                await s.ReadExactlyAsync(v4, ct);
                host = new IPAddress(v4).ToString();
                break;
            case 4:
                var v6 = new byte[16];
                await s.ReadExactlyAsync(v6, ct);
                host = new IPAddress(v6).ToString();
                break;
            default:
                await s.ReadExactlyAsync(n, ct);
                var name = new byte[n[0]];
                await s.ReadExactlyAsync(name, ct);
                host = Encoding.ASCII.GetString(name);
                break;
        }
        var portBytes = new byte[2];
        await s.ReadExactlyAsync(portBytes, ct);
        var port = BinaryPrimitives.ReadUInt16BigEndian(portBytes);
        Requests.Enqueue($"SOCKS5 {host}:{port}" + (user is null ? "" : " user=" + user));
        var upstream = new TcpClient();
        await upstream.ConnectAsync(host, port, ct);
        await s.WriteAsync(new byte[] { 5, 0, 0, 1, 0, 0, 0, 0, 0, 0 }, ct);
        return upstream;
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        await _loop;
        _cts.Dispose();
    }
}
