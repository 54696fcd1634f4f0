using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Net;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Integration.Cluster.Tunnel;

namespace KtConnect.Tests.Integration.Sessions.Tunnel;

/// <summary>The adapters in the Net and Dns areas' entry points: SOCKS mode with curl, split DNS with dig and dnsmasq.</summary>
public sealed class TunnelModesTests
{
    [LinuxRootFact("sshd", "ssh-keygen", "curl")]
    public async Task Socks_mode_through_the_shadow_link_serves_curl_and_passes_names_unresolved_to_sshd()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var http = new TinyHttpServer("hello through the shadow");
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options());
        var recorder = new RecordingDialer(new SshFlowDialer(link));
        await using var socks = new Socks5Server(recorder, new ProxyOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0) });
        socks.Start();
        var proxy = $"127.0.0.1:{socks.LocalEndPoint.Port}";

        var byAddress = await CurlAsync("--socks5-hostname", proxy, $"http://127.0.0.1:{http.Port}/a");
        Assert.Equal(0, byAddress.ExitCode);
        Assert.Equal("hello through the shadow", byAddress.StandardOutput);

        var byName = await CurlAsync("--socks5-hostname", proxy, $"http://localhost:{http.Port}/b");
        Assert.Equal(0, byName.ExitCode);
        Assert.Equal("hello through the shadow", byName.StandardOutput);
        // The name went to the dialer, and from there into the direct-tcpip request, unresolved.
        Assert.Contains(("localhost", http.Port), recorder.Dialed);
        await Wait.UntilAsync(() => lab.Sshd.Log.Contains($"target localhost port {http.Port}", StringComparison.Ordinal),
            "sshd's log of the direct-tcpip to localhost");
        Assert.Equal(["/a", "/b"], http.Paths.ToArray());

        // A refused destination is a SOCKS "connection refused" (curl reports it; exit code 97 = CURLE_PROXY).
        var refused = await CurlAsync("--socks5-hostname", proxy, $"http://127.0.0.1:{ShadowLab.FreeTcpPort()}/");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("(5)", refused.StandardError + refused.StandardOutput, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "ssh-keygen", "dnsmasq", "dig")]
    public async Task Split_dns_answers_cluster_names_through_the_shadow_link()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options());
        var (dnsmasq, dnsPort) = await StartDnsmasqAsync(lab.Sshd.Directory);
        try
        {
            await using var server = SplitDnsServer.Start(new SplitDnsOptions { Namespace = "dev" }, new SshClusterDnsTransport(link, "127.0.0.1", dnsPort));
            var dig = await ProcessRunner.RunAsync("dig", ["+short", "+time=3", "+tries=2", "@127.0.0.1", "-p", server.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "orders.dev.svc.cluster.local", "A"]);
            Assert.Equal(0, dig.ExitCode);
            Assert.Equal("10.96.7.7", dig.StandardOutput.Trim());
            // The short name of the connected namespace takes the same path (search list).
            var shortName = await ProcessRunner.RunAsync("dig", ["+short", "+time=3", "+tries=2", "@127.0.0.1", "-p", server.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "orders", "A"]);
            Assert.Equal("10.96.7.7", shortName.StandardOutput.Trim());
        }
        finally
        {
            if (!dnsmasq.HasExited) dnsmasq.Kill();
            await dnsmasq.WaitForExitAsync();
            dnsmasq.Dispose();
        }
    }

    private static async Task<(Process Process, int Port)> StartDnsmasqAsync(string dir)
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = ShadowLab.FreeTcpPort();
            var psi = new ProcessStartInfo("dnsmasq") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[]
                     {
                         "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--log-facility=-", "--user=root",
                         "--pid-file=" + Path.Combine(dir, "dnsmasq.pid"), "--port=" + port, "--listen-address=127.0.0.1", "--bind-interfaces",
                         "--host-record=orders.dev.svc.cluster.local,10.96.7.7",
                     })
            {
                psi.ArgumentList.Add(a);
            }
            var p = Process.Start(psi)!;
            p.BeginErrorReadLine();
            p.BeginOutputReadLine();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!p.HasExited && DateTime.UtcNow < deadline)
            {
                try
                {
                    using var c = new TcpClient();
                    await c.ConnectAsync(IPAddress.Loopback, port);
                    return (p, port);
                }
                catch (SocketException)
                {
                    await Task.Delay(50);
                }
            }
            if (!p.HasExited) p.Kill();
            await p.WaitForExitAsync();
            p.Dispose();
            // The UDP port may have been taken; pick another.
            if (attempt == 4) throw new InvalidOperationException("dnsmasq did not start");
        }
    }

    private static async Task<ProcessResult> CurlAsync(params string[] args) =>
        await ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "20", .. args]);

    private sealed class RecordingDialer(IHostDialer inner) : IHostDialer
    {
        public ConcurrentQueue<(string Host, int Port)> Dialed { get; } = new();

        public Task<Stream> DialAsync(string host, int port, CancellationToken cancellationToken)
        {
            Dialed.Enqueue((host, port));
            return inner.DialAsync(host, port, cancellationToken);
        }
    }
}

/// <summary>Answers every HTTP request with a fixed body and records the paths.</summary>
internal sealed class TinyHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;
    private readonly byte[] _body;

    public TinyHttpServer(string body)
    {
        _body = Encoding.UTF8.GetBytes(body);
        _listener.Start();
        _loop = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public ConcurrentQueue<string> Paths { get; } = new();

    private async Task AcceptAsync()
    {
        var conns = new List<Task>();
        try
        {
            while (true)
            {
                var c = await _listener.AcceptTcpClientAsync(_cts.Token);
                conns.Add(ServeAsync(c));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
        await Task.WhenAll(conns);
    }

    private async Task ServeAsync(TcpClient c)
    {
        using (c)
        {
            try
            {
                var s = c.GetStream();
                var buf = new byte[8192];
                var have = 0;
                while (have < buf.Length)
                {
                    var n = await s.ReadAsync(buf.AsMemory(have), _cts.Token);
                    if (n == 0) return;
                    have += n;
                    var text = Encoding.ASCII.GetString(buf, 0, have);
                    if (!text.Contains("\r\n\r\n", StringComparison.Ordinal)) continue;
                    Paths.Enqueue(text.Split(' ')[1]);
                    var head = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {_body.Length}\r\nConnection: close\r\n\r\n");
                    await s.WriteAsync(head, _cts.Token);
                    await s.WriteAsync(_body, _cts.Token);
                    return;
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        await _loop;
        _cts.Dispose();
    }
}
