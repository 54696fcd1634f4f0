using KtConnect.Engine;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;

namespace KtConnect.Tests.Integration.Sessions.Exchange;

/// <summary>
/// Issue 13 item 2: the shadow pod of a live session is deleted (a user, an eviction, a node loss). The Service goes back
/// to its own pods at once, then either a new shadow takes over (the session resumes) or the session ends with
/// ShadowPodDeleted; after stop the cluster is as before. The new shadow's creation is held at the API server (a hook on
/// POST pods) so "traffic is back on the original pods" is observed while no shadow exists, not raced.
/// </summary>
[Collection(ExchangeClusterCollection.Name)]
public sealed class ShadowLossEndToEndTests(ExchangeClusterFixture f)
{
    private const int SigTerm = 15;

    private int PendingJournal() => new ChangeJournal(Path.Combine(f.Kt.Home, ".kt", "journal")).ReadAll().Count;

    private string OnlyPod(string selector)
    {
        var pods = f.Cluster.Pods("dev", selector).Where(p => p["metadata"]?["deletionTimestamp"] is null).ToList();
        Assert.True(pods.Count == 1, $"{pods.Count} pods match {selector}");
        return pods[0]["metadata"]!["name"]!.GetValue<string>();
    }

    /// <summary>Holds (or refuses) every pod creation in `dev` until disposed or <see cref="Release"/>.</summary>
    private sealed class PodCreationGate : IDisposable
    {
        private readonly ExchangeClusterFixture _f;
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _held;

        public PodCreationGate(ExchangeClusterFixture f, bool refuse)
        {
            _f = f;
            f.Cluster.Server.Hooks.BeforeRequest = async ctx =>
            {
                if (!HttpMethods.IsPost(ctx.Request.Method) || ctx.Request.Path.Value?.EndsWith("/namespaces/dev/pods", StringComparison.Ordinal) != true)
                    return false;
                Interlocked.Increment(ref _held);
                if (!refuse)
                {
                    try
                    {
                        await _open.Task.WaitAsync(ctx.RequestAborted);
                    }
                    catch (OperationCanceledException)
                    {
                        return true; // the client gave up: the pod is never created, as when a request does not reach the server
                    }
                    return false;
                }
                ctx.Response.StatusCode = 403;
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden: the test refuses new pods","reason":"Forbidden","details":{"kind":"pods"},"code":403}""");
                return true;
            };
        }

        /// <summary>Pod creations that reached the gate.</summary>
        public int Held => Volatile.Read(ref _held);

        public void Release() => _open.TrySetResult();

