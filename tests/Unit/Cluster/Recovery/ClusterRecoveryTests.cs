using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Sessions;
using KtConnect.Engine.Sessions.Clean;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Unit.Common;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster.Recovery;

public sealed class ClusterRecoveryTests : IDisposable
{
    private const string Ns = "kt-test";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kt-cluster-recovery-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string JournalDir => Path.Combine(_dir, "journal");

    private static void Seed(KubeSimServer s)
    {
        s.Apply($$$"""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kt-connect-shadow-abcde","namespace":"{{{Ns}}}","labels":{"control-by":"kt"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]}}""");
        s.Apply($$$"""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kt-connect-shadow-abcde","namespace":"{{{Ns}}}","labels":{"control-by":"kt"}},"data":{"authorized":"x"}}""");
        s.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"{{{Ns}}}",
             "annotations":{"kt-selector":"{\"app\":\"orders\"}","kt-lock":"1700000000"}},
             "spec":{"selector":{"kt-role":"shadow-exchange","kt-target":"abc"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        s.Apply($$$"""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"orders","namespace":"{{{Ns}}}"},
             "spec":{"replicas":0,"selector":{"matchLabels":{"app":"orders"}},
             "template":{"metadata":{"labels":{"app":"orders"}},"spec":{"containers":[{"name":"app","image":"app"}]} }}
            }
            """);
    }

    private static ClusterChange Change(KubeClient client, KtObjectKind kind, string name, ClusterChangeKind change, string ns = Ns) => new()
    {
        Server = ClusterRecovery.ServerKey(client.Configuration.Server),
        Namespace = ns,
        ObjectKind = kind,
        Name = name,
        Change = change,
    };

    [Fact]
    public async Task Orphaned_entries_are_undone_last_first_and_others_are_left()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        Seed(sim.Server);
        var client = sim.Client;
        var journal = new ChangeJournal(JournalDir);
        // Recorded in the order a session makes them: shadow objects, lock, scale, selector.
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Pod, "kt-connect-shadow-abcde", ClusterChangeKind.Created), "s1");
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.ConfigMap, "kt-connect-shadow-abcde", ClusterChangeKind.Created), "s1");
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Service, "orders", ClusterChangeKind.Locked) with { LockValue = "1700000000" }, "s1");
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Deployment, "orders", ClusterChangeKind.Scaled) with { OriginalReplicas = 2 }, "s1");
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Service, "orders", ClusterChangeKind.SelectorChanged)
            with { OriginalSelector = new Dictionary<string, string> { ["app"] = "orders" } }, "s1");
        // Entries that must stay: another API server, another namespace.
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Pod, "elsewhere", ClusterChangeKind.Created) with { Server = "https://other.example:6443" }, "s2");
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Pod, "elsewhere", ClusterChangeKind.Created, "other-ns"), "s3");
        await JournalFiles.SimulateCrashAsync(JournalDir);
        // A live entry (this process) for the same namespace must stay too.
        var live = await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Pod, "live-shadow", ClusterChangeKind.Created), "s4");

        var pending = ClusterRecovery.Pending(journal, client.Configuration.Server, Ns);
        Assert.Equal(
        [
            "restore the selector of Service kt-test/orders to {\"app\":\"orders\"}",
            "scale Deployment kt-test/orders back to 2",
            "unlock Service kt-test/orders",
            "delete ConfigMap kt-test/kt-connect-shadow-abcde",
            "delete Pod kt-test/kt-connect-shadow-abcde",
        ], pending.Select(e => e.Description));

        var seen = new List<string>();
        var undone = await ClusterRecovery.UndoOrphanedAsync(journal, client, Ns, shouldProcess: e => { seen.Add(e.Description); return true; });
        Assert.Equal(pending.Select(e => e.Description), seen);
        Assert.Equal(5, undone.Count);

        Assert.Null(await client.Pods.TryGetAsync("kt-connect-shadow-abcde", Ns));
        Assert.Null(await client.ConfigMaps.TryGetAsync("kt-connect-shadow-abcde", Ns));
        var svc = await client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, svc.Spec!.Selector);
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation));
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.LockAnnotation));
        Assert.Equal(2, (await client.Deployments.GetAsync("orders", Ns)).Spec!.Replicas);

        var left = journal.ReadAll().Select(e => ClusterChange.FromEntry(e)!).ToList();
        Assert.Equal(3, left.Count);
        Assert.Contains(left, c => c.Server == "https://other.example:6443");
        Assert.Contains(left, c => c.Namespace == "other-ns");
        Assert.Contains(journal.ReadAll(), e => e.Id == live.Id);

        // Run again: nothing pending, nothing fails (idempotent on objects already restored or gone).
        Assert.Empty(await ClusterRecovery.UndoOrphanedAsync(journal, client, Ns));
    }

    [Fact]
    public async Task Undo_is_idempotent_and_never_takes_a_lock_or_selector_that_is_not_ours()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        sim.Server.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"{{{Ns}}}","annotations":{"kt-lock":"1800000000"}},
             "spec":{"selector":{"app":"orders-v2"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        var handler = new ClusterUndoHandler(sim.Client);
        // Someone else's lock (a different value) and a selector without kt-selector (restored already, then changed by a person).
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Service, "orders", ClusterChangeKind.Locked) with { LockValue = "1700000000" }, default);
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Service, "orders", ClusterChangeKind.SelectorChanged)
            with { OriginalSelector = new Dictionary<string, string> { ["app"] = "orders" } }, default);
        // Objects that are gone already.
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Pod, "gone", ClusterChangeKind.Created), default);
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Deployment, "gone", ClusterChangeKind.Scaled) with { OriginalReplicas = 1 }, default);

        // A selector exchange of ours, undone by recover and then exchanged by someone else: their shadow keeps the Service.
        sim.Server.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"pay","namespace":"{{{Ns}}}","annotations":{"kt-selector":"{\"app\":\"pay\"}"}},
             "spec":{"selector":{"kt-role":"shadow-exchange","kt-target":"theirs"},"ports":[{"port":80}]}}
            """);
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Service, "pay", ClusterChangeKind.SelectorChanged)
            with { OriginalSelector = new Dictionary<string, string> { ["app"] = "pay" }, Target = "ours" }, default);
        Assert.Equal("theirs", (await sim.Client.Services.GetAsync("pay", Ns)).Spec!.Selector!["kt-target"]);
        // A Deployment we scaled to 0, scaled back by hand since: left at what the person chose.
        sim.Server.Apply($$$"""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"pay","namespace":"{{{Ns}}}"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"pay"}},
             "template":{"metadata":{"labels":{"app":"pay"}},"spec":{"containers":[{"name":"c","image":"x"}]} } } }
            """);
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Deployment, "pay", ClusterChangeKind.Scaled) with { OriginalReplicas = 1 }, default);
        Assert.Equal(3, (await sim.Client.Deployments.GetAsync("pay", Ns)).Spec!.Replicas);

        // A Service we created once, deleted meanwhile by someone who made their own of that name: theirs stays.
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Service, "orders", ClusterChangeKind.Created), default);

        var svc = await sim.Client.Services.GetAsync("orders", Ns);
        Assert.Equal("1800000000", svc.Metadata.GetAnnotation(KtConventions.LockAnnotation));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders-v2" }, svc.Spec!.Selector);

        // Ours (control-by=kt) is deleted.
        sim.Server.Apply($$$"""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders-next","namespace":"{{{Ns}}}","labels":{"control-by":"kt"}},"spec":{"ports":[{"port":80}]}}""");
        await handler.UndoAsync(Change(sim.Client, KtObjectKind.Service, "orders-next", ClusterChangeKind.Created), default);
        Assert.Null(await sim.Client.Services.TryGetAsync("orders-next", Ns));
    }

    [Fact]
    public async Task A_crashed_sessions_place_in_the_shared_shadow_is_released_only_while_the_shadow_lists_it()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        // Two KtConnect sessions and a ktctl user (counted, not listed).
        sim.Server.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"kt-connect-shadow-daemon","namespace":"{{{Ns}}}","labels":{"control-by":"kt"},
             "annotations":{"kt-ref-count":"3","ktconnect.io/members":"crashed,live"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
            """);
        string Count() => sim.Server.Store.Get(KtConnect.KubeSim.Store.ResourceTypes.Pods, Ns, KtConventions.SharedShadowName)!["metadata"]!["annotations"]!
            ["kt-ref-count"]!.GetValue<string>();
        var handler = new ClusterUndoHandler(sim.Client);
        var joined = Change(sim.Client, KtObjectKind.Pod, KtConventions.SharedShadowName, ClusterChangeKind.Joined);
        Assert.Equal("leave the shared shadow kt-test/kt-connect-shadow-daemon", joined.Description);

        await handler.UndoAsync(joined, "crashed", default);
        Assert.Equal("2", Count());
        // Undone again (its completion was lost), or by a session that never got in: nobody else's count goes.
        await handler.UndoAsync(joined, "crashed", default);
        await handler.UndoAsync(joined, "never-joined", default);
        Assert.Equal("2", Count());
        await handler.UndoAsync(joined, "live", default);
        Assert.Equal("1", Count());
        Assert.NotNull(await sim.Client.Pods.TryGetAsync(KtConventions.SharedShadowName, Ns));
    }

    [Fact]
    public async Task A_router_leave_refused_for_the_crashed_sessions_own_lock_is_tried_again_after_that_lock_is_undone()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var client = sim.Client;
        // The session crashed while it held the Service's lock during its set-up, after joining the router as its only user.
        var lockValue = KtConventions.FormatUnixSeconds(client.Clock.UtcNow);
        sim.Server.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"{{{Ns}}}",
             "annotations":{"kt-selector":"{\"app\":\"orders\"}","kt-lock":"{{{lockValue}}}"}},
             "spec":{"selector":{"kt-role":"router","kt-target":"t"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        sim.Server.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-router","namespace":"{{{Ns}}}","labels":{"control-by":"kt","kt-role":"router"},
             "annotations":{"kt-ref-count":"1","ktconnect.io/members":"s1","kt-config":"service=orders"}},"spec":{"containers":[{"name":"standalone","image":"router"}]}}
            """);
        var journal = new ChangeJournal(JournalDir);
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Service, "orders", ClusterChangeKind.Locked) with { LockValue = lockValue }, "s1");
        await ClusterJournal.RecordAsync(journal, Change(client, KtObjectKind.Pod, "orders-kt-router", ClusterChangeKind.Joined) with { Mark = "version:v1" }, "s1");
        await JournalFiles.SimulateCrashAsync(JournalDir);

        var undone = await ClusterRecovery.UndoOrphanedAsync(journal, client, Ns);
        Assert.Equal(2, undone.Count);
        Assert.Null(await client.Pods.TryGetAsync("orders-kt-router", Ns));
        var svc = await client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, svc.Spec!.Selector);
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.LockAnnotation));
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task A_journalled_change_whose_undo_was_never_registered_is_undone_by_its_fallback_before_its_entry_completes()
    {
        // A join whose answer never came registers no release, yet the server may have counted it: the fallback finds out.
        var journal = new ChangeJournal(JournalDir);
        var entry = await journal.RecordAsync("test", new Dictionary<string, string>(), "joined", "s1");
        var deferred = new List<Func<CancellationToken, Task>>();
        var calls = new List<string>();
        ClusterRecovery.CompleteAfterUndo((_, u) => deferred.Add(u), journal, [entry], "the join", _ =>
        {
            calls.Add(journal.ReadAll().Any(e => e.Id == entry.Id) ? "fallback, entry still there" : "fallback, entry gone");
            return Task.CompletedTask;
        });
        foreach (var u in Enumerable.Reverse(deferred)) await u(CancellationToken.None);
        Assert.Equal(["fallback, entry still there"], calls);
        Assert.Empty(journal.ReadAll());

        // Registered: the registered undo runs, the fallback does not.
        var second = await journal.RecordAsync("test", new Dictionary<string, string>(), "joined", "s1");
        deferred.Clear();
        calls.Clear();
        var defer = ClusterRecovery.CompleteAfterUndo((_, u) => deferred.Add(u), journal, [second], "the join", _ =>
        {
            calls.Add("fallback");
            return Task.CompletedTask;
        });
        defer("release", _ =>
        {
            calls.Add("release");
            return Task.CompletedTask;
        });
        foreach (var u in Enumerable.Reverse(deferred)) await u(CancellationToken.None);
        Assert.Equal(["release"], calls);
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task A_crashed_sessions_entry_leaves_an_object_of_the_same_name_that_another_session_made_since()
    {
        // Machine A's mesh crashed; its shadow was cleaned up elsewhere and machine B's live mesh made one of the same
        // name. A's next command undoes A's journal: B's shadow stays, while A's own is deleted.
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        string Pod(string name, string session) =>
            $$$"""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"{{{name}}}","namespace":"{{{Ns}}}","labels":{"control-by":"kt"},"annotations":{"ktconnect.io/session":"{{{session}}}"}},"spec":{"containers":[{"name":"c","image":"shadow"}]}}""";
        sim.Server.Apply(Pod("orders-kt-mesh-v1", "session-b"));
        sim.Server.Apply(Pod("orders-kt-mesh-v2", "session-a"));
        var journal = new ChangeJournal(JournalDir);
        await ClusterJournal.RecordAsync(journal, Change(sim.Client, KtObjectKind.Pod, "orders-kt-mesh-v1", ClusterChangeKind.Created), "session-a");
        await ClusterJournal.RecordAsync(journal, Change(sim.Client, KtObjectKind.Pod, "orders-kt-mesh-v2", ClusterChangeKind.Created), "session-a");
        await JournalFiles.SimulateCrashAsync(JournalDir);

        await journal.UndoAsync([new ClusterUndoHandler(sim.Client)]);

        Assert.NotNull(await sim.Client.Pods.TryGetAsync("orders-kt-mesh-v1", Ns));
        await Wait.UntilAsync(async () => await sim.Client.Pods.TryGetAsync("orders-kt-mesh-v2", Ns) is null, "session A's own shadow to be deleted");
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task An_entry_of_another_server_is_refused_by_the_handler_and_stays_in_the_journal()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var journal = new ChangeJournal(JournalDir);
        await ClusterJournal.RecordAsync(journal, Change(sim.Client, KtObjectKind.Pod, "p", ClusterChangeKind.Created) with { Server = "https://other.example:6443" }, null);
        await JournalFiles.SimulateCrashAsync(JournalDir);

        var e = await Assert.ThrowsAsync<KtException>(() => new ClusterUndoHandler(sim.Client).UndoAsync(journal.ReadAll()[0], default));
        Assert.Equal(ClusterRecovery.ServerMismatchErrorId, e.ErrorId);
        // The generic journal undo with this handler leaves it too.
        var undone = await journal.UndoAsync([new ClusterUndoHandler(sim.Client)]);
        Assert.Empty(undone);
        Assert.Single(journal.ReadAll());
    }

    [Fact]
    public void Server_keys_ignore_a_trailing_slash_and_case()
    {
        Assert.True(ClusterRecovery.SameServer("https://API.example:6443/", new Uri("https://api.example:6443")));
        Assert.True(ClusterRecovery.SameServer("https://api.example", new Uri("https://api.example:443/")));
        Assert.False(ClusterRecovery.SameServer("https://api.example:6443", new Uri("https://api.example:6444")));
        Assert.False(ClusterRecovery.SameServer("not a url", new Uri("https://api.example")));
    }

    /// <summary>A worker that creates a private shadow the way ShadowSetup does, without waiting for it to run.</summary>
    private sealed class CreateShadowWorker(KubeClient client, ChangeJournal journal, ShadowPodSpec spec) : ISessionWorker
    {
        public async Task StartAsync(SessionContext context, CancellationToken cancellationToken)
        {
            var defer = await ClusterRecovery.JournalShadowAsync(context.Defer, context.JournalId, client, journal, spec, cancellationToken);
            await new ShadowPods(client).CreateAsync(spec, defer, cancellationToken);
        }
    }

    private sealed class NothingWorker : ISessionWorker
    {
        public Task StartAsync(SessionContext context, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static ShadowPodSpec Spec(string name) => new()
    {
        Name = name,
        Namespace = Ns,
        Role = KtConventions.Roles.ShadowConnect,
        AuthorizedKey = "ecdsa-sha2-nistp256 AAAA test",
    };

    private static SessionRequest Request => new() { Kind = SessionKind.Connect, Namespace = Ns, Target = "kubesim" };

    [Fact]
    public async Task A_shadow_is_journalled_before_creation_and_its_entries_complete_when_the_session_deletes_it()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var journal = new ChangeJournal(JournalDir);
        var registry = new SessionRegistry();
        var session = await registry.StartAsync(Request, new CreateShadowWorker(sim.Client, journal, Spec("kt-connect-shadow-jrnla")));

        Assert.NotNull(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-jrnla", Ns));
        var entries = journal.ReadAll().Select(e => ClusterChange.FromEntry(e)!).ToList();
        Assert.Equal([(KtObjectKind.Pod, ClusterChangeKind.Created), (KtObjectKind.ConfigMap, ClusterChangeKind.Created)],
            entries.Select(c => (c.ObjectKind, c.Change)));
        Assert.All(entries, c => Assert.True(ClusterRecovery.SameServer(c.Server, sim.Client.Configuration.Server)));

        await session.StopAsync();
        Assert.Null(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-jrnla", Ns));
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task After_a_crash_the_next_session_start_in_the_namespace_removes_the_shadow_at_once()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var journal = new ChangeJournal(JournalDir);
        var crashed = new SessionRegistry();
        await crashed.StartAsync(Request, new CreateShadowWorker(sim.Client, journal, Spec("kt-connect-shadow-crash")));
        // The process "dies": its session never stops, its journal entries now belong to a dead pid. The heartbeat is
        // fresh, so a threshold-based clean would leave the shadow for minutes.
        await JournalFiles.SimulateCrashAsync(JournalDir);
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-crash", Ns));

        var kubeconfig = SimKubeconfig.Write(sim, _dir);
        var next = await ClusterSessions.StartAsync(new RecoveryTestOptions { Kubeconfig = kubeconfig, Journal = journal }, SessionKind.Forward,
            (client, _) => { client.Dispose(); return new NothingWorker(); }, registry: new SessionRegistry());

        Assert.Null(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-crash", Ns));
        Assert.Null(await sim.Client.ConfigMaps.TryGetAsync("kt-connect-shadow-crash", Ns));
        Assert.Empty(journal.ReadAll());
        await next.StopAsync();
    }

    [Fact]
    public async Task Clean_lists_orphaned_journal_entries_on_a_dry_run_and_undoes_them_otherwise()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var journal = new ChangeJournal(JournalDir);
        await new SessionRegistry().StartAsync(Request, new CreateShadowWorker(sim.Client, journal, Spec("kt-connect-shadow-clean")));
        await JournalFiles.SimulateCrashAsync(JournalDir);
        var options = new CleanOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = journal, IncludeLocal = false, DryRun = true };

        var dry = await Cleaner.RunAsync(options);
        Assert.Equal(["delete ConfigMap kt-test/kt-connect-shadow-clean", "delete Pod kt-test/kt-connect-shadow-clean"],
            dry.Cluster.Select(e => e.Description));
        Assert.Empty(dry.Plan!.Actions); // fresh heartbeat: the threshold clean would leave it
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-clean", Ns));
        Assert.Equal(2, journal.ReadAll().Count);

        var report = await Cleaner.RunAsync(options with { DryRun = false });
        Assert.Equal(2, report.Cluster.Count);
        Assert.Null(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-clean", Ns));
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task Clean_asks_for_each_step_by_its_description_and_does_only_the_accepted_ones()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var journal = new ChangeJournal(JournalDir);
        await new SessionRegistry().StartAsync(Request, new CreateShadowWorker(sim.Client, journal, Spec("kt-connect-shadow-askme")));
        await JournalFiles.SimulateCrashAsync(JournalDir);
        sim.Server.Apply($$$"""
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kt-connect-shadow-stale","namespace":"{{{Ns}}}","labels":{"control-by":"kt"},
             "annotations":{"kt-last-heart-beat":"{{{KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-10))}}}"} },"data":{"a":"b"} }
            """);
        var options = new CleanOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = journal, IncludeLocal = false };

        var plan = await Cleaner.PlanAsync(options);
        var descriptions = plan.Descriptions.ToList();
        Assert.Equal("delete ConfigMap kt-test/kt-connect-shadow-askme", descriptions[0]);
        Assert.Equal("delete Pod kt-test/kt-connect-shadow-askme", descriptions[1]);
        Assert.StartsWith("Delete ConfigMap kt-test/kt-connect-shadow-stale (last heartbeat 10", descriptions[2], StringComparison.Ordinal);
        Assert.Equal(3, descriptions.Count);

        var asked = new List<string>();
        var report = await Cleaner.RunAsync(options, shouldProcess: d => { asked.Add(d); return !d.StartsWith("delete Pod", StringComparison.Ordinal); });
        Assert.Equal(descriptions, asked);
        Assert.Equal(["delete ConfigMap kt-test/kt-connect-shadow-askme"], report.Cluster.Select(e => e.Description));
        Assert.True(Assert.Single(report.Outcomes).Done);
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("kt-connect-shadow-askme", Ns)); // declined: left, and still journalled
        Assert.Null(await sim.Client.ConfigMaps.TryGetAsync("kt-connect-shadow-askme", Ns));
        Assert.Null(await sim.Client.ConfigMaps.TryGetAsync("kt-connect-shadow-stale", Ns));
        Assert.Equal(["delete Pod kt-test/kt-connect-shadow-askme"], journal.ReadAll().Select(e => e.Description));
    }

    [Fact]
    public async Task Clean_leaves_out_what_came_alive_between_plan_and_execution_and_says_so()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        string Beat(double minutesAgo) => KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-minutesAgo));
        foreach (var name in new[] { "kt-connect-shadow-wakes", "kt-connect-shadow-gone" })
            sim.Server.Apply($$$"""
                {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"{{{name}}}","namespace":"{{{Ns}}}","labels":{"control-by":"kt"},
                 "annotations":{"kt-last-heart-beat":"{{{Beat(10)}}}"} },"data":{"a":"b"} }
                """);
        var options = new CleanOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = new ChangeJournal(JournalDir), IncludeLocal = false, Threshold = TimeSpan.Zero };
        var plan = await Cleaner.PlanAsync(options);
        Assert.Equal(2, plan.Stale!.Actions.Count);

        // While -Confirm waits, the laptop that owns one wakes up and beats again.
        sim.Server.Store.Mutate(KtConnect.KubeSim.Store.ResourceTypes.ConfigMaps, Ns, "kt-connect-shadow-wakes", o =>
        {
            o["metadata"]!["annotations"]!["kt-last-heart-beat"] = Beat(0);
            return o;
        });
        var output = new RecordingOutput();
        var report = await Cleaner.ExecuteAsync(options, plan, output);
        Assert.Equal(["Delete ConfigMap kt-test/kt-connect-shadow-gone"], report.Outcomes.Select(o => o.Action.Description[..o.Action.Description.IndexOf(" (", StringComparison.Ordinal)]));
        Assert.NotNull(await sim.Client.ConfigMaps.TryGetAsync("kt-connect-shadow-wakes", Ns));
        Assert.Null(await sim.Client.ConfigMaps.TryGetAsync("kt-connect-shadow-gone", Ns));
        Assert.Contains(output.Warnings, w => w.StartsWith("not done: Delete ConfigMap kt-test/kt-connect-shadow-wakes", StringComparison.Ordinal));
    }

    private sealed record RecoveryTestOptions : ShadowOptions;
}
