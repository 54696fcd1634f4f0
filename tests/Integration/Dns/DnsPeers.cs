using System.Net;
using KtConnect.Engine;
using KtConnect.Engine.Dns;
using KtConnect.KubeSim.Host;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.Dns;

/// <summary>
/// Two dnsmasq peers in their own network namespaces, each reachable from the test process over a veth pair:
/// the "cluster DNS" (authoritative for cluster.local, service-style records, SOA for negative caching) and the
/// machine's "upstream" resolver (corp.example, a LAN single-label name, a TXT record too big for UDP).
/// </summary>
public sealed class DnsPeers : IAsyncLifetime
{
    public const string Prefix = "ktdns-";

    private readonly List<NetNs> _namespaces = [];
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ktdns-" + Guid.NewGuid().ToString("N")[..8]);

    public IPEndPoint Cluster { get; private set; } = null!;

    public IPEndPoint Upstream { get; private set; } = null!;

    /// <summary>A closed port on the cluster peer's address: connection refused, promptly.</summary>
    public IPEndPoint DeadCluster => new(Cluster.Address, 5399);

    /// <summary>A closed port on the upstream peer's address: ICMP port unreachable, promptly.</summary>
    public IPEndPoint DeadUpstream => new(Upstream.Address, 5399);

    public static string BigText { get; } = string.Join(",", Enumerable.Range(0, 8).Select(i => "\"" + new string((char)('a' + i), 200) + "\""));

    public async Task InitializeAsync()
    {
        if (!NetNs.Available || !ProcessRunner.IsOnPath("dnsmasq")) return;
        Directory.CreateDirectory(_dir);
        var (b1, b2) = (Random.Shared.Next(200, 250), Random.Shared.Next(0, 256));
        Cluster = await StartPeerAsync($"10.{b1}.{b2}.1", $"10.{b1}.{b2}.2", "cluster.local", Authoritative("cluster.local", $"10.{b1}.{b2}.2"),
            "--host-record=orders.dev.svc.cluster.local,10.96.0.20,fd00::20",
            "--host-record=payments.dev.svc.cluster.local,10.96.0.21",
            "--host-record=users.other.svc.cluster.local,10.96.0.22",
            "--srv-host=_http._tcp.orders.dev.svc.cluster.local,orders.dev.svc.cluster.local,8080");
        // A plain recursive-style resolver: local data, NXDOMAIN for everything else (no SOA, as many home routers).
        Upstream = await StartPeerAsync($"10.{b1}.{b2}.5", $"10.{b1}.{b2}.6", "corp.example", ["--local=/#/"],
            "--host-record=intranet.corp.example,192.168.50.10",
            "--host-record=printer,192.168.50.11",
            "--host-record=orders.dev,203.0.113.7",
            "--txt-record=big.corp.example," + BigText);
    }

    /// <summary>dnsmasq's authoritative mode: answers carry AA, negative answers an SOA (minimum 30 s).</summary>
    private static string[] Authoritative(string zone, string address) =>
        [$"--auth-server=ns.{zone},{address}", $"--auth-zone={zone}", "--auth-ttl=30", "--auth-soa=1,hostmaster." + zone + ",1200,120,1209600"];

    private async Task<IPEndPoint> StartPeerAsync(string rootSide, string nsSide, string zone, string[] mode, params string[] records)
    {
        var ns = await NetNs.CreateAsync(Prefix);
        _namespaces.Add(ns);
        var (here, _) = await ns.LinkAsync(null, nsSide + "/30", rootSide + "/30");
        string[] args =
        [
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--log-facility=-",
            "--user=root", "--pid-file=" + Path.Combine(_dir, zone + ".pid"), "--port=53", "--interface=" + here, "--bind-interfaces",
            "--local-ttl=30", .. mode, .. records,
        ];
        ns.Start(args);
        var endpoint = new IPEndPoint(IPAddress.Parse(nsSide), 53);
        await WaitForAsync(endpoint, "ns-probe-" + zone);
        return endpoint;
    }

    private static Task WaitForAsync(IPEndPoint endpoint, string probe) =>
        Wait.UntilAsync(async () =>
        {
            try
            {
                await DnsTestClient.QueryUdpAsync(endpoint, probe, DnsType.A, timeout: TimeSpan.FromMilliseconds(300));
                return true;
            }
            catch (Exception)
            {
                return false;
            }
        }, $"an answer to {probe} from {endpoint}", TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(50));

    public SplitDnsOptions Options(IPEndPoint? listen = null, IPEndPoint? upstream = null) => new()
    {
        ListenEndPoint = listen ?? new IPEndPoint(IPAddress.Loopback, 0),
        Namespace = "dev",
        OtherNamespaces = ["other"],
        Upstreams = [upstream ?? Upstream],
        ClusterTimeout = TimeSpan.FromSeconds(2),
        UpstreamAttemptTimeout = TimeSpan.FromSeconds(1),
        UpstreamTimeout = TimeSpan.FromSeconds(2),
    };

    public async Task DisposeAsync()
    {
        foreach (var ns in _namespaces) await ns.DisposeAsync();
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
