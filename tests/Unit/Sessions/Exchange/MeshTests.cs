using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Unit.Kube;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Sessions.Exchange;

/// <summary>Mesh (manual mode): the version mark, what is refused before anything changes, and the shadow's labels.</summary>
public sealed class MeshTests : IDisposable
{
    private const string Ns = "kt-test";
    private readonly string _journalDir = Path.Combine(Path.GetTempPath(), "ktmesh-journal-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_journalDir)) Directory.Delete(_journalDir, recursive: true);
    }

    [Theory]
    [InlineData("v2", "version", "v2")]
    [InlineData("track:canary", "track", "canary")]
    [InlineData(" app-ver:7 ", "app-ver", "7")]
    public void Version_marks_take_kt_connects_forms(string text, string key, string version) =>
        Assert.Equal(new VersionMark(key, version), VersionMark.Parse(text));

    [Theory]
    [InlineData(null, "version")]
    [InlineData("", "version")]
    [InlineData("track:", "track")]
    public void A_missing_version_is_five_random_lower_case_letters(string? text, string key)
    {
        var mark = VersionMark.Parse(text);
        Assert.Equal(key, mark.Key);
        Assert.Matches("^[a-z]{5}$", mark.Version);
        Assert.NotEqual(mark.Version, VersionMark.Parse(text).Version); // 26^5 values: a repeat is one in 11.8 million
    }

    [Theory]
    [InlineData("Track:v1")]
    [InlineData("1track:v1")]
    [InlineData("version:V1")]
    [InlineData("version:v_1")]
    [InlineData("version:-v1")]
    [InlineData("a:b:c")]
    public void Bad_version_marks_are_refused(string text) =>
        Assert.Equal("InvalidVersionMark", Assert.Throws<KtException>(() => VersionMark.Parse(text)).ErrorId);

    [Fact]
    public void Over_long_names_and_an_empty_router_image_are_refused_with_their_ids()
    {
        var o = new MeshOptions { Service = "orders", Ports = [new ExposedPort(8080, 80)], Mark = VersionMark.Parse("v2") };
        Assert.Equal("InvalidRouterImage", Assert.Throws<KtException>((o with { RouterImage = "" }).Validate).ErrorId);
        Assert.Equal("InvalidVersionMark", Assert.Throws<KtException>((o with { Mode = MeshMode.Manual, Service = new string('s', 53) }).Validate).ErrorId);
        Assert.Equal("ServiceNameMissing", Assert.Throws<KtException>((o with { Mode = MeshMode.Manual, Service = " " }).Validate).ErrorId);
        (o with { Mode = MeshMode.Manual }).Validate();
    }

    private MeshOptions Options(string service = "orders", string mark = "v2", MeshMode mode = MeshMode.Manual) => new()
    {
        Service = service,
        Ports = [new ExposedPort(18080, 80)],
        Mode = mode,
        Mark = VersionMark.Parse(mark),
        SkipPortChecking = true,
        PodCreationTimeout = TimeSpan.FromSeconds(2),
        Journal = new ChangeJournal(_journalDir),
    };

