using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Integration.Sessions.Connect;

namespace KtConnect.Tests.Integration.Sessions.Exchange;

/// <summary>
/// Scale mode's stop waits for the Deployment's pods (up to --recoverWaitTime) after Ctrl+C. SIGTERM, or a second
/// Ctrl+C, must not: a supervisor kills soon after SIGTERM, and the shadow, which still carries the Service's labels,
/// must be gone by then. The Deployment `stall` (its image cannot be pulled, so its pods are never ready) exists only
/// during each test.
/// </summary>
[Collection(ExchangeClusterCollection.Name)]
public sealed class ScaleStopEndToEndTests(ExchangeClusterFixture f)
{
    private const int SigInt = 2;
    private const int SigTerm = 15;

    private async Task WithStallAsync(Func<Task> test)
    {
        var deployment = JsonNode.Parse(ExchangeClusterFixture.Deployment("stall", 1, [("http", 8080)]))!;
        deployment["spec"]!["template"]!["spec"]!["containers"]![0]!["image"] = "unknown/missing:1.0";
        f.Cluster.Apply(deployment.ToJsonString());
        f.Cluster.Apply(ExchangeClusterFixture.Service("stall", [("http", 80, 8080)]));
        try
        {
            await test();
        }
        finally
        {
            f.Cluster.Store.Delete(ResourceTypes.Services, "dev", "stall");
            if (f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "stall") is not null) f.Cluster.Store.Delete(ResourceTypes.Deployments, "dev", "stall");
            await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "app=stall").Count == 0
                && f.Cluster.Store.Get(ResourceTypes.Endpoints, "dev", "stall") is null
                && !new[] { ResourceTypes.EndpointSlices, ResourceTypes.ReplicaSets }.Any(t => f.Cluster.Store.List(t, "dev").Items
                    .Any(o => o["metadata"]?["name"]?.GetValue<string>()?.StartsWith("stall-", StringComparison.Ordinal) == true)),
                "stall's pods, Endpoints, EndpointSlice and ReplicaSet to be gone");
        }
    }

    private Task<KtProcess> StartAsync() =>
        f.StartKtAsync("exchange", "stall", "-n", "dev", "--mode", "scale", "--recoverWaitTime", "600", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");

    /// <summary>Ctrl+C, then waits until kt's stop waits for the pods.</summary>
    private static async Task InterruptUntilWaitingAsync(KtProcess kt)
    {
        kt.Signal(SigInt);
        await Wait.UntilAsync(() => kt.Stderr.Contains("Restoring: wait for Deployment dev/stall to be ready", StringComparison.Ordinal) || kt.Process.HasExited,
            "kt to wait for the pods");
        Assert.False(kt.Process.HasExited, kt.Stderr);
    }

    [LinuxRootTheory("sshd", "dnsmasq", "nft", "curl")]
    [InlineData(SigTerm)]
    [InlineData(SigInt)]
    public Task A_stop_that_must_hurry_scales_back_and_removes_the_shadow_without_waiting_for_the_pods(int signal) => WithStallAsync(async () =>
    {
        var kt = await StartAsync();
        Assert.Single(f.Cluster.Pods("dev", "kt-role=shadow-exchange"));
        // The first Ctrl+C waits for the pods, which never come; the second one ends the wait.
        if (signal == SigInt) await InterruptUntilWaitingAsync(kt);
        Assert.Equal(0, await kt.SignalAndWaitAsync(signal));

        Assert.True(kt.Stderr.Contains("not waiting for its pods to be ready as the process exits", StringComparison.Ordinal), kt.Stdout + kt.Stderr);
        Assert.Contains("Stopped; everything was restored.", kt.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "stall")!["spec"]!["replicas"]!.GetValue<int>());
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "kt-role=shadow-exchange").Count == 0, "the shadow to be gone");
    });

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public Task A_deployment_deleted_while_the_stop_waits_for_its_pods_ends_the_wait_with_a_warning() => WithStallAsync(async () =>
    {
        var kt = await StartAsync();
        await InterruptUntilWaitingAsync(kt);
        f.Cluster.Store.Delete(ResourceTypes.Deployments, "dev", "stall");
        await kt.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(0, kt.Process.ExitCode);
        Assert.Contains("Deployment dev/stall was deleted after it was scaled back; there are no pods to wait for.", kt.Stderr, StringComparison.Ordinal);
        Assert.Contains("Stopped; everything was restored.", kt.Stderr, StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "kt-role=shadow-exchange").Count == 0, "the shadow to be gone");
    });
}
