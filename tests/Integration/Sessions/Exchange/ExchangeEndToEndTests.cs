using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.Sessions.Exchange;

/// <summary>
/// `kt exchange` and `kt preview` as a user runs them: a separate process in a laptop namespace, against a simulated
/// cluster whose pods are real processes. Requests come from inside the cluster (curl in a client pod) and must land on
/// the laptop's server; afterwards the cluster must be as it was.
/// </summary>
[Collection(ExchangeClusterCollection.Name)]
public sealed class ExchangeEndToEndTests(ExchangeClusterFixture f)
{
    private const int SigInt = 2;
    private const int SigTerm = 15;

    /// <summary>The cluster changes kt journalled on the laptop and has not completed (undone) yet.</summary>
    /// <remarks>A SIGKILLed session's entries stay until an undo handler for cluster changes replays them, so tests compare counts.</remarks>
    private IReadOnlyList<ClusterChange> PendingClusterChanges(IReadOnlyCollection<string>? exceptIds = null) =>
        [.. PendingIds().Where(e => exceptIds?.Contains(e.Id) != true).Select(ClusterChange.FromEntry).OfType<ClusterChange>()];

    /// <summary>The fixture's Deployment pay as the next tests expect it: one ready replica, serving its Service.</summary>
    private async Task RestorePayAsync()
    {
        f.Cluster.Store.Mutate(ResourceTypes.Deployments, "dev", "pay", o =>
        {
            o["spec"]!["replicas"] = 1;
            return o;
        });
        await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => (x?["status"]?["replicas"]?.GetValue<int>() ?? 0) == 1
            && (x?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 1);
        await f.WaitServedAsync("pay", 1);
    }

