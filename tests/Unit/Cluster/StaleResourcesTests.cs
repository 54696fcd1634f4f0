using System.Text.Json.Nodes;
using KtConnect.Engine.Cluster;
using KtConnect.KubeSim.Api;
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
        ConfigMap(sim.Server, "kt-connect-shadow-eeeee", KtConventions.FormatUnixSeconds(now.AddMinutes(-3)));
        var stale = new StaleResources(sim.Client);
        Assert.Empty((await stale.PlanAsync(Ns)).Actions);
        Assert.Single((await stale.PlanAsync(Ns, TimeSpan.FromMinutes(2))).Actions);

        Service(sim.Server, "orders", new() { ["kt-role"] = "router", ["kt-target"] = "x" }, new() { ["kt-selector"] = """{"app":"orders"}""", ["kt-lock"] = "1" });
        Assert.True(await stale.RestoreServiceAsync(Ns, "orders"));
        var svc = await sim.Client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, svc.Spec!.Selector);
        Assert.Null(svc.Metadata.GetAnnotation("kt-lock"));
        Assert.False(await stale.RestoreServiceAsync(Ns, "orders")); // nothing recorded any more
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
}
