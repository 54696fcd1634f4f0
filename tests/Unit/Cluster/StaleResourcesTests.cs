using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.KubeSim.Api;
using ClusterSnapshot = KtConnect.KubeSim.Cluster.ClusterSnapshot;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class StaleResourcesTests
{
    private const string Ns = "kt-test";

    private static JsonObject Meta(string name, Dictionary<string, string>? labels, Dictionary<string, string>? annotations)
    {
        var meta = new JsonObject { ["name"] = name, ["namespace"] = Ns };
        if (labels is not null) meta["labels"] = new JsonObject(labels.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        if (annotations is not null) meta["annotations"] = new JsonObject(annotations.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        return meta;
    }

    private static void Pod(KubeSimServer s, string name, Dictionary<string, string> labels, Dictionary<string, string>? annotations = null) =>
        s.Apply(new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = Meta(name, labels, annotations),
            ["spec"] = JsonNode.Parse("""{"containers":[{"name":"standalone","image":"shadow"}]}"""),
        });

    private static void ConfigMap(KubeSimServer s, string name, string beat) =>
        s.Apply(new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "ConfigMap",
            ["metadata"] = Meta(name, new() { ["control-by"] = "kt" }, new() { ["kt-last-heart-beat"] = beat }),
            ["data"] = new JsonObject { ["authorized"] = "ssh-rsa AAAA" },
        });

    private static void Service(KubeSimServer s, string name, Dictionary<string, string> selector, Dictionary<string, string>? annotations = null,
        Dictionary<string, string>? labels = null) =>
        s.Apply(new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Service",
            ["metadata"] = Meta(name, labels, annotations),
            ["spec"] = new JsonObject
            {
                ["selector"] = new JsonObject(selector.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                ["ports"] = JsonNode.Parse("""[{"port":80,"targetPort":8080}]"""),
            },
        });

    private static void Deployment(KubeSimServer s, string name, int replicas, Dictionary<string, string>? labels = null,
        Dictionary<string, string>? annotations = null) =>
        s.Apply(new JsonObject
        {
            ["apiVersion"] = "apps/v1",
            ["kind"] = "Deployment",
            ["metadata"] = Meta(name, labels, annotations),
            ["spec"] = JsonNode.Parse("""
                {"replicas":REPLICAS,"selector":{"matchLabels":{"app":"NAME"}},
                 "template":{"metadata":{"labels":{"app":"NAME"}},"spec":{"containers":[{"name":"app","image":"app"}]}}}
                """.Replace("REPLICAS", replicas.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("NAME", name, StringComparison.Ordinal)),
        });

    /// <summary>A shadow Deployment (kt-target <paramref name="target"/>) and the pod it made, which carries the template's heartbeat.</summary>
    private static void ShadowDeployment(KubeSimServer s, string name, string target, string beat, string podBeat)
    {
        s.Apply(new JsonObject
        {
            ["apiVersion"] = "apps/v1",
            ["kind"] = "Deployment",
            ["metadata"] = Meta(name, new() { ["control-by"] = "kt" }, new() { ["kt-last-heart-beat"] = beat }),
            ["spec"] = JsonNode.Parse("""
                {"replicas":1,"selector":{"matchLabels":{"kt-target":"TARGET"}},
                 "template":{"metadata":{"labels":{"kt-target":"TARGET"}},"spec":{"containers":[{"name":"app","image":"app"}]}}}
                """.Replace("TARGET", target, StringComparison.Ordinal)),
        });
        var pod = Meta(name + "-abc-xyz", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-connect", ["kt-target"] = target },
            new() { ["kt-last-heart-beat"] = podBeat });
        pod["ownerReferences"] = JsonNode.Parse($$"""[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{{name}}-abc","uid":"u1"}]""");
        s.Apply(new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = pod,
            ["spec"] = JsonNode.Parse("""{"containers":[{"name":"standalone","image":"shadow"}]}"""),
        });
    }

    [Fact]
    public async Task Plan_restores_selectors_and_replicas_deletes_orphans_and_leaves_live_objects()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var s = sim.Server;
        var now = sim.Client.Clock.UtcNow;
        var old = KtConventions.FormatUnixSeconds(now.AddMinutes(-10));
        var fresh = KtConventions.FormatUnixSeconds(now);
        Dictionary<string, string> Shadow(string target, params (string, string)[] more)
        {
            var d = new Dictionary<string, string> { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["kt-target"] = target };
            foreach (var (k, v) in more) d[k] = v;
            return d;
        }

        // 1. Selector exchange of "orders" whose session crashed.
        Deployment(s, "orders", 2);
        Service(s, "orders", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTT1" },
            new() { ["kt-selector"] = """{"app":"orders","tier":"web"}""" });
        Pod(s, "orders-kt-exchange-aaaaa", Shadow("TTTTTTTTTTTTTTTTTTT1"), new() { ["kt-config"] = "service=orders", ["kt-last-heart-beat"] = old });
        ConfigMap(s, "orders-kt-exchange-aaaaa", old);
        // 2. Scale exchange of "billing" whose session crashed.
        Deployment(s, "billing", 0);
        Pod(s, "billing-kt-exchange-bbbbb", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["app"] = "billing" },
            new() { ["kt-config"] = "app=billing,replicas=3", ["kt-last-heart-beat"] = old });
        // 2b. The same for "audit", which someone scaled to 5 by hand since: their count stays, the shadow goes.
        Deployment(s, "audit", 5);
        Pod(s, "audit-kt-exchange-ggggg", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["app"] = "audit" },
            new() { ["kt-config"] = "app=audit,replicas=3", ["kt-last-heart-beat"] = old });
        // 3. A live exchange of another user.
        Service(s, "live", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTT2" }, new() { ["kt-selector"] = """{"app":"live"}""" });
        Pod(s, "live-kt-exchange-ccccc", Shadow("TTTTTTTTTTTTTTTTTTT2"), new() { ["kt-config"] = "service=live", ["kt-last-heart-beat"] = fresh });
        ConfigMap(s, "live-kt-exchange-ccccc", fresh);
        // 4. A Service still pointing at a shadow that no longer exists.
        Service(s, "crashed", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTT3" }, new() { ["kt-selector"] = """{"app":"crashed"}""" });
        // 5. No heartbeat: never stale.
        Pod(s, "kt-connect-shadow-nobeat", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-connect" });
        // 6. Locks.
        Service(s, "locked", new() { ["app"] = "locked" }, new() { ["kt-lock"] = old });
        Service(s, "locking", new() { ["app"] = "locking" }, new() { ["kt-lock"] = fresh });
        // 7. Stale preview Service and stale shadow Deployment.
        Service(s, "preview", new() { ["kt-role"] = "shadow-preview" }, new() { ["kt-last-heart-beat"] = old }, new() { ["control-by"] = "kt" });
        Deployment(s, "kt-connect-shadow-ddddd", 1, new() { ["control-by"] = "kt" }, new() { ["kt-last-heart-beat"] = old });

        var stale = new StaleResources(sim.Client);
        var before = s.Store.ResourceVersion;
        var plan = await stale.PlanAsync(Ns);
        Assert.Equal(before, s.Store.ResourceVersion); // planning changes nothing
        Assert.Equal(KtConventions.DefaultStaleThreshold, plan.Threshold);
        var actions = plan.Actions.Select(a => $"{a.Kind} {a.Name}").ToArray();
        Assert.Equal(
        [
            "RestoreServiceSelector crashed",
            "RestoreServiceSelector orders",
            "ScaleDeployment billing",
            "UnlockService locked",
            "DeleteConfigMap orders-kt-exchange-aaaaa",
            "DeleteDeployment kt-connect-shadow-ddddd",
            "DeletePod audit-kt-exchange-ggggg",
            "DeletePod billing-kt-exchange-bbbbb",
            "DeletePod orders-kt-exchange-aaaaa",
            "DeleteService preview",
        ], actions.OrderBy(a => a.StartsWith("Delete", StringComparison.Ordinal)).ThenBy(a => a, StringComparer.Ordinal).ToArray());
        var firstDelete = plan.Actions.ToList().FindIndex(a => a.Kind.ToString().StartsWith("Delete", StringComparison.Ordinal));
        Assert.All(plan.Actions.Take(firstDelete), a => Assert.False(a.Kind.ToString().StartsWith("Delete", StringComparison.Ordinal)));
        Assert.All(plan.Actions.Skip(firstDelete), a => Assert.StartsWith("Delete", a.Kind.ToString(), StringComparison.Ordinal));
        Assert.Equal(3, plan.Actions.Single(a => a.Kind == CleanupActionKind.ScaleDeployment).Replicas);
        Assert.Contains(plan.Actions, a => a.Description.StartsWith(
            "Restore selector of Service kt-test/orders to {\"app\":\"orders\",\"tier\":\"web\"} (orders-kt-exchange-aaaaa is stale)", StringComparison.Ordinal));

        var outcomes = await stale.ExecuteAsync(plan);
        Assert.All(outcomes, o => Assert.True(o.Done, o.Error));

        var orders = (await sim.Client.Services.GetAsync("orders", Ns));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders", ["tier"] = "web" }, orders.Spec!.Selector);
        Assert.Null(orders.Metadata.GetAnnotation("kt-selector"));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "crashed" }, (await sim.Client.Services.GetAsync("crashed", Ns)).Spec!.Selector);
        Assert.Equal(3, (await sim.Client.Deployments.GetAsync("billing", Ns)).Spec!.Replicas);
        Assert.Equal(5, (await sim.Client.Deployments.GetAsync("audit", Ns)).Spec!.Replicas);
        Assert.Null((await sim.Client.Services.GetAsync("locked", Ns)).Metadata.GetAnnotation("kt-lock"));
        Assert.Equal(fresh, (await sim.Client.Services.GetAsync("locking", Ns)).Metadata.GetAnnotation("kt-lock"));
        var live = await sim.Client.Services.GetAsync("live", Ns);
        Assert.Equal("TTTTTTTTTTTTTTTTTTT2", live.Spec!.Selector!["kt-target"]);
        Assert.NotNull(live.Metadata.GetAnnotation("kt-selector"));
        Assert.NotNull(s.Store.Get(ResourceTypes.Pods, Ns, "live-kt-exchange-ccccc"));
        Assert.NotNull(s.Store.Get(ResourceTypes.ConfigMaps, Ns, "live-kt-exchange-ccccc"));
        Assert.NotNull(s.Store.Get(ResourceTypes.Pods, Ns, "kt-connect-shadow-nobeat"));
        Assert.Null(s.Store.Get(ResourceTypes.Pods, Ns, "orders-kt-exchange-aaaaa"));
        Assert.Null(s.Store.Get(ResourceTypes.Pods, Ns, "billing-kt-exchange-bbbbb"));
        Assert.Null(s.Store.Get(ResourceTypes.ConfigMaps, Ns, "orders-kt-exchange-aaaaa"));
        Assert.Null(s.Store.Get(ResourceTypes.Services, Ns, "preview"));
        Assert.Null(s.Store.Get(ResourceTypes.Deployments, Ns, "kt-connect-shadow-ddddd"));

        // Everything is clean now: a second plan is empty, and re-running the old plan is harmless.
        Assert.Empty((await stale.PlanAsync(Ns)).Actions);
        Assert.All(await stale.ExecuteAsync(plan), o => Assert.True(o.Done, o.Error));
    }

    [Fact]
    public async Task Threshold_is_honoured_and_restore_service_works_alone()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var now = sim.Client.Clock.UtcNow;
        ConfigMap(sim.Server, "kt-connect-shadow-eeeee", KtConventions.FormatUnixSeconds(now.AddMinutes(-4)));
        var stale = new StaleResources(sim.Client, new ChangeJournal(Path.Combine(Path.GetTempPath(), "kt-stale-" + Guid.NewGuid().ToString("N"))));
        Assert.Empty((await stale.PlanAsync(Ns)).Actions);
        Assert.Single((await stale.PlanAsync(Ns, TimeSpan.FromMinutes(2))).Actions);
        // Below the floor (3 heartbeat periods) a threshold no longer counts for objects no journal here knows.
        Assert.Equal(TimeSpan.FromMinutes(3), Liveness.Floor);
        ConfigMap(sim.Server, "kt-connect-shadow-fffff", KtConventions.FormatUnixSeconds(now.AddMinutes(-2)));
        var zero = await stale.PlanAsync(Ns, TimeSpan.Zero);
        Assert.Equal(["DeleteConfigMap kt-connect-shadow-eeeee"], zero.Actions.Select(a => $"{a.Kind} {a.Name}"));
        var keptLine = Assert.Single(zero.Kept);
        Assert.StartsWith("kept: ConfigMap kt-test/kt-connect-shadow-fffff (last heartbeat 2", keptLine, StringComparison.Ordinal);
        Assert.EndsWith("within 180 s (3 heartbeat periods): its session may be alive on another machine", keptLine, StringComparison.Ordinal);
        sim.Server.Store.Delete(ResourceTypes.ConfigMaps, Ns, "kt-connect-shadow-fffff");

        Service(sim.Server, "orders", new() { ["kt-role"] = "router", ["kt-target"] = "x" }, new() { ["kt-selector"] = """{"app":"orders"}""", ["kt-lock"] = "1" });
        Assert.True(await stale.RestoreServiceAsync(Ns, "orders"));
        var svc = await sim.Client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, svc.Spec!.Selector);
        Assert.Null(svc.Metadata.GetAnnotation("kt-lock"));
        Assert.False(await stale.RestoreServiceAsync(Ns, "orders")); // nothing recorded any more

        // A selector someone set since (a helm upgrade keeps our annotation) is theirs: only our annotations go.
        Service(sim.Server, "pay", new() { ["app"] = "pay-v2" }, new() { ["kt-selector"] = """{"app":"pay"}""", ["kt-lock"] = "1" });
        var planned = Assert.Single((await stale.PlanAsync(Ns)).Actions, a => a.Name == "pay" && a.Kind == CleanupActionKind.RestoreServiceSelector);
        Assert.Null(planned.Selector);
        Assert.StartsWith("Remove kt-selector from Service kt-test/pay, keeping the selector someone set since (", planned.Description, StringComparison.Ordinal);
        // (A plan's restore passes the recorded selector, as here.)
        Assert.True(await stale.RestoreServiceAsync(Ns, "pay", new Dictionary<string, string> { ["app"] = "pay" }));
        var pay = await sim.Client.Services.GetAsync("pay", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "pay-v2" }, pay.Spec!.Selector);
        Assert.Null(pay.Metadata.GetAnnotation("kt-selector"));
        Assert.Null(pay.Metadata.GetAnnotation("kt-lock"));
    }

    [Fact]
    public async Task Unreadable_annotations_and_missing_permissions_become_warnings()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var old = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-30));
        Service(sim.Server, "broken", new() { ["kt-role"] = "shadow-exchange" }, new() { ["kt-selector"] = "app=broken" });
        ConfigMap(sim.Server, "kt-connect-shadow-fffff", old);
        Pod(sim.Server, "kt-connect-shadow-fffff", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-connect" }, new() { ["kt-last-heart-beat"] = old });
        sim.Server.Hooks.Authorize = i => !(i.Verb == "list" && i.Resource == "configmaps");
        var plan = await new StaleResources(sim.Client).PlanAsync(Ns);
        Assert.Equal(["DeletePod kt-connect-shadow-fffff"], plan.Actions.Select(a => $"{a.Kind} {a.Name}"));
        Assert.Equal(2, plan.Warnings.Count);
        Assert.Contains(plan.Warnings, w => w.Contains("kt-selector", StringComparison.Ordinal) && w.Contains("app=broken", StringComparison.Ordinal));
        Assert.Contains(plan.Warnings, w => w.Contains("Cannot list configmaps", StringComparison.Ordinal));
    }

    [Fact]
    public async Task What_cannot_be_listed_is_taken_to_be_alive()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var s = sim.Server;
        var now = sim.Client.Clock.UtcNow;
        var old = KtConventions.FormatUnixSeconds(now.AddMinutes(-30));
        var fresh = KtConventions.FormatUnixSeconds(now);
        // A live selector exchange (its pod beats), whose ConfigMap beat last long ago.
        Service(s, "orders", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTT1" }, new() { ["kt-selector"] = """{"app":"orders"}""" });
        Pod(s, "orders-kt-exchange-aaaaa", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTT1" },
            new() { ["kt-config"] = "service=orders", ["kt-last-heart-beat"] = fresh });
        ConfigMap(s, "orders-kt-exchange-aaaaa", old);
        // A live shadow Deployment whose pod carries the template's old heartbeat, as such pods do.
        ShadowDeployment(s, "kt-connect-shadow-ddddd", "TTTTTTTTTTTTTTTTTTT4", beat: fresh, podBeat: old);

        // Everything listable: only the ConfigMap, whose shadow is live, is kept; nothing is planned.
        Assert.Empty((await new StaleResources(sim.Client).PlanAsync(Ns)).Actions);

        s.Hooks.Authorize = i => !(i.Verb == "list" && i.Resource == "pods");
        var noPods = await new StaleResources(sim.Client).PlanAsync(Ns);
        Assert.Empty(noPods.Actions);
        Assert.Contains(noPods.Warnings, w => w.Contains("Cannot list pods", StringComparison.Ordinal)
            && w.Contains("no Service selector or ConfigMap is restored or deleted", StringComparison.Ordinal));

        s.Hooks.Authorize = i => !(i.Verb == "list" && i.Resource == "deployments");
        var noDeployments = await new StaleResources(sim.Client).PlanAsync(Ns);
        Assert.Empty(noDeployments.Actions);
        Assert.Contains(noDeployments.Warnings, w => w.Contains("Cannot list deployments", StringComparison.Ordinal));
    }

    [Fact]
    public async Task What_changed_between_the_plan_and_its_execution_is_left()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var s = sim.Server;
        var old = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-30));
        var shadow = new Dictionary<string, string> { ["control-by"] = "kt", ["kt-role"] = "shadow-connect" };
        Pod(s, "kt-connect-shadow-daemon", shadow, new() { ["kt-last-heart-beat"] = old, ["kt-ref-count"] = "1" });
        ConfigMap(s, "kt-connect-shadow-daemon", old);
        Pod(s, "kt-connect-shadow-aaaaa", shadow, new() { ["kt-last-heart-beat"] = old });
        ConfigMap(s, "kt-connect-shadow-bbbbb", old);
        Deployment(s, "billing", 0);
        Pod(s, "billing-kt-exchange-ccccc", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["app"] = "billing" },
            new() { ["kt-config"] = "app=billing,replicas=3", ["kt-last-heart-beat"] = old });
        Service(s, "locked", new() { ["app"] = "locked" }, new() { ["kt-lock"] = old });
        Service(s, "orders", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTT1" }, new() { ["kt-selector"] = """{"app":"orders"}""" });
        // A shared shadow Deployment and its pod.
        ShadowDeployment(s, "kt-connect-shadow-eeeee", "TTTTTTTTTTTTTTTTTTT9", beat: old, podBeat: old);
        var stale = new StaleResources(sim.Client);
        var plan = await stale.PlanAsync(Ns);
        // The Deployment's pod goes with it, not on its own.
        Assert.DoesNotContain(plan.Actions, a => a.Name == "kt-connect-shadow-eeeee-abc-xyz");
        Assert.Equal(9, plan.Actions.Count);

        // Meanwhile: sessions join the shared shadow pod and the shared Deployment (stamping them, not their ConfigMaps or
        // pods), another makes a new ConfigMap of a name planned, someone scales billing by hand, a session locks a
        // Service, and another exchanges orders again.
        var fresh = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow);
        JsonObject Stamp(JsonObject o)
        {
            o["metadata"]!["annotations"]!["kt-last-heart-beat"] = fresh;
            return o;
        }
        s.Store.Mutate(ResourceTypes.Pods, Ns, "kt-connect-shadow-daemon", Stamp);
        s.Store.Mutate(ResourceTypes.Deployments, Ns, "kt-connect-shadow-eeeee", Stamp);
        s.Store.Delete(ResourceTypes.ConfigMaps, Ns, "kt-connect-shadow-bbbbb");
        ConfigMap(s, "kt-connect-shadow-bbbbb", old);
        await sim.Client.Deployments.SetReplicasAsync("billing", 2, Ns);
        await sim.Client.Services.UpdateWithRetryAsync("locked", svc => svc.Metadata.Annotations!.Remove("kt-lock") | svc.Metadata.Annotations.TryAdd("kt-lock", fresh), Ns);
        await sim.Client.Services.UpdateWithRetryAsync("orders", svc => (svc.Spec!.Selector!["kt-target"] = "TTTTTTTTTTTTTTTTTTT2") is not null, Ns);

        var outcomes = await stale.ExecuteAsync(plan);
        Assert.All(outcomes, o => Assert.Null(o.Error));
        var done = outcomes.Where(o => o.Done).Select(o => $"{o.Action.Kind} {o.Action.Name}").Order(StringComparer.Ordinal);
        Assert.Equal(["DeletePod billing-kt-exchange-ccccc", "DeletePod kt-connect-shadow-aaaaa"], done);
        var kept = outcomes.Where(o => !o.Done).ToDictionary(o => $"{o.Action.Kind} {o.Action.Name}", o => o.KeptBecause!);
        Assert.Contains("newer heartbeat", kept["DeletePod kt-connect-shadow-daemon"], StringComparison.Ordinal);
        Assert.Contains("its shadow is still there", kept["DeleteConfigMap kt-connect-shadow-daemon"], StringComparison.Ordinal);
        Assert.Contains("newer heartbeat", kept["DeleteDeployment kt-connect-shadow-eeeee"], StringComparison.Ordinal);
        Assert.Contains("another object of that name", kept["DeleteConfigMap kt-connect-shadow-bbbbb"], StringComparison.Ordinal);
        Assert.Contains("scaled since", kept["ScaleDeployment billing"], StringComparison.Ordinal);
        Assert.Contains("kt-lock was taken again", kept["UnlockService locked"], StringComparison.Ordinal);
        Assert.Contains("selector was changed since", kept["RestoreServiceSelector orders"], StringComparison.Ordinal);
        Assert.NotNull(s.Store.Get(ResourceTypes.Pods, Ns, "kt-connect-shadow-daemon"));
        Assert.NotNull(s.Store.Get(ResourceTypes.ConfigMaps, Ns, "kt-connect-shadow-daemon"));
        Assert.NotNull(s.Store.Get(ResourceTypes.Pods, Ns, "kt-connect-shadow-eeeee-abc-xyz"));
        Assert.NotNull(s.Store.Get(ResourceTypes.ConfigMaps, Ns, "kt-connect-shadow-bbbbb"));
        Assert.Equal(2, (await sim.Client.Deployments.GetAsync("billing", Ns)).Spec!.Replicas);
        Assert.Equal(fresh, (await sim.Client.Services.GetAsync("locked", Ns)).Metadata.GetAnnotation("kt-lock"));
        Assert.Equal("TTTTTTTTTTTTTTTTTTT2", (await sim.Client.Services.GetAsync("orders", Ns)).Spec!.Selector!["kt-target"]);
    }

    [Fact]
    public async Task A_delete_that_meets_a_status_update_reads_again_and_goes_ahead()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var s = sim.Server;
        var old = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-30));
        Pod(s, "kt-connect-shadow-aaaaa", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-connect" }, new() { ["kt-last-heart-beat"] = old });
        var stale = new StaleResources(sim.Client);
        var plan = await stale.PlanAsync(Ns);
        var deletes = 0;
        // The kubelet updates the pod's status between our read and our delete, once: the resourceVersion moves on.
        s.Hooks.BeforeRequest = http =>
        {
            if (http.Request.Method == "DELETE" && Interlocked.Increment(ref deletes) == 1)
                s.Store.Mutate(ResourceTypes.Pods, Ns, "kt-connect-shadow-aaaaa", pod =>
                {
                    pod["status"] = new JsonObject { ["phase"] = "Running" };
                    return pod;
                }, subresource: "status");
            return Task.FromResult(false);
        };

        var outcome = Assert.Single(await stale.ExecuteAsync(plan));

        Assert.True(outcome.Done, outcome.Error ?? outcome.KeptBecause);
        Assert.Equal(2, deletes);
        Assert.Null(s.Store.Get(ResourceTypes.Pods, Ns, "kt-connect-shadow-aaaaa"));
    }

    private static void Journal(ChangeJournal journal, KubeSimServer s, Uri server, KtObjectKind kind, string name, ClusterChangeKind change, string session) =>
        ClusterJournal.RecordAsync(journal, new ClusterChange
        {
            Server = ClusterRecovery.ServerKey(server),
            Namespace = Ns,
            ObjectKind = kind,
            Name = name,
            Change = change,
        }, session).GetAwaiter().GetResult();

    [Fact]
    public async Task Threshold_zero_cleans_every_stale_object_and_keeps_whatever_a_live_owner_holds()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var s = sim.Server;
        var server = sim.Client.Configuration.Server;
        var now = sim.Client.Clock.UtcNow;
        string Ago(double minutes) => KtConventions.FormatUnixSeconds(now.AddMinutes(-minutes));
        var dir = Path.Combine(Path.GetTempPath(), "kt-stale-live-" + Guid.NewGuid().ToString("N"));
        try
        {
            var journal = new ChangeJournal(dir);
            var live = "live-" + Guid.NewGuid().ToString("N");
            var dead = "dead-" + Guid.NewGuid().ToString("N");
            Dictionary<string, string> Connect() => new() { ["control-by"] = "kt", ["kt-role"] = "shadow-connect" };

            // This machine, a live session (this process): a connect shadow whose heartbeat is a minute old, one whose
            // heartbeat stopped 10 minutes ago (the process still runs), and a selector exchange of "mine".
            Pod(s, "kt-connect-shadow-local", Connect(), new() { ["kt-last-heart-beat"] = Ago(1) });
            ConfigMap(s, "kt-connect-shadow-local", Ago(1));
            Pod(s, "kt-connect-shadow-hung", Connect(), new() { ["kt-last-heart-beat"] = Ago(10) });
            Service(s, "mine", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "MMMMMMMMMMMMMMMMMMMM" }, new() { ["kt-selector"] = """{"app":"mine"}""" });
            Pod(s, "mine-kt-exchange-aaaaa", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["kt-target"] = "MMMMMMMMMMMMMMMMMMMM" },
                new() { ["kt-config"] = "service=mine", ["kt-last-heart-beat"] = Ago(10) });
            foreach (var (kind, name, change) in new[]
            {
                (KtObjectKind.Pod, "kt-connect-shadow-local", ClusterChangeKind.Created),
                (KtObjectKind.ConfigMap, "kt-connect-shadow-local", ClusterChangeKind.Created),
                (KtObjectKind.Pod, "kt-connect-shadow-hung", ClusterChangeKind.Created),
                (KtObjectKind.Pod, "mine-kt-exchange-aaaaa", ClusterChangeKind.Created),
                (KtObjectKind.Service, "mine", ClusterChangeKind.SelectorChanged),
            })
                Journal(journal, s, server, kind, name, change, live);
            // This machine, a session that ended without undoing its shadow: its owner is known dead, the heartbeat is fresh.
            Pod(s, "kt-connect-shadow-dead", Connect(), new() { ["kt-last-heart-beat"] = Ago(0.5) });
            Journal(journal, s, server, KtObjectKind.Pod, "kt-connect-shadow-dead", ClusterChangeKind.Created, dead);
            ChangeJournal.MarkSessionEnded(dead);

            // Another machine, alive (heartbeats a minute old): a connect shadow, an exchange of "theirs", a shadow
            // Deployment whose pod carries the template's old heartbeat, and an auto mesh whose router beat long ago.
            Pod(s, "kt-connect-shadow-remote", Connect(), new() { ["kt-last-heart-beat"] = Ago(1) });
            Service(s, "theirs", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTTT" }, new() { ["kt-selector"] = """{"app":"theirs"}""" });
            Pod(s, "theirs-kt-exchange-bbbbb", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["kt-target"] = "TTTTTTTTTTTTTTTTTTTT" },
                new() { ["kt-config"] = "service=theirs", ["kt-last-heart-beat"] = Ago(1) });
            ConfigMap(s, "theirs-kt-exchange-bbbbb", Ago(1));
            s.Apply($$$"""
                {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"kt-connect-shadow-dep","namespace":"{{{Ns}}}",
                 "labels":{"control-by":"kt","kt-role":"shadow-connect"},"annotations":{"kt-last-heart-beat":"{{{Ago(1)}}}"}},
                 "spec":{"replicas":0,"selector":{"matchLabels":{"kt-role":"shadow-connect","kt-target":"DDDDDDDDDDDDDDDDDDDD"}},
                  "template":{"metadata":{"labels":{"kt-role":"shadow-connect","kt-target":"DDDDDDDDDDDDDDDDDDDD"}},"spec":{"containers":[{"name":"standalone","image":"shadow"}]} } } }
                """);
            var depUid = s.Store.Get(ResourceTypes.Deployments, Ns, "kt-connect-shadow-dep")!["metadata"]!["uid"]!.GetValue<string>();
            s.Apply($$$"""
                {"apiVersion":"v1","kind":"Pod","metadata":{"name":"kt-connect-shadow-dep-x1","namespace":"{{{Ns}}}",
                 "labels":{"control-by":"kt","kt-role":"shadow-connect","kt-target":"DDDDDDDDDDDDDDDDDDDD"},"annotations":{"kt-last-heart-beat":"{{{Ago(10)}}}"},
                 "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"kt-connect-shadow-dep","uid":"{{{depUid}}}","controller":true}]},
                 "spec":{"containers":[{"name":"standalone","image":"shadow"}]}}
                """);
            Service(s, "orders", new() { ["kt-role"] = "router", ["kt-target"] = "RRRRRRRRRRRRRRRRRRRR" }, new() { ["kt-selector"] = """{"app":"orders"}""" });
            Pod(s, "orders-kt-router", new() { ["control-by"] = "kt", ["kt-role"] = "router", ["kt-target"] = "RRRRRRRRRRRRRRRRRRRR" },
                new() { ["kt-config"] = "service=orders", ["kt-last-heart-beat"] = Ago(10) });
            Pod(s, "orders-kt-mesh-v1", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-mesh", ["kt-target"] = "VVVVVVVVVVVVVVVVVVVV" },
                new() { ["kt-last-heart-beat"] = Ago(1) });

            // Another machine, gone: 10 minutes without a heartbeat.
            Pod(s, "kt-connect-shadow-stale", Connect(), new() { ["kt-last-heart-beat"] = Ago(10) });
            ConfigMap(s, "kt-connect-shadow-stale", Ago(10));
            Service(s, "crashed", new() { ["kt-role"] = "shadow-exchange", ["kt-target"] = "CCCCCCCCCCCCCCCCCCCC" }, new() { ["kt-selector"] = """{"app":"crashed"}""" });
            Pod(s, "crashed-kt-exchange-ccccc", new() { ["control-by"] = "kt", ["kt-role"] = "shadow-exchange", ["kt-target"] = "CCCCCCCCCCCCCCCCCCCC" },
                new() { ["kt-config"] = "service=crashed", ["kt-last-heart-beat"] = Ago(10) });

            var stale = new StaleResources(sim.Client, journal);
            var plan = await stale.PlanAsync(Ns, TimeSpan.Zero);
            Assert.Equal(
            [
                "DeleteConfigMap kt-connect-shadow-stale",
                "DeletePod crashed-kt-exchange-ccccc",
                "DeletePod kt-connect-shadow-dead",
                "DeletePod kt-connect-shadow-stale",
                "RestoreServiceSelector crashed",
            ], plan.Actions.Select(a => $"{a.Kind} {a.Name}").Order(StringComparer.Ordinal));
            string Kept(string what) => Assert.Single(plan.Kept, k => k.StartsWith("kept: " + what + " ", StringComparison.Ordinal));
            Assert.Contains($"owned by a live session on this machine (pid {Environment.ProcessId}, session {live})", Kept("Pod kt-test/kt-connect-shadow-local"),
                StringComparison.Ordinal);
            Assert.Contains("owned by a live session on this machine", Kept("ConfigMap kt-test/kt-connect-shadow-local"), StringComparison.Ordinal);
            Assert.Contains("owned by a live session on this machine", Kept("Pod kt-test/kt-connect-shadow-hung"), StringComparison.Ordinal);
            Assert.Contains("owned by a live session on this machine", Kept("Pod kt-test/mine-kt-exchange-aaaaa"), StringComparison.Ordinal);
            Assert.Contains("may be alive on another machine", Kept("Pod kt-test/kt-connect-shadow-remote"), StringComparison.Ordinal);
            Assert.Contains("may be alive on another machine", Kept("Pod kt-test/theirs-kt-exchange-bbbbb"), StringComparison.Ordinal);
            Assert.Contains("may be alive on another machine", Kept("Deployment kt-test/kt-connect-shadow-dep"), StringComparison.Ordinal);
            Assert.Contains("the router still serves the mesh shadow orders-kt-mesh-v1", Kept("Pod kt-test/orders-kt-router"), StringComparison.Ordinal);
            Assert.DoesNotContain(plan.Kept, k => k.Contains("kt-connect-shadow-dep-x1", StringComparison.Ordinal) || k.Contains("stale", StringComparison.Ordinal));

            var before = ClusterSnapshot.Take(s.Store, Ns);
            Assert.All(await stale.ExecuteAsync(plan), o => Assert.True(o.Done, o.Error));
            var afterRun = ClusterSnapshot.Take(s.Store, Ns);
            foreach (var key in new[]
            {
                "Pod kt-connect-shadow-local", "ConfigMap kt-connect-shadow-local", "Pod kt-connect-shadow-hung", "Pod mine-kt-exchange-aaaaa", "Service mine",
                "Pod kt-connect-shadow-remote", "Service theirs", "Pod theirs-kt-exchange-bbbbb", "ConfigMap theirs-kt-exchange-bbbbb",
                "Deployment kt-connect-shadow-dep", "Pod kt-connect-shadow-dep-x1", "Service orders", "Pod orders-kt-router", "Pod orders-kt-mesh-v1",
            })
            {
                var k = key.Replace(" ", $" {Ns}/", StringComparison.Ordinal);
                Assert.True(afterRun.Objects.TryGetValue(k, out var o) && JsonNode.DeepEquals(before.Objects[k], o), $"{k} was changed or deleted");
            }
            Assert.Null(s.Store.Get(ResourceTypes.Pods, Ns, "kt-connect-shadow-stale"));
            Assert.Null(s.Store.Get(ResourceTypes.Pods, Ns, "kt-connect-shadow-dead"));
            Assert.Equal(new Dictionary<string, string> { ["app"] = "crashed" }, (await sim.Client.Services.GetAsync("crashed", Ns)).Spec!.Selector);

            // Once the owner is gone, the same objects are stale: the live session's shadow and Service change go.
            ChangeJournal.MarkSessionEnded(live);
            var after = await stale.PlanAsync(Ns, TimeSpan.Zero);
            Assert.Contains(after.Actions, a => a is { Kind: CleanupActionKind.DeletePod, Name: "kt-connect-shadow-hung" });
            Assert.Contains(after.Actions, a => a is { Kind: CleanupActionKind.RestoreServiceSelector, Name: "mine" });
            Assert.DoesNotContain(after.Actions, a => a.Name.Contains("remote", StringComparison.Ordinal) || a.Name.Contains("theirs", StringComparison.Ordinal));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
