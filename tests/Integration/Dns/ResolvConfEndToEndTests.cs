using System.Net;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Dns;
using KtConnect.KubeSim.Host;

namespace KtConnect.Tests.Integration.Dns;

/// <summary>
/// The resolv.conf path end to end: the machine's original resolv.conf (in a temporary root) names the upstream
/// dnsmasq; the configurator discovers it as the server's upstream and rewrites the file; glibc in a network
/// namespace reads the rewritten file (ip netns exec mounts /etc/netns/NAME/resolv.conf) and resolves cluster,
/// LAN and short names; the revert leaves the original byte for byte.
/// </summary>
public sealed class ResolvConfEndToEndTests(DnsPeers peers) : IClassFixture<DnsPeers>
{
    [LinuxRootFact("dnsmasq", "getent")]
    public async Task A_namespace_using_the_rewritten_resolv_conf_resolves_split()
    {
        var root = Directory.CreateTempSubdirectory("ktdns-root-");
        await using var client = await NetNs.CreateAsync(DnsPeers.Prefix);
        var etc = Path.Combine("/etc/netns", client.Name);
        try
        {
            Directory.CreateDirectory(Path.Combine(root.FullName, "etc"));
            var original = Encoding.ASCII.GetBytes($"# from DHCP\nnameserver {peers.Upstream.Address}\nsearch corp.example\noptions timeout:5 attempts:1\n");
            var resolvConf = Path.Combine(root.FullName, "etc", "resolv.conf");
            await File.WriteAllBytesAsync(resolvConf, original);
            var journal = new ChangeJournal(Path.Combine(root.FullName, "journal"));
            var configurator = new ResolvConfConfigurator(new DnsSystemPaths(root.FullName), journal);

            var (b1, b2) = (Random.Shared.Next(200, 250), Random.Shared.Next(0, 256));
            await client.LinkAsync(null, $"10.{b1}.{b2}.14/30", $"10.{b1}.{b2}.13/30");
            var options = peers.Options(new IPEndPoint(IPAddress.Parse($"10.{b1}.{b2}.13"), 53)) with { Upstreams = configurator.OriginalUpstreams() };
            Assert.Equal([peers.Upstream], options.Upstreams);
            await using var server = SplitDnsServer.Start(options, new TcpClusterDnsTransport(peers.Cluster));
            var handle = await configurator.ApplyAsync(DnsConfigurationRequest.From(options, server.EndPoint, sessionId: "e2e"), default);

            Directory.CreateDirectory(etc);
            File.Copy(resolvConf, Path.Combine(etc, "resolv.conf"));
            async Task<string> Getent(string name)
            {
                var r = await client.RunAsync(["getent", "ahostsv4", name]);
                return r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Split(' ')[0] ?? "";
            }
            Assert.Equal("10.96.0.20", await Getent("orders"));
            Assert.Equal("10.96.0.21", await Getent("payments.dev"));
            Assert.Equal("10.96.0.22", await Getent("users.other.svc.cluster.local"));
            Assert.Equal("192.168.50.10", await Getent("intranet"));
            Assert.Equal("192.168.50.11", await Getent("printer"));

            await configurator.RevertAsync(handle, default);
            Assert.Equal(original, await File.ReadAllBytesAsync(resolvConf));
            Assert.Empty(journal.ReadAll());
        }
        finally
        {
            if (Directory.Exists(etc)) Directory.Delete(etc, recursive: true);
            root.Delete(recursive: true);
        }
    }
}
