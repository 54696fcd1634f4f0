using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.KubeSim.Api;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Recovery;

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

        var plan = await ServiceRecovery.PlanAsync(options, "orders");
        Assert.Equal(
        [
            (CleanupActionKind.RestoreServiceSelector, "orders"),
            (CleanupActionKind.DeletePod, "orders-kt-exchange-abcde"),
            (CleanupActionKind.DeleteConfigMap, "orders-kt-exchange-abcde"),
        ], plan.Actions.Select(a => (a.Kind, a.Name)));
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("orders-kt-exchange-abcde", Ns)); // planning changes nothing

        var outcomes = await ServiceRecovery.ExecuteAsync(options, plan);
        Assert.All(outcomes, o => Assert.True(o.Done, o.Error));
        var svc = await sim.Client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, svc.Spec!.Selector);
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation));
        Assert.Null(svc.Metadata.GetAnnotation(KtConventions.LockAnnotation));
        Assert.Null(await sim.Client.Pods.TryGetAsync("orders-kt-exchange-abcde", Ns));
        Assert.NotNull(await sim.Client.Pods.TryGetAsync("unrelated-shadow", Ns));

        Assert.Empty((await ServiceRecovery.PlanAsync(options, "orders")).Actions); // nothing left to recover
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

        var plan = await ServiceRecovery.PlanAsync(options, "orders");
        Assert.Equal(
        [
            "Scale Deployment kt-test/orders back to 2 replicas (scale exchange orders-kt-exchange-fghij)",
            "Delete Pod kt-test/orders-kt-exchange-fghij (a kt shadow of orders)",
            "Delete ConfigMap kt-test/orders-kt-exchange-fghij (a kt shadow of orders)",
        ], plan.Actions.Select(a => a.Description));
        await ServiceRecovery.ExecuteAsync(options, plan);
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

        var plan = await ServiceRecovery.PlanAsync(options, "orders");
        Assert.Equal([(CleanupActionKind.DeletePod, "orders-kt-mesh-v2"), (CleanupActionKind.DeleteConfigMap, "orders-kt-mesh-v2")],
            plan.Actions.Select(a => (a.Kind, a.Name)));
        await ServiceRecovery.ExecuteAsync(options, plan);
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

        var plan = await ServiceRecovery.PlanAsync(options, "orders");
        Assert.Equal(
        [
            (CleanupActionKind.RestoreServiceSelector, "orders"),
            (CleanupActionKind.DeletePod, "orders-kt-router"),
            (CleanupActionKind.DeleteService, "orders-kt-stuntman"),
            (CleanupActionKind.DeletePod, "orders-kt-mesh-v2"),
            (CleanupActionKind.DeleteConfigMap, "orders-kt-mesh-v2"),
            (CleanupActionKind.DeleteService, "orders-kt-mesh-v2"),
        ], plan.Actions.Select(a => (a.Kind, a.Name)));
        var outcomes = await ServiceRecovery.ExecuteAsync(options, plan);
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
        var e = await Assert.ThrowsAsync<KtException>(() => ServiceRecovery.PlanAsync(new RecoverOptions { Kubeconfig = SimKubeconfig.Write(sim, _dir) }, "nope"));
        Assert.Equal(ServiceRecovery.ServiceNotFoundErrorId, e.ErrorId);
    }
}
