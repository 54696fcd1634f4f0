using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Integration.Net;

/// <summary>SOCKS5 and HTTP CONNECT with curl as the real client.</summary>
public sealed class ProxyCurlTests : IAsyncLifetime
{
    private readonly Socket _http = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _cts = new();
    private Task? _loop;

    private int HttpPort => ((IPEndPoint)_http.LocalEndPoint!).Port;

    public Task InitializeAsync()
    {
        _http.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _http.Listen(64);
        _loop = Task.Run(async () =>
        {
            while (true)
            {
                Socket s;
                try
                {
                    s = await _http.AcceptAsync(_cts.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
                _ = Task.Run(async () =>
                {
                    using (s)
                    {
                        var buf = new byte[8192];
                        var req = new StringBuilder();
                        while (!req.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                        {
                            var n = await s.ReceiveAsync(buf);
                            if (n == 0) return;
                            req.Append(Encoding.ASCII.GetString(buf, 0, n));
                        }
                        var host = req.ToString().Split("\r\n").First(l => l.StartsWith("Host:", StringComparison.OrdinalIgnoreCase))[5..].Trim();
                        var body = "hello " + host;
                        await s.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
                        s.Shutdown(SocketShutdown.Send);
                    }
                });
            }
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _cts.CancelAsync();
        _http.Dispose();
        if (_loop is not null) await _loop;
    }

    /// <summary>Maps every name to the test server and records what it was asked for.</summary>
    private sealed class MappingDialer : IHostDialer
    {
        public List<string> Hosts { get; } = [];

        public Task<Stream> DialAsync(string host, int port, CancellationToken cancellationToken)
        {
            lock (Hosts) Hosts.Add(host);
            return new TcpFlowDialer().DialAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        }
    }

    [LinuxRootFact("curl")]
    public async Task CurlSocks5Hostname_SendsTheNameUnresolved()
    {
        var dialer = new MappingDialer();
        await using var proxy = new Socks5Server(dialer);
        proxy.Start();
        var r = await ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "20", "--socks5-hostname", $"127.0.0.1:{proxy.LocalEndPoint.Port}",
            $"http://orders.dev.svc.cluster.local:{HttpPort}/"]);
        Assert.Equal($"hello orders.dev.svc.cluster.local:{HttpPort}", r.StandardOutput);
        Assert.Equal("orders.dev.svc.cluster.local", Assert.Single(dialer.Hosts));
    }

    [LinuxRootFact("curl")]
    public async Task CurlSocks5_WithUsernameAndPassword()
    {
        await using var proxy = new Socks5Server(new MappingDialer(), new ProxyOptions { Username = "kt", Password = "s3cret" });
        proxy.Start();
        var ok = await ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "20", "-x", $"socks5h://kt:s3cret@127.0.0.1:{proxy.LocalEndPoint.Port}",
            $"http://svc:{HttpPort}/"]);
        Assert.Equal($"hello svc:{HttpPort}", ok.StandardOutput);
        var bad = await ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "20", "-x", $"socks5h://kt:wrong@127.0.0.1:{proxy.LocalEndPoint.Port}",
            $"http://svc:{HttpPort}/"]);
        Assert.False(bad.Succeeded);
    }

    [LinuxRootFact("curl")]
    public async Task CurlHttpConnectTunnel_Works()
    {
        var dialer = new MappingDialer();
        await using var proxy = new Socks5Server(dialer);
        proxy.Start();
        var r = await ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "20", "-p", "-x", $"http://127.0.0.1:{proxy.LocalEndPoint.Port}",
            $"http://web.dev:{HttpPort}/"]);
        Assert.Equal($"hello web.dev:{HttpPort}", r.StandardOutput);
        Assert.Equal("web.dev", Assert.Single(dialer.Hosts));
    }
}
