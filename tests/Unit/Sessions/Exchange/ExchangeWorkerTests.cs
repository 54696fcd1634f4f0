using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Unit.Kube;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Sessions.Exchange;

/// <summary>
/// The exchange and preview workers against KubeSim's API server without pods: what is refused before anything
/// changes, and that a start failing half-way (the shadow never runs) leaves the cluster and the journal as they were.
/// </summary>
public sealed class ExchangeWorkerTests : IDisposable
{
    private const string Ns = "kt-test";
    private readonly string _journalDir = Path.Combine(Path.GetTempPath(), "ktexc-journal-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_journalDir)) Directory.Delete(_journalDir, recursive: true);
    }

    private static async Task<SimCluster> StartAsync()
    {
        var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        sim.Server.Apply(Deployment("orders"));
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},"spec":{"selector":{"app":"orders"},"ports":[{"port":80,"targetPort":8080}]}}""");
        return sim;
    }

    private static string Deployment(string name, string app = "orders") => new JsonObject
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = Ns },
        ["spec"] = new JsonObject
        {
            ["replicas"] = 2,
            ["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["app"] = app } },
            ["template"] = new JsonObject
            {
                ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["app"] = app } },
                ["spec"] = new JsonObject { ["containers"] = new JsonArray(new JsonObject { ["name"] = "c", ["image"] = "ktconnect/echo:1.0" }) },
            },
        },
    }.ToJsonString();

    private ExchangeOptions Options(ExchangeMode mode = ExchangeMode.Selector, string service = "orders") => new()
    {
        Service = service,
        Ports = [new ExposedPort(18080, 80)],
        Mode = mode,
        SkipPortChecking = true,
        PodCreationTimeout = TimeSpan.FromSeconds(2),
        Journal = new ChangeJournal(_journalDir),
    };

    private static Task<Session> Start(SimCluster sim, ISessionWorker worker, string target) =>
        new SessionRegistry().StartAsync(new SessionRequest { Kind = SessionKind.Exchange, Namespace = Ns, Target = target }, worker);

    private static string Objects(SimCluster sim) => string.Join('\n',
        new[] { ResourceTypes.Services, ResourceTypes.Deployments, ResourceTypes.Pods, ResourceTypes.ConfigMaps }
            .SelectMany(t => sim.Server.Store.List(t, Ns).Items)
            .Select(o =>
            {
                var c = (JsonObject)o.DeepClone();
                (c["metadata"] as JsonObject)?.Remove("resourceVersion");
                (c["metadata"] as JsonObject)?.Remove("managedFields");
                c.Remove("status");
                return c.ToJsonString();
            }));

    [Theory]
    [InlineData(ExchangeMode.Selector)]
    [InlineData(ExchangeMode.Scale)]
    public async Task A_shadow_that_never_runs_fails_the_start_and_leaves_cluster_and_journal_as_they_were(ExchangeMode mode)
    {
        await using var sim = await StartAsync();
        var before = Objects(sim);
        var e = await Assert.ThrowsAnyAsync<KtException>(() => Start(sim, new ExchangeWorker(sim.Client, Ns, Options(mode)), "orders"));
        Assert.Equal("ShadowPodTimeout", e.ErrorId);
        // Deletions may finish asynchronously (graceful pod deletion, garbage collection of the ConfigMap).
        await Wait.ForAsync(() => Task.FromResult(Objects(sim)), o => o == before, "the namespace's objects as they were before",
            o => $"\n{o}\nbefore:\n{before}");
        Assert.Empty(new ChangeJournal(_journalDir).ReadAll());
    }

    /// <summary>
    /// A set-up waits for its shadow up to --podCreationTimeout, which may be longer than a kt-lock lives (180 s): the lock
    /// is renewed meanwhile, and the journal always names the value the Service holds, so a crash's undo still removes it.
    /// </summary>
    [Fact]
    public async Task The_services_lock_is_renewed_while_the_set_up_waits_and_the_journal_follows_its_value()
    {
        await using var sim = await StartAsync();
        var journal = new ChangeJournal(_journalDir);
        string? Held() => sim.Server.Store.Get(ResourceTypes.Services, Ns, "orders")?["metadata"]?["annotations"]?["kt-lock"]?.GetValue<string>();
        IEnumerable<string?> Journalled() => journal.ReadAll().Select(Engine.Cluster.ClusterChange.FromEntry)
            .Where(c => c?.Change == Engine.Cluster.ClusterChangeKind.Locked).Select(c => c!.LockValue);
        var options = Options() with { PodCreationTimeout = TimeSpan.FromSeconds(6), LockRenewInterval = TimeSpan.FromMilliseconds(200) };
        var start = Start(sim, new ExchangeWorker(sim.Client, Ns, options), "orders");
        await Wait.UntilAsync(() => Held() is not null, "the set-up to lock the Service");
        var first = Held();
        await Wait.UntilAsync(() => Held() is { } now && now != first && Journalled().SequenceEqual([now]),
            "a renewed lock, and the journal naming only its new value", TimeSpan.FromSeconds(5));
        var e = await Assert.ThrowsAnyAsync<KtException>(() => start);
        Assert.Equal("ShadowPodTimeout", e.ErrorId);
        Assert.Null(Held());
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task What_cannot_work_is_refused_before_anything_changes()
    {
        await using var sim = await StartAsync();
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"manual","namespace":"kt-test"},"spec":{"ports":[{"port":80}]}}""");
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"lonely","namespace":"kt-test"},"spec":{"selector":{"app":"none"},"ports":[{"port":80}]}}""");
        var before = Objects(sim);
        async Task<string> Refusal(ExchangeOptions o) =>
            (await Assert.ThrowsAnyAsync<KtException>(() => Start(sim, new ExchangeWorker(sim.Client, Ns, o), o.Service))).ErrorId;

        Assert.Equal("ServiceNotFound", await Refusal(Options(service: "nope")));
        Assert.Equal("ServiceHasNoSelector", await Refusal(Options(service: "manual")));
        Assert.Equal("PortNotInService", await Refusal(Options() with { Ports = [new ExposedPort(1, 9999)] }));
        Assert.Equal("DeploymentNotFound", await Refusal(Options(ExchangeMode.Scale, "lonely")));
        sim.Server.Apply(Deployment("orders-canary"));
        Assert.Equal("SeveralDeploymentsBehindService", await Refusal(Options(ExchangeMode.Scale)));
        Assert.Equal(before, string.Join('\n', Objects(sim).Split('\n').Where(l => !l.Contains("orders-canary", StringComparison.Ordinal))));
        Assert.Empty(new ChangeJournal(_journalDir).ReadAll());
    }

    [Fact]
    public async Task A_service_held_by_another_exchange_is_refused_naming_the_holder_in_either_mode()
    {
        await using var sim = await StartAsync();
        // Selector mode left by someone: kt-selector on the Service, which selects their shadow.
        sim.Server.Apply("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-exchange-qwert","namespace":"kt-test",
             "labels":{"kt-role":"shadow-exchange","kt-target":"abc","control-by":"kt"},"annotations":{"kt-user":"bob"}},
             "spec":{"containers":[{"name":"standalone","image":"x"}]}}
            """);
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"] = new JsonObject { ["kt-selector"] = """{"app":"orders"}""" };
            o["spec"]!["selector"] = new JsonObject { ["kt-role"] = "shadow-exchange", ["kt-target"] = "abc" };
            return o;
        });
        var e = await Assert.ThrowsAnyAsync<KtException>(() => Start(sim, new ExchangeWorker(sim.Client, Ns, Options()), "orders"));
        Assert.Equal("ServiceAlreadyExchanged", e.ErrorId);
        Assert.Contains("user 'bob'", e.Message, StringComparison.Ordinal);
        Assert.Contains("orders-kt-exchange-qwert", e.Message, StringComparison.Ordinal);
        Assert.Null(sim.Server.Store.Get(ResourceTypes.Services, Ns, "orders")!["metadata"]!["annotations"]!["kt-lock"]);

        // Scale mode leaves the Service alone: its shadow's kt-config names the Service.
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            (o["metadata"] as JsonObject)!.Remove("annotations");
            o["spec"]!["selector"] = new JsonObject { ["app"] = "orders" };
            return o;
        });
        sim.Server.Store.Mutate(ResourceTypes.Pods, Ns, "orders-kt-exchange-qwert", o =>
        {
            o["metadata"]!["annotations"]!["kt-config"] = "app=orders,replicas=2,service=orders";
            return o;
        });
        e = await Assert.ThrowsAnyAsync<KtException>(() => Start(sim, new ExchangeWorker(sim.Client, Ns, Options(ExchangeMode.Scale)), "orders"));
        Assert.Equal("ServiceAlreadyExchanged", e.ErrorId);
        Assert.Contains("scaled to 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_preview_may_not_take_an_existing_services_name()
    {
        await using var sim = await StartAsync();
        var before = Objects(sim);
        var e = await Assert.ThrowsAnyAsync<KtException>(() => new SessionRegistry().StartAsync(
            new SessionRequest { Kind = SessionKind.Preview, Namespace = Ns, Target = "orders" },
            new PreviewWorker(sim.Client, Ns, new PreviewOptions { Name = "orders", Ports = [new ExposedPort(1, 80)], SkipPortChecking = true })));
        Assert.Equal("PreviewServiceExists", e.ErrorId);
        Assert.Equal(before, Objects(sim));
    }

    [Fact]
    public async Task The_preview_service_is_kt_connects_labelled_heart_beaten_and_selects_the_shadow()
    {
        await using var sim = await StartAsync();
        var worker = new PreviewWorker(sim.Client, Ns, new PreviewOptions
        {
            Name = "orders-next",
            Ports = [new ExposedPort(18080, 80)],
            ServiceType = PreviewServiceType.LoadBalancer,
            Labels = new Dictionary<string, string> { ["team"] = "a" },
        });
        var selector = new Dictionary<string, string> { ["kt-role"] = "shadow-preview", ["kt-target"] = "abc" };
        var now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var svc = worker.BuildService(selector, PortMapper.MapPreview([new ExposedPort(18080, 80)]), now);
        Assert.Equal(("orders-next", Ns, "LoadBalancer"), (svc.Metadata.Name, svc.Metadata.Namespace, svc.Spec!.Type));
        Assert.Equal("kt", svc.Metadata.Labels!["control-by"]);
        Assert.Equal("a", svc.Metadata.Labels["team"]);
        Assert.Equal("1700000000", svc.Metadata.Annotations!["kt-last-heart-beat"]);
        Assert.Equal(selector, svc.Spec.Selector);
        var port = Assert.Single(svc.Spec.Ports!);
        Assert.Equal(("kt-80", 80, 80, "TCP"), (port.Name, port.Port, port.TargetPort!.Value.IntValue!.Value, port.Protocol));
    }

    [Fact]
    public async Task A_deployment_target_resolves_to_the_one_service_selecting_its_pods_even_while_it_is_exchanged()
    {
        await using var sim = await StartAsync();
        var (service, deployment) = await ServiceTargets.FromDeploymentAsync(sim.Client, Ns, "orders", CancellationToken.None);
        Assert.Equal(("orders", "orders"), (service.Metadata.Name, deployment.Metadata.Name));

        // Exchanged: its selector points at a shadow, kt-selector still names the pods.
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"] = new JsonObject { ["kt-selector"] = """{"app":"orders"}""" };
            o["spec"]!["selector"] = new JsonObject { ["kt-role"] = "shadow-exchange", ["kt-target"] = "abc" };
            return o;
        });
        Assert.Equal("orders", (await ServiceTargets.FromDeploymentAsync(sim.Client, Ns, "orders", CancellationToken.None)).Service.Metadata.Name);

        async Task<string> Refusal(string name) =>
            (await Assert.ThrowsAnyAsync<KtException>(() => ServiceTargets.FromDeploymentAsync(sim.Client, Ns, name, CancellationToken.None))).ErrorId;
        Assert.Equal("DeploymentNotFound", await Refusal("nope"));
        sim.Server.Apply(Deployment("lonely", app: "lonely"));
        Assert.Equal("NoServiceForDeployment", await Refusal("lonely"));
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders-admin","namespace":"kt-test"},"spec":{"selector":{"app":"orders"},"ports":[{"port":81}]}}""");
        var e = await Assert.ThrowsAnyAsync<KtException>(() => ServiceTargets.FromDeploymentAsync(sim.Client, Ns, "orders", CancellationToken.None));
        Assert.Equal("SeveralServicesForDeployment", e.ErrorId);
        Assert.Contains("orders, orders-admin", e.Message, StringComparison.Ordinal);
    }
}