    private IReadOnlyList<JournalEntry> PendingIds() => new ChangeJournal(Path.Combine(f.Kt.Home, ".kt", "journal")).ReadAll();

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Selector_mode_sends_two_ports_by_name_and_cluster_ip_to_the_laptop_refuses_a_second_exchange_and_stop_restores()
    {
        var before = f.Cluster.Snapshot("dev");
        var journalled = PendingClusterChanges().Count;
        var ip = f.ClusterIp("orders");
        Assert.Contains("orders-", (await f.WaitAnswerAsync("http://orders.dev/", "orders-")), StringComparison.Ordinal);

        // One port given as the Service port (80), the other as the targetPort (8081).
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80,{ExchangeClusterFixture.LocalAdmin}:8081");
        try
        {
            Assert.Contains("Exchange session", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("remote 80 is the Service port; its targetPort is 8080", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("remote 8081 is the targetPort", kt.Stdout, StringComparison.Ordinal);
            var svc = f.Service("orders")!;
            Assert.Equal("shadow-exchange", svc["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
            Assert.Equal("""{"app":"orders"}""", svc["metadata"]!["annotations"]!["kt-selector"]!.GetValue<string>());
            Assert.Null(svc["metadata"]!["annotations"]!["kt-lock"]);

            foreach (var url in new[] { "http://orders.dev/", "http://orders/", $"http://{ip}/" })
                Assert.Contains("port: 18080", await f.WaitAnswerAsync(url, "laptop"), StringComparison.Ordinal);
            foreach (var url in new[] { "http://orders.dev:81/", $"http://{ip}:81/" })
                Assert.Contains("port: 18081", await f.WaitAnswerAsync(url, "laptop"), StringComparison.Ordinal);

            // A second exchange of the same Service is refused, naming who holds it, and changes nothing.
            // (The first session's heartbeat may touch its shadow meanwhile: compare the Service and which objects exist.)
            var held = f.Cluster.Snapshot("dev");
            var second = await f.Kt.RunAsync(["exchange", "orders", "-n", "dev", "--expose", "18080:80"]);
            Assert.Equal(1, second.ExitCode);
            Assert.Contains("ServiceAlreadyExchanged", second.StandardError, StringComparison.Ordinal);
            Assert.Contains("user 'root'", second.StandardError, StringComparison.Ordinal);
            Assert.Contains("orders-kt-exchange-", second.StandardError, StringComparison.Ordinal);
            Assert.Contains("session ", second.StandardError, StringComparison.Ordinal);
            var after = f.Cluster.Snapshot("dev");
            Assert.Equal(held.Objects.Keys, after.Objects.Keys);
            Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(held.Objects["Service dev/orders"], after.Objects["Service dev/orders"]));
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }

        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        Assert.Equal(journalled, PendingClusterChanges().Count);
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Scale_mode_scales_the_deployment_to_zero_sends_traffic_to_the_laptop_and_ctrl_c_scales_it_back()
    {
        var before = f.Workloads();
        var kt = await f.StartKtAsync("exchange", "pay", "-n", "dev", "--mode", "scale", "--expose", $"{ExchangeClusterFixture.LocalHttp}:8080",
            "--recoverWaitTime", "60");
        try
        {
            Assert.Contains("(scale)", kt.Stdout, StringComparison.Ordinal);
            var shadow = f.Cluster.Pods("dev", "kt-role=shadow-exchange").Single();
            Assert.Equal("pay", shadow["metadata"]!["labels"]!["app"]!.GetValue<string>());
            Assert.Equal("app=pay,replicas=1,service=pay", shadow["metadata"]!["annotations"]!["kt-config"]!.GetValue<string>());
            Assert.Equal(0, f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "pay")!["spec"]!["replicas"]!.GetValue<int>());
            await f.WaitServedAsync("pay", 1);
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://pay.dev/", "laptop"), StringComparison.Ordinal);
            Assert.Contains("laptop", await f.WaitAnswerAsync($"http://{f.ClusterIp("pay")}/", "laptop"), StringComparison.Ordinal);
            // The Service itself is untouched in scale mode.
            Assert.Null(f.Service("pay")!["metadata"]!["annotations"]?["kt-selector"]);

            // Someone scales the Deployment back up: kt scales it to 0 again and says so.
            f.Cluster.Store.Mutate(ResourceTypes.Deployments, "dev", "pay", o =>
            {
                o["spec"]!["replicas"] = 2;
                return o;
            });
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("was scaled to 2 by someone else", StringComparison.Ordinal), "kt to notice the scale");
            await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => x?["spec"]?["replicas"]?.GetValue<int>() == 0
                && (x?["status"]?["replicas"]?.GetValue<int>() ?? 0) == 0);
            await f.WaitServedAsync("pay", 1);
            Assert.Contains("laptop", await f.WaitAnswerAsync("http://pay.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigInt));
        }

        // The undo's order: the Deployment back, its pods waited for, and only then the shadow removed.
        var steps = new[] { "Restoring: scale Deployment dev/pay back", "Restoring: wait for Deployment dev/pay to be ready", "Restoring: remove the shadow of" }
            .Select(step => kt.Stderr.IndexOf(step, StringComparison.Ordinal)).ToArray();
        Assert.True(steps[0] >= 0 && steps[0] < steps[1] && steps[1] < steps[2], kt.Stderr);
        // Back to the count someone set while the session ran (2), not the one it started with; stop waited for those pods.
        var d = f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "pay")!;
        Assert.Equal((2, 2), (d["spec"]!["replicas"]!.GetValue<int>(), d["status"]?["readyReplicas"]?.GetValue<int>() ?? 0));
        Assert.Empty(f.Cluster.Pods("dev", "kt-role=shadow-exchange"));
        Assert.Contains("pay-", await f.WaitAnswerAsync("http://pay.dev/", "pay-"), StringComparison.Ordinal);
        await RestorePayAsync();
        Assert.Equal(before, f.Workloads());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task After_SIGKILL_kt_clean_restores_the_selector_and_the_replicas()
    {
        var before = f.Workloads();
        var earlier = PendingIds().Select(e => e.Id).ToHashSet();
        var selector = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        var scale = await f.StartKtAsync("exchange", "pay", "-n", "dev", "--mode", "scale", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        await KtRunner.KillAsync(selector.Process);
        await KtRunner.KillAsync(scale.Process);
        Assert.NotEqual(before, f.Workloads());
        // The crashed sessions' changes stay: traffic still goes to the (now dead) tunnel, not to the pods.
        Assert.Equal("shadow-exchange", f.Service("orders")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
        // What the laptop journalled before making each change, still pending: the original selector and replicas.
        var pending = PendingClusterChanges(earlier);
        var selectorChange = Assert.Single(pending, c => c.Change == ClusterChangeKind.SelectorChanged);
        Assert.Equal(("dev", "orders", KtObjectKind.Service), (selectorChange.Namespace, selectorChange.Name, selectorChange.ObjectKind));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, selectorChange.OriginalSelector);
        var scaled = Assert.Single(pending, c => c.Change == ClusterChangeKind.Scaled);
        Assert.Equal(("pay", KtObjectKind.Deployment, 1), (scaled.Name, scaled.ObjectKind, scaled.OriginalReplicas));
        Assert.DoesNotContain(pending, c => c.Change == ClusterChangeKind.Locked); // released once set up

        // Heartbeats are unix seconds: make sure the last one is in the past before asking for threshold 0.
        await Task.Delay(TimeSpan.FromSeconds(1.1));
        var clean = await f.Kt.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0"]);
        Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "control-by=kt").Count == 0, "the shadows to be gone");
        await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => (x?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 1);
        Assert.Equal(before, f.Workloads());
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        Assert.Contains("pay-", await f.WaitAnswerAsync("http://pay.dev/", "pay-"), StringComparison.Ordinal);
    }

    /// <summary>
    /// Scale mode takes the Service's kt-lock for its set-up, as selector mode does: two laptops exchanging one Service at
    /// once go one after the other, and the second finds the first's shadow. Here another laptop holds the lock.
    /// </summary>
    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Scale_mode_waits_for_the_services_kt_lock_before_it_changes_anything()
    {
        var before = f.Workloads();
        var serviceBefore = f.Cluster.Snapshot("dev").Objects["Service dev/pay"];
        f.Cluster.Store.Mutate(ResourceTypes.Services, "dev", "pay", o =>
        {
            o["metadata"]!["annotations"] ??= new System.Text.Json.Nodes.JsonObject();
            o["metadata"]!["annotations"]!["kt-lock"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
            return o;
        });
        var kt = new Connect.KtProcess(f.Kt.Start(["exchange", "pay", "-n", "dev", "--mode", "scale", "--expose", $"{ExchangeClusterFixture.LocalHttp}:8080"]));
        try
        {
            // kt retries the lock every 3 s for 30 s: in the meantime nothing is made or scaled.
            await Task.Delay(TimeSpan.FromSeconds(6));
            Assert.False(kt.Process.HasExited, kt.Stderr);
            Assert.Empty(f.Cluster.Pods("dev", "kt-role=shadow-exchange"));
            Assert.Equal(1, f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "pay")!["spec"]!["replicas"]!.GetValue<int>());

            // The other laptop lets go: the exchange goes ahead, and lets go of the lock once set up.
            f.Cluster.Store.Mutate(ResourceTypes.Services, "dev", "pay", o =>
            {
                o["metadata"]!["annotations"]!.AsObject().Remove("kt-lock");
                return o;
            });
            await kt.WaitForAsync("Press Ctrl+C", TimeSpan.FromMinutes(2));
            Assert.Equal(0, f.Cluster.Store.Get(ResourceTypes.Deployments, "dev", "pay")!["spec"]!["replicas"]!.GetValue<int>());
            Assert.Null(f.Service("pay")!["metadata"]!["annotations"]?["kt-lock"]);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigInt));
        }
        f.Cluster.Store.Mutate(ResourceTypes.Services, "dev", "pay", o =>
        {
            if (serviceBefore["metadata"]!["annotations"] is null) o["metadata"]!.AsObject().Remove("annotations");
            return o;
        });
        await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => (x?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 1);
        Assert.Equal(before, f.Workloads());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task After_SIGKILL_kt_clean_gives_a_scaled_deployment_the_count_someone_set_during_the_session()
    {
        var before = f.Workloads();
        var earlier = PendingIds().Select(e => e.Id).ToHashSet();
        var kt = await f.StartKtAsync("exchange", "pay", "-n", "dev", "--mode", "scale", "--expose", $"{ExchangeClusterFixture.LocalHttp}:8080");
        f.Cluster.Store.Mutate(ResourceTypes.Deployments, "dev", "pay", o =>
        {
            o["spec"]!["replicas"] = 2;
            return o;
        });
        await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("was scaled to 2 by someone else", StringComparison.Ordinal), "kt to notice the scale");
        // Where a crash's undo reads the count: this machine's journal (one entry, the new count), and the shadow's
        // kt-config for a clean from another machine.
        await f.Cluster.WaitUntilAsync(() => PendingClusterChanges(earlier).Where(c => c.Change == ClusterChangeKind.Scaled).Select(c => c.OriginalReplicas)
            .SequenceEqual([2]), "the journal to hold the new count");
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "kt-role=shadow-exchange").SingleOrDefault()?["metadata"]?["annotations"]?["kt-config"]?
            .GetValue<string>() == "app=pay,replicas=2,service=pay", "the shadow's kt-config to hold the new count");
        await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => x?["spec"]?["replicas"]?.GetValue<int>() == 0);
        await KtRunner.KillAsync(kt.Process);

        var clean = await f.Kt.RunAsync(["clean", "-n", "dev"]);
        Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
        Assert.Contains("scale Deployment dev/pay back to 2", clean.StandardOutput, StringComparison.Ordinal);
        await f.Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "pay", x => x?["spec"]?["replicas"]?.GetValue<int>() == 2
            && (x?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 2);
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "control-by=kt").Count == 0, "the shadow to be gone");
        Assert.Empty(PendingClusterChanges(earlier));
        await RestorePayAsync();
        Assert.Equal(before, f.Workloads());
    }

    [LinuxRootTheory("sshd", "dnsmasq", "nft", "curl")]
    [InlineData("selector")]
    [InlineData("scale")]
    public async Task A_shadow_deployment_works_in_both_modes_and_stop_restores(string mode)
    {
        var before = f.Workloads();
        var service = mode == "selector" ? "orders" : "pay";
        var kt = await f.StartKtAsync("exchange", service, "-n", "dev", "--mode", mode, "--useShadowDeployment", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Single(f.Cluster.Store.List(ResourceTypes.Deployments, "dev").Items, d => d["metadata"]!["name"]!.GetValue<string>().StartsWith(service + "-kt-exchange-", StringComparison.Ordinal));
            Assert.Contains("laptop", await f.WaitAnswerAsync($"http://{service}.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "control-by=kt").Count == 0 && f.Cluster.Pods("dev", "kt-role").Count == 0, "the shadow to be gone");
        Assert.Equal(before, f.Workloads());
        Assert.Contains(service + "-", await f.WaitAnswerAsync($"http://{service}.dev/", service + "-"), StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Ctrl_c_while_the_exchange_is_being_set_up_leaves_the_cluster_as_it_was()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = new Connect.KtProcess(f.Kt.Start(["exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80"]));
        // Interrupt once the shadow exists, wherever the start is by then (creating, waiting, connecting or done).
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "kt-role=shadow-exchange").Count > 0 || kt.Process.HasExited, "the shadow to be created");
        var code = await kt.SignalAndWaitAsync(SigInt);
        Assert.True(code is 0 or 130, $"exit {code}: {kt.Stderr}");
        Assert.DoesNotContain("kt: ", kt.Stderr.Replace("kt: interrupted", "", StringComparison.Ordinal), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
        await f.WaitServedAsync("orders", 2);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task A_local_port_nobody_listens_on_is_a_warning_and_a_refusal_per_connection_not_a_broken_tunnel()
    {
        const int port = 18090;
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{port}:80");
        System.Diagnostics.Process? server = null;
        try
        {
            // stderr is its own pipe: the warning may arrive after stdout's "Press Ctrl+C".
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains($"Nothing listens on 127.0.0.1:{port}", StringComparison.Ordinal), "the start-up warning");
            // Each request is closed (curl: empty reply / reset), the session keeps running.
            for (var i = 0; i < 3; i++)
            {
                var (code, body) = await f.CurlFromClusterAsync("http://orders.dev/");
                Assert.NotEqual(0, code);
                Assert.DoesNotContain("orders-", body, StringComparison.Ordinal);
            }
            Assert.False(kt.Process.HasExited);
            Assert.DoesNotContain("reconnecting", kt.Stderr, StringComparison.Ordinal);

            // Once a server listens, new connections go through on the same tunnel.
            server = f.StartLaptopServer(port);
            await f.WaitLocalAsync(port);
            Assert.Contains($"port: {port}", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            if (server is not null) await KtRunner.KillAsync(server);
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("orders", 2);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task A_redeploy_that_puts_the_selector_back_is_undone_with_a_warning_and_stop_still_restores()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            // A redeploy: the Service's manifest applied again, selecting the original pods.
            var svc = f.Service("orders")!;
            svc["spec"]!["selector"] = new System.Text.Json.Nodes.JsonObject { ["app"] = "orders" };
            f.Cluster.Apply(svc.ToJsonString());
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("was changed by someone else", StringComparison.Ordinal), "kt to notice the redeploy");
            await f.Cluster.WaitUntilAsync(() => f.Service("orders")!["spec"]!["selector"]!["kt-role"] is not null, "kt to re-apply its selector");
            Assert.Contains("laptop", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
            Assert.False(kt.Process.HasExited);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task A_redeploy_with_a_new_selector_that_keeps_kt_selector_is_what_stop_restores()
    {
        var original = f.Service("orders")!.ToJsonString();
        var kt = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            await f.WaitAnswerAsync("http://orders.dev/", "laptop");
            // helm upgrade / kubectl apply: a new selector; the kt-selector annotation, not in the chart, stays.
            var svc = f.Service("orders")!;
            svc["spec"]!["selector"] = new System.Text.Json.Nodes.JsonObject { ["app"] = "orders", ["track"] = "stable" };
            f.Cluster.Apply(svc.ToJsonString());
            await f.Cluster.WaitUntilAsync(() => f.Service("orders")!["metadata"]!["annotations"]!["kt-selector"]!.GetValue<string>() == """{"app":"orders","track":"stable"}""",
                "kt to record the redeployed selector");
            await f.Cluster.WaitUntilAsync(() => f.Service("orders")!["spec"]!["selector"]!["kt-role"] is not null, "kt to re-apply its selector");
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        try
        {
            var restored = f.Service("orders")!;
            Assert.Equal("""{"app":"orders","track":"stable"}""", restored["spec"]!["selector"]!.ToJsonString());
            Assert.Null(restored["metadata"]?["annotations"]?["kt-selector"]);
        }
        finally
        {
            var back = System.Text.Json.Nodes.JsonNode.Parse(original)!;
            back["metadata"]!.AsObject().Remove("resourceVersion");
            f.Cluster.Apply(back.ToJsonString());
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Deleting_the_exchanged_service_fails_the_session_with_a_clear_error_and_removes_the_shadow()
    {
        f.Cluster.Apply(ExchangeClusterFixture.Service("doomed", [("http", 80, 8080)]).Replace("\"app\":\"doomed\"", "\"app\":\"orders\"", StringComparison.Ordinal));
        var kt = await f.StartKtAsync("exchange", "doomed", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        f.Cluster.Store.Delete(ResourceTypes.Services, "dev", "doomed");
        await kt.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(1, kt.Process.ExitCode);
        Assert.Contains("ExchangedServiceDeleted", kt.Stderr, StringComparison.Ordinal);
        Assert.Contains("'dev/doomed' was deleted", kt.Stderr, StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => f.Cluster.Pods("dev", "control-by=kt").Count == 0, "the shadow to be gone");
        Assert.DoesNotContain(PendingClusterChanges(), c => c.Name == "doomed");
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Preview_publishes_the_laptop_server_as_a_new_service_and_stop_deletes_it()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("preview", "orders-next", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            var svc = f.Service("orders-next")!;
            Assert.Equal("kt", svc["metadata"]!["labels"]!["control-by"]!.GetValue<string>());
            Assert.NotNull(svc["metadata"]!["annotations"]!["kt-last-heart-beat"]);
            // Named after its session, as the shadow and its ConfigMap are: undoing a crashed session of this laptop must
            // never delete another laptop's Service that took the name since.
            var session = svc["metadata"]!["annotations"]!["ktconnect.io/session"]!.GetValue<string>();
            var shadow = f.Cluster.Pods("dev", "kt-role=shadow-preview").Single();
            Assert.Equal(session, shadow["metadata"]!["annotations"]!["ktconnect.io/session"]!.GetValue<string>());
            var configMap = f.Cluster.Store.Get(ResourceTypes.ConfigMaps, "dev", shadow["metadata"]!["name"]!.GetValue<string>())!;
            Assert.Equal(session, configMap["metadata"]!["annotations"]!["ktconnect.io/session"]!.GetValue<string>());
            Assert.Equal("shadow-preview", svc["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
            Assert.Equal("ClusterIP", svc["spec"]!["type"]!.GetValue<string>());
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders-next.dev/", "laptop"), StringComparison.Ordinal);
            Assert.Contains("laptop", await f.WaitAnswerAsync($"http://{f.ClusterIp("orders-next")}/", "laptop"), StringComparison.Ordinal);

            // A preview may not take an existing Service's name.
            var taken = await f.Kt.RunAsync(["preview", "orders", "-n", "dev", "--expose", "18080"]);
            Assert.Equal(1, taken.ExitCode);
            Assert.Contains("PreviewServiceExists", taken.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Null(f.Service("orders-next"));
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task A_deployment_target_exchanges_the_service_in_front_of_it()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("exchange", "deploy/pay", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("Exchange session", kt.Stdout, StringComparison.Ordinal);
            Assert.Equal("shadow-exchange", f.Service("pay")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://pay.dev/", "laptop"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Contains("pay-", await f.WaitAnswerAsync("http://pay.dev/", "pay-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task Auto_mesh_routes_each_version_header_to_its_laptop_port_shares_one_router_and_the_last_stop_restores()
    {
        var before = f.Cluster.Snapshot("dev");
        string Mesh(string version, string header, int? timeoutSeconds = null) =>
            f.WaitAnswerAsync("http://orders.dev/", version, timeoutSeconds is null ? null : TimeSpan.FromSeconds(timeoutSeconds.Value), header).GetAwaiter().GetResult();

        var first = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v2", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        Connect.KtProcess? second = null;
        try
        {
            Assert.Contains("Mesh session", first.Stdout, StringComparison.Ordinal);
            Assert.Contains("requests with header 'version: v2' come here", first.Stdout, StringComparison.Ordinal);
            var svc = f.Service("orders")!;
            Assert.Equal("router", svc["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
            Assert.Equal("""{"app":"orders"}""", svc["metadata"]!["annotations"]!["kt-selector"]!.GetValue<string>());
            Assert.Null(svc["metadata"]!["annotations"]!["kt-lock"]);
            Assert.Equal("1", f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!["metadata"]!["annotations"]!["kt-ref-count"]!.GetValue<string>());
            Assert.NotNull(f.Service("orders-kt-stuntman"));
            Assert.NotNull(f.Service("orders-kt-mesh-v2"));

            Assert.Contains("port: 18080", Mesh("laptop", "version: v2"), StringComparison.Ordinal);
            Assert.Contains("orders-", Mesh("orders-", "version: v1"), StringComparison.Ordinal);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);

            // A second user with another version joins the same router.
            second = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v3", "--expose", $"{ExchangeClusterFixture.LocalAdmin}:80");
            Assert.Equal("2", f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!["metadata"]!["annotations"]!["kt-ref-count"]!.GetValue<string>());
            Assert.Contains("port: 18081", Mesh("laptop", "version: v3"), StringComparison.Ordinal);
            Assert.Contains("port: 18080", Mesh("laptop", "version: v2"), StringComparison.Ordinal);

            // The router is deleted: both users join a new one (the first to get the Service's lock makes it), both versions
            // are routed again, and it counts both.
            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", "orders-kt-router");
            foreach (var kt in new[] { first, second })
                await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("is routed by the new router", StringComparison.Ordinal) || kt.Process.HasExited,
                    "both users to join a new router");
            Assert.Equal("2", f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!["metadata"]!["annotations"]!["kt-ref-count"]!.GetValue<string>());
            Assert.Contains("port: 18081", Mesh("laptop", "version: v3"), StringComparison.Ordinal);
            Assert.Contains("port: 18080", Mesh("laptop", "version: v2"), StringComparison.Ordinal);
            Assert.Contains("orders-", Mesh("orders-", "version: v1"), StringComparison.Ordinal);

            // The first one out leaves the router to the other: its version goes back to the pods, v3 still comes here.
            Assert.Equal(0, await first.SignalAndWaitAsync(SigTerm));
            Assert.Equal("1", f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!["metadata"]!["annotations"]!["kt-ref-count"]!.GetValue<string>());
            Assert.Null(f.Service("orders-kt-mesh-v2"));
            Assert.Contains("orders-", Mesh("orders-", "version: v2"), StringComparison.Ordinal);
            Assert.Contains("port: 18081", Mesh("laptop", "version: v3"), StringComparison.Ordinal);
        }
        finally
        {
            if (!first.Process.HasExited) await first.SignalAndWaitAsync(SigTerm);
            if (second is not null) Assert.Equal(0, await second.SignalAndWaitAsync(SigInt));
        }
        Assert.Contains("everything was restored", second!.Stderr, StringComparison.Ordinal);
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task A_redeploy_of_an_auto_meshed_service_is_routed_through_the_router_again()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v6", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v6"), StringComparison.Ordinal);
            var svc = f.Service("orders")!;
            svc["spec"]!["selector"] = new System.Text.Json.Nodes.JsonObject { ["app"] = "orders" };
            f.Cluster.Apply(svc.ToJsonString());
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("was changed by someone else", StringComparison.Ordinal), "kt to notice the redeploy");
            await f.Cluster.WaitUntilAsync(() => f.Service("orders")!["spec"]!["selector"]!["kt-role"]?.GetValue<string>() == "router", "kt to route it again");
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v6"), StringComparison.Ordinal);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task After_SIGKILL_of_an_auto_mesh_kt_recover_gives_the_service_back()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v4", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v4"), StringComparison.Ordinal);
        await KtRunner.KillAsync(kt.Process);
        Assert.Equal("router", f.Service("orders")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());

        var recover = await f.Kt.RunAsync(["recover", "orders", "-n", "dev"]);
        Assert.True(recover.ExitCode == 0, recover.StandardError);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        // What recover leaves is what a ktctl recover leaves too: the shadow's ConfigMap goes with the pod by its owner reference.
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    /// <summary>
    /// A crashed user's place in the shared router is journalled: `kt clean` on this machine takes it out at once, so the
    /// router counts only live users and its last one removes it. Before, the crashed count stayed: the router, the
    /// stuntman and the Service's selector outlived every user until their heartbeats went stale.
    /// </summary>
    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl", "nginx")]
    public async Task After_SIGKILL_of_an_auto_mesh_kt_clean_takes_it_out_of_the_shared_router_and_the_last_user_removes_the_router()
    {
        var before = f.Cluster.Snapshot("dev");
        System.Text.Json.Nodes.JsonNode Router() => f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router")!;
        string Count() => Router()["metadata"]!["annotations"]!["kt-ref-count"]!.GetValue<string>();

        // The router's maker crashes while another user stays.
        var crashed = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v7", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        var live = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v8", "--expose", $"{ExchangeClusterFixture.LocalAdmin}:80");
        try
        {
            Assert.Equal("2", Count());
            Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v7"), StringComparison.Ordinal);
            await KtRunner.KillAsync(crashed.Process);

            var clean = await f.Kt.RunAsync(["clean", "-n", "dev"]);
            Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
            Assert.Contains("leave the router dev/orders-kt-router", clean.StandardOutput, StringComparison.Ordinal);
            Assert.Equal("1", Count());
            Assert.Null(f.Service("orders-kt-mesh-v7"));
            // Its version goes back to the pods; the live user's still comes to its laptop port.
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-", header: "version: v7"), StringComparison.Ordinal);
            Assert.Contains("port: 18081", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v8"), StringComparison.Ordinal);
            // A second clean finds nothing more to take: the live user's count stays.
            var again = await f.Kt.RunAsync(["clean", "-n", "dev"]);
            Assert.True(again.ExitCode == 0, again.StandardOutput + again.StandardError);
            Assert.Equal("1", Count());
        }
        finally
        {
            if (!crashed.Process.HasExited) await KtRunner.KillAsync(crashed.Process);
            Assert.Equal(0, await live.SignalAndWaitAsync(SigTerm));
        }
        // The live user was the last: it gave the Service back and removed the router and the stuntman.
        Assert.Contains("everything was restored", live.Stderr, StringComparison.Ordinal);
        Assert.Null(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router"));
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));

        // The only user crashes: the clean is its last leave.
        var alone = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--versionMark", "v9", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop", header: "version: v9"), StringComparison.Ordinal);
        await KtRunner.KillAsync(alone.Process);
        var last = await f.Kt.RunAsync(["clean", "-n", "dev"]);
        Assert.True(last.ExitCode == 0, last.StandardOutput + last.StandardError);
        Assert.Null(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-router"));
        await f.WaitServedAsync("orders", 2);
        Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Manual_mesh_adds_a_labelled_shadow_the_service_balances_to_and_stop_removes_it()
    {
        var before = f.Cluster.Snapshot("dev");
        var kt = await f.StartKtAsync("mesh", "orders", "-n", "dev", "--mode", "manual", "--versionMark", "v2", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
        try
        {
            Assert.Contains("Mesh session", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("label version=v2", kt.Stdout, StringComparison.Ordinal);
            var pod = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-mesh-v2")!;
            var labels = pod["metadata"]!["labels"]!;
            Assert.Equal(("orders", "v2", "shadow-mesh"), (labels["app"]!.GetValue<string>(), labels["version"]!.GetValue<string>(), labels["kt-role"]!.GetValue<string>()));
            // The Service is left alone: it balances across its pods and the shadow.
            Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(before.Objects["Service dev/orders"], f.Cluster.Snapshot("dev").Objects["Service dev/orders"]));
            await f.WaitServedAsync("orders", 3);
            var podIp = pod["status"]!["podIP"]!.GetValue<string>();
            Assert.Contains("port: 18080", await f.WaitAnswerAsync($"http://{podIp}:8080/", "laptop"), StringComparison.Ordinal);
            Assert.Contains("laptop", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);

            // The same version twice is refused, naming the shadow in the way.
            var again = await f.Kt.RunAsync(["mesh", "orders", "-n", "dev", "--mode", "manual", "--versionMark", "v2", "--expose", "18080:80"]);
            Assert.Equal(1, again.ExitCode);
            Assert.Contains("MeshVersionInUse", again.StandardError, StringComparison.Ordinal);

            // A selector-mode exchange would point the Service away from the shadow: refused, naming the mesh, nothing changed.
            var held = f.Cluster.Snapshot("dev");
            var exchange = await f.Kt.RunAsync(["exchange", "orders", "-n", "dev", "--expose", "18080:80"]);
            Assert.Equal(1, exchange.ExitCode);
            Assert.Contains("(ServiceAlreadyExchanged)", exchange.StandardError, StringComparison.Ordinal);
            Assert.Contains("a manual mesh's shadow is among its endpoints", exchange.StandardError, StringComparison.Ordinal);
            Assert.Contains("pod orders-kt-mesh-v2", exchange.StandardError, StringComparison.Ordinal);
            Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(held.Objects["Service dev/orders"], f.Cluster.Snapshot("dev").Objects["Service dev/orders"]));
            Assert.Empty(f.Cluster.Pods("dev", "kt-role=shadow-exchange"));
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigInt));
        }
        Assert.Null(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "orders-kt-mesh-v2"));
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Bad_input_is_one_line_and_changes_nothing()
    {
        var before = f.Cluster.Snapshot();
        foreach (var (args, code, id) in new (string[], int, string)[]
                 {
                     (["exchange", "orders", "-n", "dev", "--expose", "abc"], 2, "InvalidExposePort"),
                     (["exchange", "orders", "-n", "dev"], 2, "InvalidCommandLine"),
                     (["exchange", "orders", "-n", "dev", "--expose", "18080", "--mode", "ephemeral"], 2, "InvalidCommandLine"),
                     (["exchange", "nope", "-n", "dev", "--expose", "18080:80"], 1, "ServiceNotFound"),
                     (["exchange", "orders", "-n", "dev", "--expose", "18080:9999"], 1, "PortNotInService"),
                     (["preview", "Bad_Name", "-n", "dev", "--expose", "18080"], 2, "InvalidPreviewName"),
                     (["mesh", "orders", "-n", "dev", "--expose", "18080", "--versionMark", "Bad:1"], 2, "InvalidVersionMark"),
                     (["mesh", "nope", "-n", "dev", "--mode", "manual", "--expose", "18080:80"], 1, "ServiceNotFound"),
                     (["exchange", "deploy/client", "-n", "dev", "--expose", "18080"], 1, "NoServiceForDeployment"),
                 })
        {
            var r = await f.Kt.RunAsync(args);
            Assert.True(r.ExitCode == code, $"{string.Join(' ', args)}: {r.ExitCode} {r.StandardError}");
            Assert.Contains(id, r.StandardError, StringComparison.Ordinal);
            Assert.Single(r.StandardError.Trim().Split('\n'), l => l.StartsWith("kt:", StringComparison.Ordinal));
        }
        Assert.True(before.Diff(f.Cluster.Snapshot()).IsEmpty, before.Diff(f.Cluster.Snapshot()).ToString());
    }
}
