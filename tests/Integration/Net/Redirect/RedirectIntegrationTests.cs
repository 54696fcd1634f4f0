using System.Net;
using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.Linux;
using KtConnect.Engine.Net.Redirect;
using KtConnect.KubeSim.Host;

namespace KtConnect.Tests.Integration.Net.Redirect;

/// <summary>
/// Redirect mode in a laptop namespace: nftables (or iptables) REDIRECTs the cluster ranges to a listener
/// created inside that namespace; the listener reads SO_ORIGINAL_DST and dials from this process.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class RedirectIntegrationTests
{
    [LinuxRootTheory("python3", "nft")]
    [InlineData(FirewallBackend.Nftables)]
    [InlineData(FirewallBackend.Iptables)]
    public async Task RedirectedConnections_ReachTheOriginalDestination_ExcludesHonoured_RulesRemoved(FirewallBackend backend)
    {
        if (backend == FirewallBackend.Iptables && !ProcessRunner.IsOnPath("iptables")) return;
        await using var laptop = await NetNs.CreateAsync("ktnet-");
        // The laptop needs a route and a source address for the cluster ranges; the nat hook then redirects.
        await laptop.ExecAsync(default, "ip", "addr", "add", "198.18.0.1/32", "dev", "lo");
        await laptop.ExecAsync(default, "ip", "-6", "addr", "add", "fd00:198::1/128", "dev", "lo");
        await laptop.ExecAsync(default, "ip", "route", "add", "10.96.0.0/16", "dev", "lo", "src", "198.18.0.1");
        await laptop.ExecAsync(default, "ip", "-6", "route", "add", "fd00:96::/64", "dev", "lo", "src", "fd00:198::1");
        var script = Path.Combine(Path.GetTempPath(), $"ktnet-redirect-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(script, Client);
        var dir = Path.Combine(Path.GetTempPath(), "ktnet-journal-" + Guid.NewGuid().ToString("N"));
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        using var cts = new CancellationTokenSource();
        var echoLoop = EchoAsync(echo, cts.Token);
        try
        {
            var listenerSocket = NetworkNamespace.Run(NetworkNamespace.PathOf(laptop.Name), () =>
            {
                var s = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
                s.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
                s.Listen(128);
                return s;
            });
            var echoPort = ((IPEndPoint)echo.LocalEndpoint).Port;
            var dialed = new List<IPEndPoint>();
            var dialer = new RecordingDialer(dialed, echoPort);
            await using var listener = new TransparentListener(listenerSocket, dialer);
            listener.Start();
            var journal = new ChangeJournal(dir);
            var table = "ktconnect_" + Guid.NewGuid().ToString("N")[..8];
            var rule = new RedirectRule([IPNetwork.Parse("10.96.0.0/16"), IPNetwork.Parse("fd00:96::/64")], [IPNetwork.Parse("10.96.0.99/32")],
                listener.LocalEndPoint.Port);
            await using (var redirect = await FirewallRedirect.ApplyAsync(backend, table, rule, journal, laptop.Name))
            {
                Assert.Single(journal.ReadAll());
                var r = await laptop.RunAsync(["python3", script, "10.96.0.10", "8080"], timeout: TimeSpan.FromSeconds(60));
                Assert.Equal("DATA hello", r.StandardOutput.Trim());
                r = await laptop.RunAsync(["python3", script, "fd00:96::7", "8443"], timeout: TimeSpan.FromSeconds(60));
                Assert.Equal("DATA hello", r.StandardOutput.Trim());
                lock (dialed)
                {
                    Assert.Contains(new IPEndPoint(IPAddress.Parse("10.96.0.10"), 8080), dialed);
                    Assert.Contains(new IPEndPoint(IPAddress.Parse("fd00:96::7"), 8443), dialed);
                }
                // Excluded: not redirected, so nothing listens there.
                r = await laptop.RunAsync(["python3", script, "10.96.0.99", "8080", "1"], timeout: TimeSpan.FromSeconds(60));
                Assert.NotEqual("DATA hello", r.StandardOutput.Trim());
                lock (dialed) Assert.Equal(2, dialed.Count);
            }
            Assert.Empty(journal.ReadAll());
            if (backend == FirewallBackend.Nftables)
            {
                var tables = await laptop.ExecAsync(default, "nft", "list", "tables");
                Assert.DoesNotContain(table, tables.StandardOutput, StringComparison.Ordinal);
            }
            else
            {
                var rules = await laptop.ExecAsync(default, "iptables", "-t", "nat", "-S");
                Assert.DoesNotContain(table.ToUpperInvariant(), rules.StandardOutput, StringComparison.Ordinal);
            }
            var after = await laptop.RunAsync(["python3", script, "10.96.0.10", "8080", "1"], timeout: TimeSpan.FromSeconds(60));
            Assert.NotEqual("DATA hello", after.StandardOutput.Trim());
        }
        finally
        {
            await cts.CancelAsync();
            echo.Stop();
            await echoLoop;
            File.Delete(script);
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private sealed class RecordingDialer(List<IPEndPoint> dialed, int echoPort) : IFlowDialer
    {
        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
        {
            lock (dialed) dialed.Add(destination);
            return new TcpFlowDialer().DialAsync(new IPEndPoint(IPAddress.Loopback, echoPort), cancellationToken);
        }
    }

    private static async Task EchoAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            TcpClient c;
            try
            {
                c = await listener.AcceptTcpClientAsync(ct);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (c)
                {
                    var s = c.GetStream();
                    var b = new byte[1024];
                    int n;
                    try
                    {
                        while ((n = await s.ReadAsync(b, ct)) > 0) await s.WriteAsync(b.AsMemory(0, n), ct);
                    }
                    catch (Exception e) when (e is IOException or OperationCanceledException)
                    {
                    }
                }
            }, ct);
        }
    }

    private const string Client = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[3]) if len(sys.argv) > 3 else 10)
try:
    s.connect((host, port))
    s.sendall(b'hello')
    print('DATA ' + s.recv(100).decode())
except Exception as e:
    print('ERROR %s' % type(e).__name__)
""";
}
