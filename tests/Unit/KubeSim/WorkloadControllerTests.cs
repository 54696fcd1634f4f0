using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Controllers;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// The deployment, replicaset and endpoints controllers over the in-process API server with the stand-in pod
/// lifecycle (no root, no node): what they create, how they scale, and the node-facing Service table.
/// </summary>
public sealed class WorkloadControllerTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<Exception> _failures = new();
    private KubeSimServer _server = null!;
    private WorkloadControllers _controllers = null!;

    private ObjectStore Store => _server.Store;

    public async Task InitializeAsync()
    {
        _server = await KubeSimServer.StartAsync(new KubeSimOptions());
        _controllers = new WorkloadControllers(Store, new EventRecorder(Store, "kubesim-node"), _failures);
    }

    public async Task DisposeAsync()
    {
        await _controllers.DisposeAsync();
        await _server.DisposeAsync();
    }

    private Task WaitAsync(Func<bool> condition, string what) => Wait.UntilAsync(() =>
    {
        Assert.Empty(_failures);
        return condition();
    }, what, TimeSpan.FromSeconds(20));

    private static JsonObject Deployment(string name, int replicas, string image = "ktconnect/echo:1.0") => new()
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default" },
        ["spec"] = new JsonObject
        {
            ["replicas"] = replicas,
            ["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["app"] = name } },
            ["template"] = new JsonObject
            {
                ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["app"] = name, ["tier"] = "web" } },
                ["spec"] = new JsonObject
                {
                    ["containers"] = new JsonArray(new JsonObject
                    {
                        ["name"] = "app",
                        ["image"] = image,
                        ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = 8080, ["name"] = "http" }),
                    }),
                },
            },
        },
    };

    private IReadOnlyList<JsonObject> Pods(string selector) => Store.List(ResourceTypes.Pods, "default", LabelSelector.Parse(selector)).Items;

    private static int Int(JsonNode? n) => n?.GetValue<int>() ?? 0;

    [Fact]
    public async Task A_deployment_gets_a_hashed_replicaset_and_named_labelled_owned_pods_and_a_status()
    {
        _server.Apply(Deployment("web", 2));

        await WaitAsync(() => Int(Store.Get(ResourceTypes.Deployments, "default", "web")?["status"]?["readyReplicas"]) == 2, "2 ready replicas");

        var deployment = Store.Get(ResourceTypes.Deployments, "default", "web")!;
        var rs = Assert.Single(Store.List(ResourceTypes.ReplicaSets, "default").Items);
        var hash = rs["metadata"]!["labels"]!["pod-template-hash"]!.GetValue<string>();
        Assert.Equal(DeploymentController.TemplateHash((JsonObject)deployment["spec"]!["template"]!), hash);
        Assert.Equal("web-" + hash, rs["metadata"]!["name"]!.GetValue<string>());
        Assert.Equal("web", rs["metadata"]!["labels"]!["app"]!.GetValue<string>());
        Assert.Equal(deployment["metadata"]!["uid"]!.GetValue<string>(), rs["metadata"]!["ownerReferences"]![0]!["uid"]!.GetValue<string>());
        Assert.Equal(hash, rs["spec"]!["template"]!["metadata"]!["labels"]!["pod-template-hash"]!.GetValue<string>());
        var pods = Pods("app=web");
        Assert.Equal(2, pods.Count);
        Assert.All(pods, p =>
        {
            Assert.Matches($"^web-{hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}$", p["metadata"]!["name"]!.GetValue<string>());
            Assert.Equal("web", p["metadata"]!["labels"]!["tier"]!.GetValue<string>());
            Assert.Equal(hash, p["metadata"]!["labels"]!["pod-template-hash"]!.GetValue<string>());
            Assert.Equal(rs["metadata"]!["uid"]!.GetValue<string>(), p["metadata"]!["ownerReferences"]![0]!["uid"]!.GetValue<string>());
        });
        var status = deployment["status"]!;
        Assert.Equal(2, Int(status["replicas"]));
        Assert.Equal(2, Int(status["updatedReplicas"]));
        Assert.Equal(2, Int(status["availableReplicas"]));
        Assert.Equal(1, status["observedGeneration"]!.GetValue<long>());
        await WaitAsync(() => Int(Store.Get(ResourceTypes.ReplicaSets, "default", "web-" + hash)?["status"]?["readyReplicas"]) == 2, "rs status");
        var events = Store.List(ResourceTypes.Events, "default").Items.Select(e => e["reason"]!.GetValue<string>()).ToList();
        Assert.Contains("ScalingReplicaSet", events);
        Assert.Equal(2, events.Count(r => r == "SuccessfulCreate"));
    }

    [Fact]
    public async Task Scaling_up_and_down_and_to_zero_follows_spec_replicas()
    {
        _server.Apply(Deployment("web", 1));
        await WaitAsync(() => Pods("app=web").Count == 1, "1 pod");

        Store.Mutate(ResourceTypes.Deployments, "default", "web", d => { d["spec"]!["replicas"] = 4; return d; });
        await WaitAsync(() => Pods("app=web").Count == 4 && Int(Store.Get(ResourceTypes.Deployments, "default", "web")!["status"]!["readyReplicas"]) == 4, "4 pods");

        Store.Mutate(ResourceTypes.Deployments, "default", "web", d => { d["spec"]!["replicas"] = 2; return d; });
        await WaitAsync(() => Pods("app=web").Count == 2, "2 pods");

        Store.Mutate(ResourceTypes.Deployments, "default", "web", d => { d["spec"]!["replicas"] = 0; return d; });
        await WaitAsync(() => Pods("app=web").Count == 0 && Store.Get(ResourceTypes.Deployments, "default", "web")!["status"]!["replicas"] is null, "no pods");
        var status = Store.Get(ResourceTypes.Deployments, "default", "web")!["status"]!;
        Assert.Equal(4, status["observedGeneration"]!.GetValue<long>());
        Assert.Contains(status["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == "Available" && c["status"]!.GetValue<string>() == "True");
    }

    [Fact]
    public async Task A_new_template_makes_a_new_replicaset_with_the_next_revision_and_the_old_one_goes_to_zero()
    {
        _server.Apply(Deployment("web", 2));
        await WaitAsync(() => Pods("app=web").Count == 2, "2 pods");
        var first = Assert.Single(Store.List(ResourceTypes.ReplicaSets, "default").Items)["metadata"]!["name"]!.GetValue<string>();

        _server.Apply(Deployment("web", 2, "ktconnect/echo:2.0"));

        await WaitAsync(() => Pods("app=web").Count == 2 && Pods("app=web").All(p => p["spec"]!["containers"]![0]!["image"]!.GetValue<string>() == "ktconnect/echo:2.0"),
            "the new pods only");
        var sets = Store.List(ResourceTypes.ReplicaSets, "default").Items;
        Assert.Equal(2, sets.Count);
        var old = sets.Single(s => s["metadata"]!["name"]!.GetValue<string>() == first);
        var next = sets.Single(s => s["metadata"]!["name"]!.GetValue<string>() != first);
        Assert.Equal(0, Int(old["spec"]!["replicas"]));
        Assert.Equal("2", next["metadata"]!["annotations"]!["deployment.kubernetes.io/revision"]!.GetValue<string>());
    }

    [Fact]
    public async Task Endpoints_and_the_endpointslice_follow_ready_pods_with_named_target_ports_and_go_with_the_service()
    {
        _server.Apply(Deployment("web", 2));
        _server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default","labels":{"team":"a"}},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":"http"}]}}""");

        // One controller pass writes the Endpoints, then the slice: wait for both.
        await WaitAsync(() => (Store.Get(ResourceTypes.Endpoints, "default", "web")?["subsets"]?[0]?["addresses"] as JsonArray)?.Count == 2
            && Store.List(ResourceTypes.EndpointSlices, "default").Items is [{ } slice0] && slice0["endpoints"] is JsonArray { Count: 2 },
            "2 addresses in the endpoints and the slice");
        var endpoints = Store.Get(ResourceTypes.Endpoints, "default", "web")!;
        Assert.Equal(8080, Int(endpoints["subsets"]![0]!["ports"]![0]!["port"]));
        Assert.Equal("a", endpoints["metadata"]!["labels"]!["team"]!.GetValue<string>());
        var ips = Pods("app=web").Select(p => p["status"]!["podIP"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(ips, endpoints["subsets"]![0]!["addresses"]!.AsArray().Select(a => a!["ip"]!.GetValue<string>()));
        Assert.Equal("Pod", endpoints["subsets"]![0]!["addresses"]![0]!["targetRef"]!["kind"]!.GetValue<string>());
        var slice = Assert.Single(Store.List(ResourceTypes.EndpointSlices, "default").Items);
        Assert.StartsWith("web-", slice["metadata"]!["name"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("web", slice["metadata"]!["labels"]!["kubernetes.io/service-name"]!.GetValue<string>());
        Assert.Equal(EndpointsController.ManagedBy, slice["metadata"]!["labels"]!["endpointslice.kubernetes.io/managed-by"]!.GetValue<string>());
        Assert.Equal("Service", slice["metadata"]!["ownerReferences"]![0]!["kind"]!.GetValue<string>());
        Assert.Equal(8080, Int(slice["ports"]![0]!["port"]));

        var table = ServiceTable.Build(Store);
        var web = table.Single(s => s.Name == "web");
        Assert.Equal(new[] { 80 }, web.Ports.Select(p => p.Port));
        Assert.Equal(new[] { 8080 }, web.Ports.Select(p => p.TargetPort));
        Assert.Equal(ips, web.Endpoints.Order(StringComparer.Ordinal));
        Assert.Contains(table, s => s.Name == "kubernetes" && s.Namespace == "default");

        // A pod that is no longer ready moves to notReadyAddresses and out of the node's table.
        var victim = Pods("app=web")[0]["metadata"]!["name"]!.GetValue<string>();
        Store.Mutate(ResourceTypes.Pods, "default", victim, p =>
        {
            foreach (var c in p["status"]!["conditions"]!.AsArray()) if (c!["type"]!.GetValue<string>() == "Ready") c["status"] = "False";
            return p;
        }, subresource: "status");
        await WaitAsync(() => (Store.Get(ResourceTypes.Endpoints, "default", "web")?["subsets"]?[0]?["notReadyAddresses"] as JsonArray)?.Count == 1, "1 not ready");
        Assert.Single(ServiceTable.Build(Store).Single(s => s.Name == "web").Endpoints);
        await WaitAsync(() => Store.List(ResourceTypes.EndpointSlices, "default").Items.Single()["endpoints"]!.AsArray()
            .Count(e => !e!["conditions"]!["ready"]!.GetValue<bool>()) == 1, "slice not ready");

        Store.Delete(ResourceTypes.Services, "default", "web");
        await WaitAsync(() => Store.Get(ResourceTypes.Endpoints, "default", "web") is null, "endpoints to go");
        // The slice goes through the garbage collector (its owner is the Service), in its own time.
        await WaitAsync(() => Store.List(ResourceTypes.EndpointSlices, "default").Items.Count == 0, "the slice to go");
    }

    [Fact]
    public void The_template_hash_ignores_key_order_and_follows_content()
    {
        var a = JsonNode.Parse("""{"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"containers":[{"name":"x","image":"i"}]}}""")!.AsObject();
        var b = JsonNode.Parse("""{"spec":{"containers":[{"image":"i","name":"x"}]},"metadata":{"labels":{"b":"2","a":"1"}}}""")!.AsObject();
        var c = JsonNode.Parse("""{"spec":{"containers":[{"image":"j","name":"x"}]},"metadata":{"labels":{"b":"2","a":"1"}}}""")!.AsObject();

        Assert.Equal(DeploymentController.TemplateHash(a), DeploymentController.TemplateHash(b));
        Assert.NotEqual(DeploymentController.TemplateHash(a), DeploymentController.TemplateHash(c));
        Assert.Matches("^[bcdfghjklmnpqrstvwxz2456789]{8,10}$", DeploymentController.TemplateHash(a));
    }

    [Fact]
    public async Task A_snapshot_diff_names_added_changed_and_removed_objects_and_ignores_volatile_fields()
    {
        _server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"old","namespace":"default"},"data":{"k":"v"}}""");
        _server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"same","namespace":"default"},"data":{"k":"v"}}""");
        _server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"edit","namespace":"default"},"data":{"k":"v"}}""");
        await WaitAsync(() => _controllers.Passes > 0, "a first pass");
        var before = ClusterSnapshot.Take(Store, "default");

        _server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"new","namespace":"default"},"data":{"k":"v"}}""");
        _server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"edit","namespace":"default"},"data":{"k":"w"}}""");
        Store.Mutate(ResourceTypes.ConfigMaps, "default", "same", c => { c["metadata"]!["resourceVersion"] = null; return c; });
        Store.Delete(ResourceTypes.ConfigMaps, "default", "old");
        var diff = before.Diff(ClusterSnapshot.Take(Store, "default"));

        Assert.Equal(["ConfigMap default/new"], diff.Added);
        Assert.Equal(["ConfigMap default/old"], diff.Removed);
        Assert.Equal(["ConfigMap default/edit"], diff.Changed);
    }

    [Fact]
    public async Task A_yaml_manifest_applies_and_deleting_the_deployment_collects_its_replicaset_and_pods()
    {
        var objects = Manifests.Parse("""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: yml
              namespace: default
            spec:
              replicas: 2
              selector:
                matchLabels: {app: yml}
              template:
                metadata:
                  labels: {app: yml, version: "1"}
                spec:
                  containers:
                  - name: c
                    image: ktconnect/echo:1.0
                    ports: [{containerPort: 8080}]
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: yml, namespace: default}
            data: {enabled: "true", count: "3"}
            """);
        Assert.Equal(2, objects.Count);
        Assert.Equal(2, objects[0]["spec"]!["replicas"]!.GetValue<long>());
        Assert.Equal("1", objects[0]["spec"]!["template"]!["metadata"]!["labels"]!["version"]!.GetValue<string>());
        Assert.Equal("true", objects[1]["data"]!["enabled"]!.GetValue<string>());
        foreach (var o in objects) _server.Apply(o);
        await WaitAsync(() => Pods("app=yml").Count == 2, "2 pods");

        Store.Delete(ResourceTypes.Deployments, "default", "yml");

        await WaitAsync(() => Pods("app=yml").Count == 0 && Store.List(ResourceTypes.ReplicaSets, "default").Items.Count == 0,
            "the replica set and its pods to be collected");
        Assert.Single(Manifests.Parse("""{"kind":"List","apiVersion":"v1","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}]}"""));
    }
}
