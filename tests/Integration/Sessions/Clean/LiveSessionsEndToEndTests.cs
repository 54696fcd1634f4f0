using System.Globalization;
using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.Sessions.Connect;
using KtConnect.Tests.Integration.Sessions.Exchange;
using KtConnect.Engine.Sessions.Clean;

namespace KtConnect.Tests.Integration.Sessions.Clean;

/// <summary>
/// `kt clean --thresholdInMinus 0` and `kt recover`, and the engine calls Clear-KtResource and Restore-KtService make,
/// against a live connect and a live exchange: of this machine (the same HOME, so the same journal) and of another
/// machine (a second HOME: no journal here knows the sessions, only their fresh heartbeats say they live). The live
/// sessions must come out untouched and working; what a session that died long ago left must still be cleaned.
/// </summary>
[Collection(ExchangeClusterCollection.Name)]
public sealed class LiveSessionsEndToEndTests(ExchangeClusterFixture f)
{
    private const int SigTerm = 15;

    /// <summary>What a session that died 10 minutes ago on another machine left: a connect shadow, its ConfigMap, a preview Service.</summary>
    private void ApplyStaleLeftovers()
    {
        var old = DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        f.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"kt-connect-shadow-stale","namespace":"dev",
             "labels":{"control-by":"kt","kt-role":"shadow-connect"},"annotations":{"kt-last-heart-beat":"{{{old}}}"}},
             "spec":{"containers":[{"name":"standalone","image":"ktconnect/echo:1.0","ports":[{"containerPort":8080}]}]}}
            """);
        f.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kt-connect-shadow-stale","namespace":"dev",
             "labels":{"control-by":"kt"},"annotations":{"kt-last-heart-beat":"{{{old}}}"}},"data":{"authorized":"ssh-ed25519 AAAA"}}
            """);
        f.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"old-preview","namespace":"dev",
             "labels":{"control-by":"kt"},"annotations":{"kt-last-heart-beat":"{{{old}}}"}},
             "spec":{"selector":{"kt-role":"shadow-preview","kt-target":"gone"},"ports":[{"port":80,"targetPort":80}]}}
            """);
    }

    private Task WaitStaleLeftoversGoneAsync() => f.Cluster.WaitUntilAsync(() =>
            f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "kt-connect-shadow-stale") is null
            && f.Cluster.Store.Get(ResourceTypes.ConfigMaps, "dev", "kt-connect-shadow-stale") is null
            && f.Service("old-preview") is null,
        "the stale leftovers to be gone");

    /// <summary>Live sessions of this machine (the fixture's kt HOME): `kt connect --mode socks` and `kt exchange orders`.</summary>
    private sealed record Live(KtProcess Connect, KtProcess Exchange, string ConnectShadow, string ExchangeShadow, int ProxyPort);

    private async Task<Live> StartLiveAsync(int proxyPort)
    {
        var connect = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", proxyPort.ToString(CultureInfo.InvariantCulture));
        KtProcess? exchange = null;
        try
        {
            exchange = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
            var connectShadow = f.Cluster.Pods("dev", "kt-role=shadow-connect").Select(p => p["metadata"]!["name"]!.GetValue<string>())
                .Single(n => connect.Stdout.Contains(n, StringComparison.Ordinal));
            var exchangeShadow = Assert.Single(f.Cluster.Pods("dev", "kt-role=shadow-exchange"))["metadata"]!["name"]!.GetValue<string>();
            // Heartbeats are unix seconds: wait until both are in the past, so threshold 0 alone would take them.
            await f.Cluster.WaitUntilAsync(() => new[] { connectShadow, exchangeShadow }.All(p =>
                    long.Parse(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", p)!["metadata"]!["annotations"]!["kt-last-heart-beat"]!.GetValue<string>(),
                        CultureInfo.InvariantCulture) < DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
                "the live shadows' heartbeats to be in the past");
            return new Live(connect, exchange, connectShadow, exchangeShadow, proxyPort);
        }
        catch
        {
            if (exchange is not null) await exchange.SignalAndWaitAsync(SigTerm);
            await connect.SignalAndWaitAsync(SigTerm);
            throw;
        }
    }

    /// <summary>The live sessions' objects are all there, none being deleted, and the exchanged Service is exactly as the exchange set it.</summary>
    private void AssertUntouched(Live live, ClusterSnapshot held)
    {
        var now = f.Cluster.Snapshot("dev");
        foreach (var key in new[] { "Pod", "ConfigMap" }.SelectMany(k => new[] { $"{k} dev/{live.ConnectShadow}", $"{k} dev/{live.ExchangeShadow}" }))
        {
            Assert.True(now.Objects.TryGetValue(key, out var o), key + " is gone");
            Assert.Null(o["metadata"]?["deletionTimestamp"]);
        }
        Assert.True(JsonNode.DeepEquals(held.Objects["Service dev/orders"], now.Objects["Service dev/orders"]),
            "Service dev/orders changed: " + now.Objects["Service dev/orders"].ToJsonString());
        Assert.Equal("shadow-exchange", f.Service("orders")!["spec"]!["selector"]!["kt-role"]!.GetValue<string>());
    }

    /// <summary>Both sessions still work: the cluster's calls to orders reach the laptop, the laptop's SOCKS proxy reaches the cluster.</summary>
    private async Task AssertWorkingAsync(Live live)
    {
        Assert.Contains("port: 18080", await f.WaitAnswerAsync("http://orders.dev/", "laptop"), StringComparison.Ordinal);
        var r = await f.Cluster.RunInLaptopAsync(["curl", "-sS", "--max-time", "15", "--socks5-hostname", $"127.0.0.1:{live.ProxyPort}", "http://pay.dev.svc.cluster.local/"]);
        Assert.True(r.ExitCode == 0 && r.StandardOutput.Contains("pay-", StringComparison.Ordinal), r.StandardOutput + r.StandardError + live.Connect.Stderr);
        Assert.False(live.Connect.Process.HasExited, live.Connect.Stderr);
        Assert.False(live.Exchange.Process.HasExited, live.Exchange.Stderr);
    }

    private async Task StopAsync(Live live)
    {
        Assert.Equal(0, await live.Exchange.SignalAndWaitAsync(SigTerm));
        Assert.Equal(0, await live.Connect.SignalAndWaitAsync(SigTerm));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Clean_at_threshold_zero_and_recover_leave_this_machines_live_sessions_untouched_and_working_and_clean_a_stale_one()
    {
        var before = f.Cluster.Snapshot("dev");
        var live = await StartLiveAsync(2240);
        try
        {
            ApplyStaleLeftovers();
            var held = f.Cluster.Snapshot("dev");

            var clean = await f.Kt.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0"]);
            Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
            Assert.Contains("cluster: done: Delete Pod dev/kt-connect-shadow-stale", clean.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain(live.ConnectShadow, clean.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain(live.ExchangeShadow, clean.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain("dev/orders", clean.StandardOutput, StringComparison.Ordinal);
            foreach (var shadow in new[] { live.ConnectShadow, live.ExchangeShadow })
                Assert.Contains($"kept: Pod dev/{shadow} (", clean.StandardError, StringComparison.Ordinal);
            Assert.Contains("owned by a live session on this machine (pid ", clean.StandardError, StringComparison.Ordinal);
            await WaitStaleLeftoversGoneAsync();
            AssertUntouched(live, held);

            var recover = await f.Kt.RunAsync(["recover", "orders", "-n", "dev"]);
            Assert.Equal(1, recover.ExitCode);
            Assert.Contains("(RecoverServiceInUse)", recover.StandardError, StringComparison.Ordinal);
            Assert.Contains("a session on this machine (pid ", recover.StandardError, StringComparison.Ordinal);
            Assert.Empty(recover.StandardOutput);
            AssertUntouched(live, held);

            // What Clear-KtResource and Restore-KtService call, in another process of this machine (this test), with kt's journal.
            var journal = new ChangeJournal(Path.Combine(f.Kt.Home, ".kt", "journal"));
            var cleanOptions = new CleanOptions { Kubeconfig = f.Kt.Kubeconfig, Namespace = "dev", Threshold = TimeSpan.Zero, IncludeLocal = false, Journal = journal };
            var plan = await Cleaner.PlanAsync(cleanOptions);
            Assert.Empty(plan.Stale!.Actions);
            Assert.Contains(plan.Stale.Kept, k => k.StartsWith($"kept: Pod dev/{live.ExchangeShadow} (", StringComparison.Ordinal));
            var report = await Cleaner.ExecuteAsync(cleanOptions, plan);
            Assert.Empty(report.Outcomes);
            var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() =>
                Recoverer.PlanAsync(new RecoverOptions { Kubeconfig = f.Kt.Kubeconfig, Namespace = "dev", Journal = journal }, "orders"));
            Assert.Equal("RecoverServiceInUse", e.ErrorId);
            AssertUntouched(live, held);

            await AssertWorkingAsync(live);
        }
        finally
        {
            await StopAsync(live);
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task Clean_at_threshold_zero_and_recover_from_another_machine_leave_live_sessions_untouched_and_working_and_clean_a_stale_one()
    {
        var before = f.Cluster.Snapshot("dev");
        // Another machine: its own HOME, so its own (empty) journal.
        var other = new KtRunner(f.Cluster);
        var live = await StartLiveAsync(2241);
        try
        {
            ApplyStaleLeftovers();
            var held = f.Cluster.Snapshot("dev");

            var clean = await other.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0"]);
            Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
            Assert.Contains("cluster: done: Delete Pod dev/kt-connect-shadow-stale", clean.StandardOutput, StringComparison.Ordinal);
            Assert.Contains("cluster: done: Delete Service dev/old-preview", clean.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain(live.ConnectShadow, clean.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain(live.ExchangeShadow, clean.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain("dev/orders", clean.StandardOutput, StringComparison.Ordinal);
            foreach (var shadow in new[] { live.ConnectShadow, live.ExchangeShadow })
                Assert.Contains($"kept: Pod dev/{shadow} (", clean.StandardError, StringComparison.Ordinal);
            Assert.Contains("its session may be alive on another machine", clean.StandardError, StringComparison.Ordinal);
            await WaitStaleLeftoversGoneAsync();
            AssertUntouched(live, held);

            var recover = await other.RunAsync(["recover", "orders", "-n", "dev"]);
            Assert.Equal(1, recover.ExitCode);
            Assert.Contains("(RecoverServiceInUse)", recover.StandardError, StringComparison.Ordinal);
            Assert.Contains("user 'root'", recover.StandardError, StringComparison.Ordinal);
            Assert.Contains($"shadow pod {live.ExchangeShadow}", recover.StandardError, StringComparison.Ordinal);
            Assert.Empty(recover.StandardOutput);
            AssertUntouched(live, held);

            // What Clear-KtResource and Restore-KtService call on that other machine.
            var journal = new ChangeJournal(Path.Combine(other.Home, ".kt", "journal"));
            var cleanOptions = new CleanOptions { Kubeconfig = other.Kubeconfig, Namespace = "dev", Threshold = TimeSpan.Zero, IncludeLocal = false, Journal = journal };
            var plan = await Cleaner.PlanAsync(cleanOptions);
            Assert.Empty(plan.Stale!.Actions);
            Assert.Contains(plan.Stale.Kept, k => k.StartsWith($"kept: Pod dev/{live.ConnectShadow} (", StringComparison.Ordinal));
            Assert.Empty((await Cleaner.ExecuteAsync(cleanOptions, plan)).Outcomes);
            var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() =>
                Recoverer.PlanAsync(new RecoverOptions { Kubeconfig = other.Kubeconfig, Namespace = "dev", Journal = journal }, "orders"));
            Assert.Equal("RecoverServiceInUse", e.ErrorId);
            AssertUntouched(live, held);

            await AssertWorkingAsync(live);
        }
        finally
        {
            await StopAsync(live);
            Directory.Delete(other.Home, recursive: true);
        }
        await f.WaitServedAsync("orders", 2);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nft", "curl")]
    public async Task After_SIGKILL_recover_on_this_machine_works_at_once_while_another_machine_cannot_tell_the_session_is_gone()
    {
        var before = f.Cluster.Snapshot("dev");
        var other = new KtRunner(f.Cluster);
        try
        {
            var exchange = await f.StartKtAsync("exchange", "orders", "-n", "dev", "--expose", $"{ExchangeClusterFixture.LocalHttp}:80");
            var shadow = Assert.Single(f.Cluster.Pods("dev", "kt-role=shadow-exchange"))["metadata"]!["name"]!.GetValue<string>();
            await KtRunner.KillAsync(exchange.Process);
            var killed = f.Cluster.Snapshot("dev");

            // Another machine sees a heartbeat younger than 3 periods: it cannot know the session died, and refuses.
            var refused = await other.RunAsync(["recover", "orders", "-n", "dev"]);
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("(RecoverServiceInUse)", refused.StandardError, StringComparison.Ordinal);
            Assert.Contains($"shadow pod {shadow}", refused.StandardError, StringComparison.Ordinal);
            Assert.True(killed.Diff(f.Cluster.Snapshot("dev")).IsEmpty, killed.Diff(f.Cluster.Snapshot("dev")).ToString());

            // This machine's journal says the owner is gone: recover gives the Service back now.
            var recover = await f.Kt.RunAsync(["recover", "orders", "-n", "dev"]);
            Assert.True(recover.ExitCode == 0, recover.StandardOutput + recover.StandardError);
            Assert.Contains("done: Restore selector of Service dev/orders to {\"app\":\"orders\"}", recover.StandardOutput, StringComparison.Ordinal);
            Assert.Contains($"done: Delete Pod dev/{shadow}", recover.StandardOutput, StringComparison.Ordinal);
            await f.WaitServedAsync("orders", 2);
            Assert.Contains("orders-", await f.WaitAnswerAsync("http://orders.dev/", "orders-"), StringComparison.Ordinal);
        }
        finally
        {
            // The killed session's journal entries are undone (nothing left to do) and completed.
            (await f.Kt.RunAsync(["clean", "-n", "dev"])).EnsureSuccess();
            Directory.Delete(other.Home, recursive: true);
        }
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
    }
}
