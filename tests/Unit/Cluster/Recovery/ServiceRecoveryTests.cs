using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Sessions.Clean;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster.Recovery;

public sealed class ServiceRecoveryTests : IDisposable
{
    private const string Ns = "kt-test";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kt-recover-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_selector_exchange_is_undone_now_and_its_shadow_deleted()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var s = sim.Server;
        s.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test",
             "annotations":{"kt-selector":"{\"app\":\"orders\"}","kt-lock":"1700000000"}},
             "spec":{"selector":{"kt-role":"shadow-exchange","kt-target":"abc"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        s.Apply("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-exchange-abcde","namespace":"kt-test",
             "labels":{"control-by":"kt","kt-role":"shadow-exchange","kt-target":"abc"},"annotations":{"kt-config":"service=orders"}},
             "spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
            """);
        s.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unrelated-shadow","namespace":"kt-test","labels":{"control-by":"kt","kt-role":"shadow-connect"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]}}""");
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir) };

        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.Equal(
        [
            (CleanupActionKind.RestoreServiceSelector, "orders"),
            (CleanupActionKind.DeletePod, "orders-kt-exchange-abcde"),
            (CleanupActionKind.DeleteConfigMap, "orders-kt-exchange-abcde"),
        ], plan.Actions.Select(a => (a.Kind, a.Name)));
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("orders-kt-exchange-abcde", Ns)); // planning changes nothing

        var outcomes = await Recoverer.ExecuteAsync(options, plan);
        Assert.All(outcomes, o => Assert.True(o.Done, o.Error));
        var svc = await sim.Client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, svc.Spec!.Selector);
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation));
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.LockAnnotation));
        Assert.Null(await sim.Client.Pods.TryGetAsync("orders-kt-exchange-abcde", Ns));
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("unrelated-shadow", Ns));

        Assert.Empty((await Recoverer.PlanAsync(options, "orders")).Actions); // nothing left to recover
    }

    [Fact]
    public async Task A_scale_exchange_is_scaled_back_from_the_shadows_kt_config()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var s = sim.Server;
        s.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},"spec":{"selector":{"app":"orders"},"ports":[{"port":80}]}}""");
        s.Apply("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"orders","namespace":"kt-test"},
             "spec":{"replicas":0,"selector":{"matchLabels":{"app":"orders"}},
             "template":{"metadata":{"labels":{"app":"orders"}},"spec":{"containers":[{"name":"app","image":"app"}]} } } }
            """);
        s.Apply("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-exchange-fghij","namespace":"kt-test",
             "labels":{"control-by":"kt","kt-role":"shadow-exchange","app":"orders"},"annotations":{"kt-config":"app=orders,replicas=2"}},
             "spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
            """);
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Namespace = Ns };

        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.Equal(
        [
            "Scale Deployment kt-test/orders back to 2 replicas (scale exchange orders-kt-exchange-fghij)",
            "Delete Pod kt-test/orders-kt-exchange-fghij (a kt shadow of orders)",
            "Delete ConfigMap kt-test/orders-kt-exchange-fghij (a kt shadow of orders)",
        ], plan.Actions.Select(a => a.Description));
        await Recoverer.ExecuteAsync(options, plan);
        Assert.Equal(2, (await sim.Client.Deployments.GetAsync("orders", Ns)).Spec!.Replicas);
        Assert.Null(await sim.Client.Pods.TryGetAsync("orders-kt-exchange-fghij", Ns));
    }

    [Fact]
    public async Task A_manual_mesh_shadow_that_joined_the_service_is_deleted_and_the_service_left_alone()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var s = sim.Server;
        s.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},"spec":{"selector":{"app":"orders"},"ports":[{"port":80}]}}""");
        s.Apply("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-mesh-v2","namespace":"kt-test",
             "labels":{"control-by":"kt","kt-role":"shadow-mesh","app":"orders","version":"v2"}},
             "spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
            """);
        s.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-1","namespace":"kt-test","labels":{"app":"orders"}},"spec":{"containers":[{"name":"app","image":"app"}]}}""");
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Namespace = Ns };

        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.Equal([(CleanupActionKind.DeletePod, "orders-kt-mesh-v2"), (CleanupActionKind.DeleteConfigMap, "orders-kt-mesh-v2")],
            plan.Actions.Select(a => (a.Kind, a.Name)));
        await Recoverer.ExecuteAsync(options, plan);
        Assert.Null(await sim.Client.Pods.TryGetAsync("orders-kt-mesh-v2", Ns));
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("orders-1", Ns));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, (await sim.Client.Services.GetAsync("orders", Ns)).Spec!.Selector);
    }

    [Fact]
    public async Task An_auto_mesh_is_undone_selector_back_router_stuntman_and_mesh_shadows_deleted()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var s = sim.Server;
        s.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test","annotations":{"kt-selector":"{\"app\":\"orders\"}"}},
             "spec":{"selector":{"kt-role":"router","kt-target":"rrr"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        s.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-router","namespace":"kt-test","labels":{"control-by":"kt","kt-role":"router","kt-target":"rrr"}},"spec":{"containers":[{"name":"standalone","image":"router"}]}}""");
        s.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders-kt-stuntman","namespace":"kt-test","labels":{"control-by":"kt"}},"spec":{"selector":{"app":"orders"},"ports":[{"port":80,"targetPort":8080}]}}""");
        s.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-mesh-v2","namespace":"kt-test","labels":{"control-by":"kt","kt-role":"shadow-mesh","kt-target":"sss"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]}}""");
        s.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders-kt-mesh-v2","namespace":"kt-test","labels":{"control-by":"kt"}},"spec":{"selector":{"kt-role":"shadow-mesh","kt-target":"sss"},"ports":[{"port":80,"targetPort":8080}]}}""");
        s.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pay-kt-mesh-v2","namespace":"kt-test","labels":{"control-by":"kt","kt-role":"shadow-mesh","kt-target":"ppp"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]}}""");
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Namespace = Ns };

        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.Equal(
        [
            (CleanupActionKind.RestoreServiceSelector, "orders"),
            (CleanupActionKind.DeletePod, "orders-kt-router"),
            (CleanupActionKind.DeleteService, "orders-kt-stuntman"),
            (CleanupActionKind.DeletePod, "orders-kt-mesh-v2"),
            (CleanupActionKind.DeleteConfigMap, "orders-kt-mesh-v2"),
            (CleanupActionKind.DeleteService, "orders-kt-mesh-v2"),
        ], plan.Actions.Select(a => (a.Kind, a.Name)));
        var outcomes = await Recoverer.ExecuteAsync(options, plan);
        Assert.All(outcomes, o => Assert.True(o.Done, o.Error));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, (await sim.Client.Services.GetAsync("orders", Ns)).Spec!.Selector);
        Assert.Null(await sim.Client.Pods.TryGetAsync("orders-kt-router", Ns));
        Assert.Null(await sim.Client.Services.TryGetAsync("orders-kt-stuntman", Ns));
        Assert.Null(await sim.Client.Services.TryGetAsync("orders-kt-mesh-v2", Ns));
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("pay-kt-mesh-v2", Ns)); // another Service's mesh
    }

    [Fact]
    public async Task An_unknown_service_is_refused_with_its_error_id()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var e = await Assert.ThrowsAsync<KtException>(() => Recoverer.PlanAsync(new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir) }, "nope"));
        Assert.Equal(ServiceRecovery.ServiceNotFoundErrorId, e.ErrorId);
    }

    private static void ExchangedOrders(KubeSimServer s, string? beat, string? lockValue = null)
    {
        var lockAnnotation = lockValue is null ? "" : $",\"kt-lock\":\"{lockValue}\"";
        s.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test",
             "annotations":{"kt-selector":"{\"app\":\"orders\"}"{{{lockAnnotation}}}}},
             "spec":{"selector":{"kt-role":"shadow-exchange","kt-target":"abc"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        var beatAnnotation = beat is null ? "" : $",\"kt-last-heart-beat\":\"{beat}\"";
        s.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-exchange-abcde","namespace":"kt-test",
             "labels":{"control-by":"kt","kt-role":"shadow-exchange","kt-target":"abc"},
             "annotations":{"kt-config":"service=orders","kt-user":"alice","ktconnect.io/host":"alice-laptop","ktconnect.io/session":"S1"{{{beatAnnotation}}}}},
             "spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
            """);
    }

    private static ClusterChange Change(SimCluster sim, KtObjectKind kind, string name, ClusterChangeKind change) => new()
    {
        Server = ClusterRecovery.ServerKey(sim.Client.Configuration.Server),
        Namespace = Ns,
        ObjectKind = kind,
        Name = name,
        Change = change,
    };

    [Fact]
    public async Task An_exchange_alive_on_another_machine_is_refused_naming_its_holder_and_nothing_changes()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var now = sim.Client.Clock.UtcNow;
        ExchangedOrders(sim.Server, KtConventions.FormatUnixSeconds(now.AddSeconds(-40)));
        // No journal of this machine knows it: the fresh heartbeat (younger than 3 heartbeat periods) is what says it lives.
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = new ChangeJournal(Path.Combine(_dir, "journal")) };
        var version = sim.Server.Store.ResourceVersion;

        var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.PlanAsync(options, "orders"));
        Assert.Equal("RecoverServiceInUse", e.ErrorId);
        Assert.Equal(KtErrorCategory.ResourceBusy, e.Category);
        Assert.Equal("orders", e.Target);
        Assert.Contains("user 'alice' on host 'alice-laptop', session S1 (shadow pod orders-kt-exchange-abcde: last heartbeat", e.Message, StringComparison.Ordinal);
        Assert.Contains("may be alive on another machine", e.Message, StringComparison.Ordinal);
        Assert.Equal(version, sim.Server.Store.ResourceVersion);

        // Three heartbeat periods later without a beat the session is gone: recover works.
        sim.Server.Store.Mutate(ResourceTypes.Pods, Ns, "orders-kt-exchange-abcde", o =>
        {
            o["metadata"]!["annotations"]!["kt-last-heart-beat"] = KtConventions.FormatUnixSeconds(now.AddMinutes(-4));
            return o;
        });
        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.Contains(plan.Actions, a => a.Kind == CleanupActionKind.RestoreServiceSelector);

        // The holder beats again before the plan is applied (-Confirm waited): the plan is refused whole.
        sim.Server.Store.Mutate(ResourceTypes.Pods, Ns, "orders-kt-exchange-abcde", o =>
        {
            o["metadata"]!["annotations"]!["kt-last-heart-beat"] = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow);
            return o;
        });
        version = sim.Server.Store.ResourceVersion;
        Assert.Equal("RecoverServiceInUse", (await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.ExecuteAsync(options, plan))).ErrorId);
        Assert.Equal(version, sim.Server.Store.ResourceVersion);
    }

    [Fact]
    public async Task An_exchange_of_a_live_process_of_this_machine_is_refused_whatever_its_heartbeat_and_recovered_once_it_died()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        ExchangedOrders(sim.Server, KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-30)));
        var journal = new ChangeJournal(Path.Combine(_dir, "journal"));
        var session = "live-" + Guid.NewGuid().ToString("N");
        await ClusterJournal.RecordAsync(journal, Change(sim, KtObjectKind.Pod, "orders-kt-exchange-abcde", ClusterChangeKind.Created), session);
        await ClusterJournal.RecordAsync(journal, Change(sim, KtObjectKind.Service, "orders", ClusterChangeKind.SelectorChanged), session);
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = journal };
        var version = sim.Server.Store.ResourceVersion;

        var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.PlanAsync(options, "orders"));
        Assert.Equal("RecoverServiceInUse", e.ErrorId);
        Assert.Contains($"a session on this machine (pid {Environment.ProcessId}, session {session}) changed it and still runs", e.Message, StringComparison.Ordinal);
        Assert.Equal(version, sim.Server.Store.ResourceVersion);

        // The session ends without undoing (a crash in effect): the journal now says its owner is gone, at once.
        ChangeJournal.MarkSessionEnded(session);
        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.All(await Recoverer.ExecuteAsync(options, plan), o => Assert.True(o.Done, o.Error));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, (await sim.Client.Services.GetAsync("orders", Ns)).Spec!.Selector);
    }

    [Fact]
    public async Task A_fresh_kt_lock_is_a_session_being_set_up_and_is_refused()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        ExchangedOrders(sim.Server, null, KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddSeconds(-10)));
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = new ChangeJournal(Path.Combine(_dir, "journal")) };
        var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.PlanAsync(options, "orders"));
        Assert.Equal("RecoverServiceInUse", e.ErrorId);
        Assert.Contains("kt-lock was taken", e.Message, StringComparison.Ordinal);

        // This machine journalled the lock and its taker is gone (killed mid-setup): recover proceeds at once.
        var session = "dead-" + Guid.NewGuid().ToString("N");
        await ClusterJournal.RecordAsync(options.Journal!, Change(sim, KtObjectKind.Service, "orders", ClusterChangeKind.Locked), session);
        ChangeJournal.MarkSessionEnded(session);
        Assert.Contains((await Recoverer.PlanAsync(options, "orders")).Actions, a => a.Kind == CleanupActionKind.RestoreServiceSelector);
    }

    [Fact]
    public async Task An_auto_mesh_is_judged_by_its_mesh_shadows_not_by_the_routers_shared_heartbeat()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var s = sim.Server;
        var fresh = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddSeconds(-20));
        s.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test","annotations":{"kt-selector":"{\"app\":\"orders\"}"}},
             "spec":{"selector":{"kt-role":"router","kt-target":"rrr"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        s.Apply($$$"""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-router","namespace":"kt-test","labels":{"control-by":"kt","kt-role":"router","kt-target":"rrr"},"annotations":{"kt-config":"service=orders","kt-last-heart-beat":"{{{fresh}}}"}},"spec":{"containers":[{"name":"standalone","image":"router"}]}}""");
        s.Apply($$$"""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-mesh-v2","namespace":"kt-test","labels":{"control-by":"kt","kt-role":"shadow-mesh","kt-target":"sss"},"annotations":{"kt-user":"bob","kt-last-heart-beat":"{{{fresh}}}"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]}}""");
        var journal = new ChangeJournal(Path.Combine(_dir, "journal"));
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Journal = journal };

        // A mesh shadow of another machine beats: refused, naming it.
        var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.PlanAsync(options, "orders"));
        Assert.Equal("RecoverServiceInUse", e.ErrorId);
        Assert.Contains("user 'bob' (shadow pod orders-kt-mesh-v2", e.Message, StringComparison.Ordinal);

        // The only mesh shadow is this machine's, of a session that ended: the router's fresh heartbeat does not hold the Service.
        var session = "dead-" + Guid.NewGuid().ToString("N");
        await ClusterJournal.RecordAsync(journal, Change(sim, KtObjectKind.Pod, "orders-kt-mesh-v2", ClusterChangeKind.Created), session);
        ChangeJournal.MarkSessionEnded(session);
        var plan = await Recoverer.PlanAsync(options, "orders");
        Assert.Contains(plan.Actions, a => a is { Kind: CleanupActionKind.DeletePod, Name: "orders-kt-router" });
        Assert.Contains(plan.Actions, a => a is { Kind: CleanupActionKind.RestoreServiceSelector, Name: "orders" });
    }

    [Fact]
    public async Task A_live_scale_exchange_and_a_live_shadow_deployment_are_refused_and_stale_ones_recovered()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var s = sim.Server;
        var now = sim.Client.Clock.UtcNow;
        var fresh = KtConventions.FormatUnixSeconds(now.AddSeconds(-30));
        var old = KtConventions.FormatUnixSeconds(now.AddMinutes(-30));
        s.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"pay","namespace":"kt-test"},"spec":{"selector":{"app":"pay"},"ports":[{"port":80}]}}""");
        s.Apply("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"pay","namespace":"kt-test"},
             "spec":{"replicas":0,"selector":{"matchLabels":{"app":"pay"}},
             "template":{"metadata":{"labels":{"app":"pay"}},"spec":{"containers":[{"name":"app","image":"app"}]} } } }
            """);
        void ScaleShadow(string beat) => s.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"pay-kt-exchange-fghij","namespace":"kt-test",
             "labels":{"control-by":"kt","kt-role":"shadow-exchange","app":"pay"},"annotations":{"kt-config":"app=pay,replicas=2,service=pay","kt-last-heart-beat":"{{{beat}}}"}},
             "spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
            """);
        var options = new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir), Namespace = Ns, Journal = new ChangeJournal(Path.Combine(_dir, "journal")) };

        ScaleShadow(fresh);
        var e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.PlanAsync(options, "pay"));
        Assert.Equal("RecoverServiceInUse", e.ErrorId);
        Assert.Contains("shadow pod pay-kt-exchange-fghij", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, (await sim.Client.Deployments.GetAsync("pay", Ns)).Spec!.Replicas);
        ScaleShadow(old);
        Assert.Contains((await Recoverer.PlanAsync(options, "pay")).Actions, a => a is { Kind: CleanupActionKind.ScaleDeployment, Name: "pay", Replicas: 2 });
        s.Store.Delete(ResourceTypes.Pods, Ns, "pay-kt-exchange-fghij");

        // A selector exchange through a shadow Deployment: the Deployment's heartbeat is the one kept fresh.
        void ShadowDeployment(string beat) => s.Apply($$$"""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"pay-kt-exchange-klmno","namespace":"kt-test",
             "labels":{"control-by":"kt","kt-role":"shadow-exchange"},"annotations":{"kt-config":"service=pay","kt-user":"carol","kt-last-heart-beat":"{{{beat}}}"}},
             "spec":{"replicas":0,"selector":{"matchLabels":{"kt-role":"shadow-exchange","kt-target":"ddd"}},
             "template":{"metadata":{"labels":{"kt-role":"shadow-exchange","kt-target":"ddd"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]} } } }
            """);
        s.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"pay","namespace":"kt-test","annotations":{"kt-selector":"{\"app\":\"pay\"}"}},
             "spec":{"selector":{"kt-role":"shadow-exchange","kt-target":"ddd"},"ports":[{"port":80}]}}
            """);
        ShadowDeployment(fresh);
        e = await Assert.ThrowsAsync<RecoverServiceInUseException>(() => Recoverer.PlanAsync(options, "pay"));
        Assert.Contains("user 'carol' (shadow Deployment pay-kt-exchange-klmno", e.Message, StringComparison.Ordinal);
        ShadowDeployment(old);
        var plan = await Recoverer.PlanAsync(options, "pay");
        Assert.Contains(plan.Actions, a => a is { Kind: CleanupActionKind.DeleteDeployment, Name: "pay-kt-exchange-klmno" });
        Assert.Contains(plan.Actions, a => a is { Kind: CleanupActionKind.RestoreServiceSelector, Name: "pay" });
    }
}
