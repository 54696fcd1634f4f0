using System.Net;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Connect;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Unit.Kube;
using KtConnect.Engine;

namespace KtConnect.Tests.Unit.Sessions.Connect;

public sealed class ClusterRangesTests
{
    private static Task<IReadOnlyList<Cidr>> Discover(SimCluster c, ConnectOptions? options = null) =>
        ClusterRanges.DiscoverAsync(c.Client, c.Namespace, options ?? new ConnectOptions(), NullOutput.Instance, CancellationToken.None);

    private static async Task StartPod(SimCluster c, string name, bool hostNetwork = false)
    {
        await c.Client.Pods.CreateAsync(new Pod
        {
            Metadata = new ObjectMeta { Name = name, Namespace = c.Namespace },
            Spec = new PodSpec { HostNetwork = hostNetwork ? true : null, Containers = [new Container { Name = "c", Image = "echo" }] },
        });
        await Wait.UntilAsync(async () => (await c.Client.Pods.GetAsync(name, c.Namespace)).Status?.PodIP is not null, $"pod {name} to have an IP",
            TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public async Task The_service_range_comes_from_the_api_server_and_the_probe_stores_nothing()
    {
        await using var c = await SimCluster.StartAsync(new KubeSimOptions { ServiceCidr = "10.100.0.0/16" });
        var before = (await c.Client.Services.ListAsync(KubeClient.AllNamespaces)).Items.Count;

        var ranges = await Discover(c, new ConnectOptions { DisablePodIp = true });

        Assert.Contains(Cidr.Parse("10.100.0.0/16"), ranges);
        Assert.Equal(before, (await c.Client.Services.ListAsync(KubeClient.AllNamespaces)).Items.Count);
    }

    [Fact]
    public async Task Node_pod_ranges_win_over_pod_addresses()
    {
        await using var c = await SimCluster.StartAsync();
        c.Server.Apply("""{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"spec":{"podCIDR":"10.250.1.0/24","podCIDRs":["10.250.1.0/24"]}}""");
        await StartPod(c, "app");
        var appIp = IPAddress.Parse((await c.Client.Pods.GetAsync("app", c.Namespace)).Status!.PodIP!);

        var ranges = await Discover(c);

        Assert.Contains(Cidr.Parse("10.250.1.0/24"), ranges);
        Assert.DoesNotContain(ranges, r => r.Contains(appIp));
    }

    [Fact]
    public async Task Without_node_ranges_pod_addresses_are_sampled_but_host_network_pods_are_not()
    {
        await using var c = await SimCluster.StartAsync();
        await StartPod(c, "app");
        var app = await c.Client.Pods.GetAsync("app", c.Namespace);
        await StartPod(c, "node-agent", hostNetwork: true);
        c.Server.Store.Mutate(KtConnect.KubeSim.Store.ResourceTypes.Pods, c.Namespace, "node-agent", o =>
        {
            o["status"]!["podIP"] = "192.168.77.5";
            o["status"]!["podIPs"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject { ["ip"] = "192.168.77.5" });
            return o;
        }, keepStatus: true);

        var ranges = await Discover(c);

        Assert.Contains(ranges, r => r.Contains(IPAddress.Parse(app.Status!.PodIP!)));
        Assert.DoesNotContain(ranges, r => r.Contains(IPAddress.Parse("192.168.77.5")));
    }

    [Fact]
    public async Task The_api_server_address_is_never_routed_and_excludes_are_honoured()
    {
        await using var c = await SimCluster.StartAsync();
        var ranges = await Discover(c, new ConnectOptions
        {
            DisablePodIp = true,
            IncludeIps = ["127.0.0.0/8"],
            ExcludeIps = ["10.96.128.0/17"],
        });

        Assert.DoesNotContain(ranges, r => r.Contains(IPAddress.Loopback));
        Assert.Contains(ranges, r => r.Contains(IPAddress.Parse("127.0.0.2")));
        Assert.DoesNotContain(ranges, r => r.Contains(IPAddress.Parse("10.96.200.1")));
        Assert.Contains(ranges, r => r.Contains(IPAddress.Parse("10.96.0.1")));
    }

    [Fact]
    public async Task When_the_probe_is_forbidden_service_addresses_are_used()
    {
        await using var c = await SimCluster.StartAsync();
        c.Server.Hooks.Authorize = r => !(r.Verb == "create" && r.Resource == "services");

        var ranges = await Discover(c, new ConnectOptions { DisablePodIp = true });

        // The seeded kubernetes Service (10.96.0.1) is the only address: its /24.
        Assert.Contains(Cidr.Parse("10.96.0.0/24"), ranges);
    }
}
