using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.Sessions.Exchange;

/// <summary>
/// Issue 13 item 3: exchanging one port of a three-port Service. Selector mode keeps the other two working (the shadow
/// relays them to the original pods) and says so; scale mode, whose pods are scaled away, refuses with
/// ExchangePortsUncovered before any change unless --allowPartial, and then lists them as cut. The Service `trio`
/// (80 → 8080 http, 81 → 8081 admin, 82 → 8082 metrics) exists only during each test.
/// </summary>
[Collection(ExchangeClusterCollection.Name)]
public sealed class PartialExchangeEndToEndTests(ExchangeClusterFixture f)
{
    private const int SigTerm = 15;

    private async Task WithTrioAsync(Func<Task> test)
    {
        f.Cluster.Apply(ExchangeClusterFixture.Deployment("trio", 1, [("http", 8080), ("admin", 8081), ("metrics", 8082)]));
        f.Cluster.Apply(ExchangeClusterFixture.Service("trio", [("http", 80, 8080), ("admin", 81, 8081), ("metrics", 82, 8082)]));
        try
        {
            await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "trio", d => (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 1);
            await f.WaitServedAsync("trio", 1);
            await test();
        }
        finally
        {
            f.Cluster.Store.Delete(ResourceTypes.Services, "dev", "trio");
            f.Cluster.Store.Delete(ResourceTypes.Deployments, "dev", "trio");
            // Its Endpoints, EndpointSlice and ReplicaSet go by the controllers and the collector, after the pods: a later
            // test's before/after snapshot must not see them vanish.
            await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "app=trio").Count == 0
                && f.Cluster.Store.Get(ResourceTypes.Endpoints, "dev", "trio") is null
                && !new[] { ResourceTypes.EndpointSlices, ResourceTypes.ReplicaSets }.Any(t => f.Cluster.Store.List(t, "dev").Items
                    .Any(o => o["metadata"]?["name"]?.GetValue<string>()?.StartsWith("trio-", StringComparison.Ordinal) == true)),
                "trio's pods, Endpoints, EndpointSlice and ReplicaSet to be gone");
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public Task Selector_mode_exchanging_one_of_three_ports_relays_the_other_two_to_the_original_pods_and_lists_every_port() => WithTrioAsync(async () =>
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("exchange", "trio", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            // Every port's fate is printed: one exposed, two relayed.
            Assert.Contains("listening trio:80 -> shadow :8080 -> 127.0.0.1:18080", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("port      trio:81 -> shadow :8081 -> relayed to the original pods (app=trio) :8081 (not exposed)", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("port      trio:82 -> shadow :8082 -> relayed to the original pods (app=trio) :8082 (not exposed)", kt.Stdout, StringComparison.Ordinal);
            Assert.Equal("shadow-exchange", f.Service("trio")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());

            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://trio.dev/", "laptop"), StringComparison.Ordinal);
            // The unexposed ports still reach the workload (through the shadow, which is all the Service selects now).
            var admin = await f.WaitAnswerAsync("http://trio.dev:81/", "trio-");
            Assert.Contains("port: 8081", admin, StringComparison.Ordinal);
            var metrics = await f.WaitAnswerAsync($"http://{f.ClusterIp("trio")}:82/", "trio-");
            Assert.Contains("port: 8082", metrics, StringComparison.Ordinal);
            Assert.DoesNotContain("laptop", metrics, StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        await f.WaitServedAsync("trio", 1);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    });

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public Task Scale_mode_refuses_to_cut_ports_off_before_any_change_and_with_allowPartial_lists_them_as_cut() => WithTrioAsync(async () =>
    {
        var before = f.Cluster.Snapshot("dev");
        var refused = await f.Kt.RunAsync(["exchange", "trio", "-n", "dev", "--mode", "scale", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80"]);
        Assert.Equal(1, refused.ExitCode);
        var line = Assert.Single(refused.StandardError.Trim().Split('\n'), l => l.StartsWith("kt:", StringComparison.Ordinal));
        Assert.EndsWith("(ExchangePortsUncovered)", line, StringComparison.Ordinal);
        Assert.Contains("81 (admin) -> targetPort 8081", line, StringComparison.Ordinal);
        Assert.Contains("82 (metrics) -> targetPort 8082", line, StringComparison.Ordinal);
        Assert.Contains("--allowPartial", line, StringComparison.Ordinal);
        Assert.True(before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, before.Diff(f.Cluster.Snapshot("dev")).ToString());

        var workloads = f.Workloads();
        var kt = await f.StartKtAsync("exchange", "trio", "-n", "dev", "--mode", "scale", "--allowPartial", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("listening trio:80 -> shadow :8080 -> 127.0.0.1:18080", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("port      trio:81 -> cut: refused while exchanged (not exposed; the original pods are scaled to 0)", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("port      trio:82 -> cut: refused while exchanged", kt.Stdout, StringComparison.Ordinal);
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("port 81 (admin) -> targetPort 8081 is not exposed and is refused", StringComparison.Ordinal),
                "the warning about the cut port");
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://trio.dev/", "laptop"), StringComparison.Ordinal);
            await f.WaitServedAsync("trio", 1);
            var (code, body) = await f.CurlFromClusterAsync("http://trio.dev:81/");
            Assert.True(code != 0, body);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Equal(workloads, f.Workloads());
        Assert.Contains("trio-", await f.WaitAnswerAsync("http://trio.dev:81/", "trio-"), StringComparison.Ordinal);
    });

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public Task Manual_mesh_of_one_of_three_ports_relays_the_other_two_from_its_shadow_to_the_original_pods() => WithTrioAsync(async () =>
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "trio", "-n", "dev", "--mode", "manual", "--versionMark", "v2", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port      trio:81 -> shadow :8081 -> relayed to the original pods (app=trio) :8081 (not exposed)", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("port      trio:82 -> shadow :8082 -> relayed to the original pods (app=trio) :8082 (not exposed)", kt.Stdout, StringComparison.Ordinal);
            var podIp = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "trio-kt-mesh-v2")!["status"]!["podIP"]!.GetValue<string>();
            Assert.Contains("port: 18080", await f.WaitAnswerAsync($"http://{podIp}:8080/", "laptop"), StringComparison.Ordinal);
            // The Service balances its other ports to the shadow too: they reach the workload instead of being refused.
            Assert.Contains("port: 8081", await f.WaitAnswerAsync($"http://{podIp}:8081/", "trio-"), StringComparison.Ordinal);
            Assert.Contains("port: 8082", await f.WaitAnswerAsync($"http://{podIp}:8082/", "trio-"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("trio", 1);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    });

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public Task Auto_mesh_of_one_of_three_ports_still_answers_its_version_on_the_other_ports() => WithTrioAsync(async () =>
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "trio", "-n", "dev", "--versionMark", "v3", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://trio.dev/", "laptop", header: "version: v3"), StringComparison.Ordinal);
            Assert.Contains("port: 8081", await f.WaitAnswerAsync("http://trio.dev:81/", "trio-", header: "version: v3"), StringComparison.Ordinal);
            Assert.Contains("port: 8082", await f.WaitAnswerAsync("http://trio.dev:82/", "trio-", header: "version: v3"), StringComparison.Ordinal);
            Assert.Contains("port: 8081", await f.WaitAnswerAsync("http://trio.dev:81/", "trio-"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("trio", 1);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    });
}