    private static async Task<SimCluster> StartAsync()
    {
        var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},"spec":{"selector":{"app":"orders"},"ports":[{"port":80,"targetPort":8080}]}}""");
        return sim;
    }

    private static Task<Session> Start(SimCluster sim, MeshOptions o) =>
        new SessionRegistry().StartAsync(new SessionRequest { Kind = SessionKind.Mesh, Namespace = Ns, Target = o.Service }, new MeshWorker(sim.Client, Ns, o));

    private static string Objects(SimCluster sim) => string.Join('\n',
        new[] { ResourceTypes.Services, ResourceTypes.Pods, ResourceTypes.ConfigMaps }
            .SelectMany(t => sim.Server.Store.List(t, Ns).Items)
            .Select(o => o["metadata"]!["name"]!.GetValue<string>() + " " + o["metadata"]!["labels"]?.ToJsonString() + " " + o["spec"]?.ToJsonString()));

    [Fact]
    public async Task What_cannot_work_is_refused_before_anything_changes()
    {
        await using var sim = await StartAsync();
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"manual","namespace":"kt-test"},"spec":{"ports":[{"port":80}]}}""");
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"versioned","namespace":"kt-test"},"spec":{"selector":{"app":"v","version":"v1"},"ports":[{"port":80}]}}""");
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders-kt-mesh-taken","namespace":"kt-test","labels":{"kt-role":"shadow-mesh"}},"spec":{"containers":[{"name":"standalone","image":"x"}]}}""");
        var before = Objects(sim);
        async Task<string> Refusal(MeshOptions o) => (await Assert.ThrowsAnyAsync<KtException>(() => Start(sim, o))).ErrorId;

        Assert.Equal("ServiceNotFound", await Refusal(Options("nope")));
        Assert.Equal("ServiceHasNoSelector", await Refusal(Options("manual")));
        Assert.Equal("InvalidVersionMark", await Refusal(Options("versioned")));
        Assert.Equal("MeshVersionInUse", await Refusal(Options(mark: "taken")));
        Assert.Equal("PortNotInService", await Refusal(Options() with { Ports = [new ExposedPort(1, 9999)] }));
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"] = new JsonObject { ["kt-selector"] = """{"app":"orders"}""" };
            return o;
        });
        Assert.Equal("ServiceAlreadyExchanged", await Refusal(Options()));
        Assert.Equal(before, Objects(sim));
        Assert.Empty(new ChangeJournal(_journalDir).ReadAll());
    }

    [Fact]
    public async Task The_shadow_joins_the_service_with_the_version_label_and_a_failed_start_removes_it()
    {
        await using var sim = await StartAsync();
        var before = Objects(sim);
        var start = Start(sim, Options(mark: "track:canary"));
        var pod = await Wait.ForAsync(() => Task.FromResult(sim.Server.Store.Get(ResourceTypes.Pods, Ns, "orders-kt-mesh-canary")?.DeepClone()),
            p => p is not null, "the mesh shadow pod", timeout: TimeSpan.FromSeconds(10));
        Assert.Equal("ShadowPodTimeout", (await Assert.ThrowsAnyAsync<KtException>(() => start)).ErrorId);

        var labels = pod!["metadata"]!["labels"]!.AsObject();
        Assert.Equal("orders", labels["app"]!.GetValue<string>());
        Assert.Equal("canary", labels["track"]!.GetValue<string>());
        Assert.Equal("shadow-mesh", labels["kt-role"]!.GetValue<string>());
        Assert.Equal("kt", labels["control-by"]!.GetValue<string>());
        Assert.Equal(8080, pod["spec"]!["containers"]![0]!["ports"]![0]!["containerPort"]!.GetValue<int>());
        Assert.NotNull(pod["metadata"]!["annotations"]!["ktconnect.io/session"]);
        // The Service itself is never changed.
        await Wait.ForAsync(() => Task.FromResult(Objects(sim)), o => o == before, "the namespace's objects as they were before",
            o => $"\n{o}\nbefore:\n{before}");
        Assert.Empty(new ChangeJournal(_journalDir).ReadAll());
    }

    [Fact]
    public async Task An_auto_mesh_that_fails_half_way_leaves_the_cluster_and_the_journal_as_they_were()
    {
        await using var sim = await StartAsync();
        var before = Objects(sim);
        var e = await Assert.ThrowsAnyAsync<KtException>(() => Start(sim, Options(mode: MeshMode.Auto)));
        Assert.Equal("ShadowPodTimeout", e.ErrorId);
        await Wait.ForAsync(() => Task.FromResult(Objects(sim)), o => o == before, "the namespace's objects as they were before",
            o => $"\n{o}\nbefore:\n{before}");
        Assert.Null(sim.Server.Store.Get(ResourceTypes.Services, Ns, "orders")!["metadata"]!["annotations"]?["kt-lock"]);
        Assert.Empty(new ChangeJournal(_journalDir).ReadAll());
    }

    [Fact]
    public async Task The_router_pod_is_kt_connects_counted_labelled_and_listens_on_every_target_port()
    {
        await using var sim = await StartAsync();
        var worker = new MeshWorker(sim.Client, Ns, Options(mode: MeshMode.Auto) with
        {
            RouterImage = "my/router:1",
            Labels = new Dictionary<string, string> { ["team"] = "a" },
        });
        var pod = worker.BuildRouter("orders-kt-router", [(80, 8080), (81, 8081), (82, 8080)], new Dictionary<int, string>(), "session-1");
        var m = pod.Metadata;
        Assert.Equal(("router", "kt", "a"), (m.Labels!["kt-role"], m.Labels["control-by"], m.Labels["team"]));
        Assert.Matches("^[A-Za-z]{20}$", m.Labels["kt-target"]);
        Assert.Equal(("1", "service=orders", "session-1"), (m.Annotations!["kt-ref-count"], m.Annotations["kt-config"], m.Annotations["ktconnect.io/members"]));
        var c = Assert.Single(pod.Spec!.Containers!);
        Assert.Equal(("standalone", "my/router:1"), (c.Name, c.Image));
        Assert.Equal([("router-8080", 8080), ("router-8081", 8081)], c.Ports!.Select(p => (p.Name!, p.ContainerPort)));

        // A Service whose targetPort is a name reaches the router through a container port of that name.
        var service = new Service
        {
            Metadata = new ObjectMeta { Name = "orders", Namespace = Ns },
            Spec = new ServiceSpec { Ports = [new ServicePort { Port = 80, TargetPort = "http" }, new ServicePort { Port = 81, TargetPort = 8081 }] },
        };
        var names = MeshWorker.RouterPortNames(service, new Dictionary<string, int> { ["http"] = 8080, ["metrics"] = 9090 });
        var named = worker.BuildRouter("orders-kt-router", [(80, 8080), (81, 8081)], names, "session-1").Spec!.Containers![0].Ports!;
        Assert.Equal([("http", 8080), ("router-8081", 8081)], named.Select(p => (p.Name!, p.ContainerPort)));
    }
}