        public void Dispose()
        {
            _f.Cluster.Server.Hooks.BeforeRequest = null;
            Release();
        }
    }

    /// <summary>Deleted (a user, a node loss's pod GC) or evicted (the kubelet marks it Failed, reason Evicted, before anyone deletes it).</summary>
    private void Lose(string pod, string how)
    {
        if (how == "delete")
        {
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", pod);
            return;
        }
        f.Cluster.Store.Mutate(ResourceTypes.Pods, "dev", pod, o =>
        {
            o["status"]!["phase"] = "Failed";
            o["status"]!["reason"] = "Evicted";
            o["status"]!["message"] = "The node was low on resource: memory.";
            return o;
        }, subresource: "status");
    }

    /// <summary>The stop said it restored everything, orders is served by its own pods again, and the cluster is as before.</summary>
    private async Task AssertRestoredAsync(Connect.KtProcess kt, KtConnect.KubeSim.Cluster.ClusterSnapshot before)
    {
        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    private async Task WaitNewShadowAsked(PodCreationGate gate, Connect.KtProcess kt)
    {
        try
        {
            await f.Cluster.WaitUntilAsync(() => gate.Held > 0 || kt.Process.HasExited, "kt to ask for a new shadow");
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException(e.Message + "; kt said:\n" + kt.Stderr, e);
        }
        Assert.True(gate.Held > 0, kt.Stderr);
    }

    [LinuxRootTheory("sshd", "dnsmasq", "nft", "curl")]
    [InlineData("delete")]
    [InlineData("evict")]
    public async Task Selector_exchange_whose_shadow_is_lost_gives_the_service_back_at_once_then_resumes_on_a_new_shadow(string how)
    {
        var before = f.Cluster.Snapshot("dev");
        var journalled = PendingJournal();
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80,{ExchangeClusterFixture.LocalAdmin}:81");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
            var first = OnlyPod("kt-role=shadow-exchange");
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                Lose(first, how);

                // (a) While no shadow exists the Service selects its own pods again, and they answer.
                await WaitNewShadowAsked(gate, kt);
                Assert.Equal("""{"app":"orders"}""", f.Service("orders")!["spec"]!["selector"]!.ToJsonString());
                Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
                Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev:81/", "orders-"), StringComparison.Ordinal);
                Assert.Contains($"The shadow pod dev/{first}", kt.Stderr, StringComparison.Ordinal);
                Assert.False(kt.Process.HasExited, kt.Stderr);
                gate.Release();

                // (b) A new shadow takes the traffic again: both ports reach the laptop.
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("resumed with the new shadow pod", StringComparison.Ordinal) || kt.Process.HasExited,
                    "kt to resume");
                Assert.False(kt.Process.HasExited, kt.Stderr);
            }
            var second = OnlyPod("kt-role=shadow-exchange");
            Assert.NotEqual(first, second);
            Assert.Equal("shadow-exchange", f.Service("orders")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
            Assert.Contains("port: 18081", await f.WaitAnswerAsync("http://orders.dev:81/", "laptop"), StringComparison.Ordinal);
            await f.Cluster.WaitUntilAsync(() => f.Cluster.Store.Get(ResourceTypes.Pods, "dev", first) is null
                && f.Cluster.Store.Get(ResourceTypes.ConfigMaps, "dev", first) is null, "the first shadow and its ConfigMap to be gone");
            Assert.DoesNotContain("NotFound", kt.Stderr, StringComparison.Ordinal);
            // The session went Reconnecting, then Running again.
            Assert.Contains("reconnecting", kt.Stderr, StringComparison.Ordinal);
            Assert.Contains("Reconnected.", kt.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }

        // (c) Stop restores everything, the replaced shadow's journal included.
        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        Assert.Equal(journalled, PendingJournal());
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Selector_exchange_whose_shadow_is_deleted_and_cannot_be_replaced_ends_with_ShadowPodDeleted_and_restores()
    {
        var before = f.Cluster.Snapshot("dev");
        var journalled = PendingJournal();
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            var first = OnlyPod("kt-role=shadow-exchange");
            using var gate = new PodCreationGate(f, refuse: true);
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", first);
            await kt.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
            Assert.True(gate.Held > 0);
        }
        finally
        {
            if (!kt.Process.HasExited) await kt.SignalAndWaitAsync(SigTerm);
        }
        Assert.Equal(1, kt.Process.ExitCode);
        var last = kt.Stderr.Trim().Split('\n')[^1];
        Assert.StartsWith("kt: ", last, StringComparison.Ordinal);
        Assert.EndsWith("(ShadowPodDeleted)", last, StringComparison.Ordinal);
        Assert.DoesNotContain("NotFound", kt.Stderr, StringComparison.Ordinal);
        Assert.Equal(journalled, PendingJournal());
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Scale_exchange_whose_shadow_is_deleted_scales_the_deployment_back_at_once_then_resumes_on_a_new_shadow()
    {
        var before = f.Workloads();
        var kt = await f.StartKtAsync("exchange", "pay", "-n", "dev", "--mode", "scale", "--expose", $"{ExchangeClusterFixture.LocalHttp}:8080",
            "--recoverWaitTime", "60");
        try
        {
            Assert.Contains("laptop", await f.WaitAnswerAsync("http://pay.dev/", "laptop"), StringComparison.Ordinal);
            var first = OnlyPod("kt-role=shadow-exchange");
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", first);
                // (a) The Deployment is scaled back while no shadow exists, and its pod answers.
                await f.Cluster.WaitUntilAsync(() => gate.Held > 0 && f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "pay")!["spec"]!["replicas"]!.GetValue<int>() == 1,
                    "kt to scale pay back and ask for a new shadow");
                // (The controllers write to the store directly: only kt's new shadow is held.)
                Assert.Contains("pay-", await f.WaitAnswerAsync("http://pay.dev/", "pay-"), StringComparison.Ordinal);
                Assert.False(kt.Process.HasExited, kt.Stderr);
                gate.Release();
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("resumed with the new shadow pod", StringComparison.Ordinal) || kt.Process.HasExited,
                    "kt to resume");
                Assert.False(kt.Process.HasExited, kt.Stderr);
            }
            // (b) The Deployment is at 0 again and the new shadow serves.
            await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => x?["spec"]?["replicas"]?.GetValue<int>() == 0
                && (x?["status"]?["replicas"]?.GetValue<int>() ?? 0) == 0);
            Assert.NotEqual(first, OnlyPod("kt-role=shadow-exchange"));
            await f.WaitServedAsync("pay", 1);
            Assert.Contains("laptop", await f.WaitAnswerAsync("http://pay.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Empty(f.Cluster.Pods("dev", "kt-role=shadow-exchange"));
        Assert.Contains("pay-", await f.WaitAnswerAsync("http://pay.dev/", "pay-"), StringComparison.Ordinal);
        Assert.Equal(before, f.Workloads());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task Auto_mesh_whose_shadow_is_deleted_sends_its_version_to_the_original_pods_then_resumes_on_a_new_shadow()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v7", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v7"), StringComparison.Ordinal);
            var shadow = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-mesh-v7")!;
            var uid = shadow["metadata"]!["uid"]!.GetValue<string>();
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-mesh-v7");
                // (a) The version's requests reach the original pods while no shadow exists.
                await WaitNewShadowAsked(gate, kt);
                Assert.Equal("""{"app":"orders"}""", f.Service("orders-kt-mesh-v7")!["spec"]!["selector"]!.ToJsonString());
                Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-", header: "version: v7"), StringComparison.Ordinal);
                Assert.False(kt.Process.HasExited, kt.Stderr);
                gate.Release();
                // (b) A new shadow of the same name takes the version again.
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("resumed with the new shadow pod", StringComparison.Ordinal) || kt.Process.HasExited,
                    "kt to resume");
                Assert.False(kt.Process.HasExited, kt.Stderr);
            }
            Assert.NotEqual(uid, f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-mesh-v7")!["metadata"]!["uid"]!.GetValue<string>());
            Assert.Equal("shadow-mesh", f.Service("orders-kt-mesh-v7")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v7"), StringComparison.Ordinal);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await AssertRestoredAsync(kt, before);
    }

    /// <summary>The shared router deleted under an auto mesh: the Service had no endpoints while the session showed Running.</summary>
    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task Auto_mesh_whose_router_is_deleted_joins_a_new_router_and_the_service_works_again()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v6", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v6"), StringComparison.Ordinal);
            var uid = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!["metadata"]!["uid"]!.GetValue<string>();
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-router");
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("is routed by the new router", StringComparison.Ordinal) || kt.Process.HasExited,
                "kt to join a new router");
            Assert.False(kt.Process.HasExited, kt.Stderr);
            var router = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!;
            Assert.NotEqual(uid, router["metadata"]!["uid"]!.GetValue<string>());
            Assert.Equal(router["metadata"]!["labels"]!["kt-target"]!.GetValue<string>(), f.Service("orders")!["spec"]!["selector"]!["kt-target"]!.GetValue<string>());
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v6"), StringComparison.Ordinal);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await AssertRestoredAsync(kt, before);
    }

    /// <summary>A node loss takes the shadow and the router: the router is joined again once the new shadow runs.</summary>
    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task Auto_mesh_whose_router_is_deleted_while_its_shadow_is_replaced_joins_a_new_router_with_the_new_shadow()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v5", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v5"), StringComparison.Ordinal);
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-mesh-v5");
                await WaitNewShadowAsked(gate, kt);
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-router");
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("was deleted; joining a new one", StringComparison.Ordinal), "kt to see the router go");
            }
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("is routed by the new router", StringComparison.Ordinal) || kt.Process.HasExited,
                "kt to join a new router with its new shadow");
            Assert.False(kt.Process.HasExited, kt.Stderr);
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v5"), StringComparison.Ordinal);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await AssertRestoredAsync(kt, before);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task Auto_mesh_whose_shadow_cannot_be_replaced_ends_with_ShadowPodDeleted_and_gives_the_service_back()
    {
        var before = f.Cluster.Snapshot("dev");
        var journalled = PendingJournal();
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v9", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v9");
            using var gate = new PodCreationGate(f, refuse: true);
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-mesh-v9");
            await kt.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
            Assert.True(gate.Held > 0);
        }
        finally
        {
            if (!kt.Process.HasExited) await kt.SignalAndWaitAsync(SigTerm);
        }
        Assert.Equal(1, kt.Process.ExitCode);
        Assert.EndsWith("(ShadowPodDeleted)", kt.Stderr.Trim().Split('\n')[^1], StringComparison.Ordinal);
        Assert.Equal(journalled, PendingJournal());
        // The last router user left: selector back, router and stuntman gone.
        Assert.Null(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router"));
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-", header: "version: v9"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Manual_mesh_whose_shadow_is_deleted_leaves_the_service_to_its_pods_then_resumes_on_a_new_shadow()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--mode", "manual", "--versionMark", "v8", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitServedAsync("orders", 3);
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-mesh-v8");
                // (a) Only the original pods serve while no shadow exists.
                await WaitNewShadowAsked(gate, kt);
                await f.WaitServedAsync("orders", 2);
                Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
                Assert.False(kt.Process.HasExited, kt.Stderr);
                gate.Release();
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("resumed with the new shadow pod", StringComparison.Ordinal) || kt.Process.HasExited,
                    "kt to resume");
                Assert.False(kt.Process.HasExited, kt.Stderr);
            }
            // (b) The new shadow is balanced to again and reaches the laptop.
            await f.WaitServedAsync("orders", 3);
            var podIp = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-mesh-v8")!["status"]!["podIP"]!.GetValue<string>();
            Assert.Contains("port: 18080", await f.WaitAnswerAsync($"http://{podIp}:8080/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Preview_whose_shadow_is_deleted_resumes_on_a_new_shadow_and_stop_deletes_everything()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("preview", "orders-next", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders-next.dev/", "laptop"), StringComparison.Ordinal);
            var first = OnlyPod("kt-role=shadow-preview");
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", first);
                await WaitNewShadowAsked(gate, kt);
                Assert.False(kt.Process.HasExited, kt.Stderr);
                gate.Release();
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("resumed with the new shadow pod", StringComparison.Ordinal) || kt.Process.HasExited,
                    "kt to resume");
                Assert.False(kt.Process.HasExited, kt.Stderr);
            }
            Assert.NotEqual(first, OnlyPod("kt-role=shadow-preview"));
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders-next.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Null(f.Service("orders-next"));
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    /// <summary>
    /// While a lost shadow is replaced the Service is back on its pods and no shadow names its holder; the exchange holds
    /// its kt-lock meanwhile, so a `kt recover` from another machine refuses instead of handing the Service to whoever
    /// exchanges it next (the two sessions would then take it from each other).
    /// </summary>
    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task While_a_new_shadow_is_being_made_the_service_stays_held_against_a_recover_from_another_machine()
    {
        var before = f.Cluster.Snapshot("dev");
        var other = new KtConnect.KubeSim.Cluster.KtRunner(f.Cluster);
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            using (var gate = new PodCreationGate(f, refuse: false))
            {
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", OnlyPod("kt-role=shadow-exchange"));
                await WaitNewShadowAsked(gate, kt);
                Assert.NotNull(f.Service("orders")!["metadata"]!["annotations"]?["kt-lock"]);
                var recover = await other.RunAsync(["recover", "orders", "-n", "dev"]);
                Assert.Equal(1, recover.ExitCode);
                Assert.Contains("(RecoverServiceInUse)", recover.StandardError, StringComparison.Ordinal);
                Assert.NotNull(f.Service("orders")!["metadata"]!["annotations"]?["kt-selector"]);
            }
            // The new shadow runs: the Service selects it again and the lock is let go.
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            await f.Cluster.WaitUntilAsync(() => f.Service("orders")!["metadata"]!["annotations"]?["kt-lock"] is null, "the lock to be let go");
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
            Directory.Delete(other.Home, recursive: true);
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Stopping_while_a_new_shadow_is_being_made_restores_everything()
    {
        var before = f.Cluster.Snapshot("dev");
        var journalled = PendingJournal();
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            using var gate = new PodCreationGate(f, refuse: false);
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", OnlyPod("kt-role=shadow-exchange"));
            await WaitNewShadowAsked(gate, kt);
            // Ctrl+C / SIGTERM while the replacement's creation is still in flight.
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        finally
        {
            if (!kt.Process.HasExited) await kt.SignalAndWaitAsync(SigTerm);
        }
        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        Assert.Equal(journalled, PendingJournal());
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task A_shadow_deployment_whose_pod_is_deleted_is_replaced_and_stop_restores()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--useShadowDeployment", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            var first = OnlyPod("kt-role=shadow-exchange");
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", first);
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("resumed with the new shadow pod", StringComparison.Ordinal) || kt.Process.HasExited,
                "kt to resume");
            Assert.False(kt.Process.HasExited, kt.Stderr);
            Assert.Contains($"The shadow pod dev/{first}", kt.Stderr, StringComparison.Ordinal);
            // One shadow Deployment, the new one: the old one was removed with its pods.
            await f.Cluster.WaitUntilAsync(() => f.Cluster.Store.List(ResourceTypes.Deployments, "dev").Items
                .Count(d => d["metadata"]!["name"]!.GetValue<string>().StartsWith("orders-kt-exchange-", StringComparison.Ordinal)) == 1
                && f.Cluster.Pods("dev", "kt-role=shadow-exchange").Count == 1, "one shadow Deployment and pod");
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task A_shadow_that_keeps_being_lost_is_replaced_five_times_then_the_session_ends_with_ShadowPodDeleted()
    {
        var before = f.Cluster.Snapshot("dev");
        var journalled = PendingJournal();
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            for (var i = 1; i <= 5; i++)
            {
                var pod = OnlyPod("kt-role=shadow-exchange");
                f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", pod);
                var resumed = i;
                await f.Cluster.WaitUntilAsync(() => CountOf(kt.Stderr, "resumed with the new shadow pod") == resumed || kt.Process.HasExited, $"resume {i}");
                Assert.False(kt.Process.HasExited, kt.Stderr);
                await f.Cluster.WaitUntilAsync(() => f.Cluster.Store.Get(ResourceTypes.Pods, "dev", pod) is null, "the lost shadow to be gone");
            }
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", OnlyPod("kt-role=shadow-exchange"));
            await kt.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        }
        finally
        {
            if (!kt.Process.HasExited) await kt.SignalAndWaitAsync(SigTerm);
        }
        Assert.Equal(1, kt.Process.ExitCode);
        var last = kt.Stderr.Trim().Split('\n')[^1];
        Assert.EndsWith("(ShadowPodDeleted)", last, StringComparison.Ordinal);
        Assert.Contains("6th shadow lost within 10 minutes", last, StringComparison.Ordinal);
        Assert.Equal(journalled, PendingJournal());
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    private static int CountOf(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
