using System.Globalization;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class StoreTests
{
    private static ObjectStore NewStore(int history = 1000)
    {
        var store = new ObjectStore(historyCapacity: history);
        store.Create(ResourceTypes.Namespaces, null, Obj("""{"metadata":{"name":"ns"}}"""));
        return store;
    }

    private static JsonObject Obj(string json) => JsonNode.Parse(json)!.AsObject();

    private static JsonObject Deployment(string name) => Obj("""
        {"metadata":{"name":"NAME"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"NAME"}},
         "template":{"metadata":{"labels":{"app":"NAME"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}}}
        """.Replace("NAME", name, StringComparison.Ordinal));

    [Fact]
    public void Generation_moves_on_spec_changes_only_and_no_op_updates_keep_the_resource_version()
    {
        var store = NewStore();
        var d = store.Create(ResourceTypes.Deployments, "ns", Deployment("d"));
        Assert.Equal(1, d["metadata"]!["generation"]!.GetValue<long>());
        var same = store.Update(ResourceTypes.Deployments, "ns", "d", d);
        Assert.Equal(d["metadata"]!["resourceVersion"]!.GetValue<string>(), same["metadata"]!["resourceVersion"]!.GetValue<string>());

        var labelled = store.Mutate(ResourceTypes.Deployments, "ns", "d", o =>
        {
            o["metadata"]!["labels"] = new JsonObject { ["x"] = "y" };
            return o;
        });
        Assert.Equal(1, labelled["metadata"]!["generation"]!.GetValue<long>());
        var scaled = store.Mutate(ResourceTypes.Deployments, "ns", "d", o =>
        {
            o["spec"]!["replicas"] = 3;
            o["status"] = new JsonObject { ["replicas"] = 99 };
            return o;
        });
        Assert.Equal(2, scaled["metadata"]!["generation"]!.GetValue<long>());
        // A main-resource update cannot change status (it has a status subresource).
        Assert.Null(scaled["status"]!["replicas"]);
        var status = store.Mutate(ResourceTypes.Deployments, "ns", "d", o =>
        {
            o["status"] = new JsonObject { ["replicas"] = 3 };
            return o;
        }, subresource: "status");
        Assert.Equal(3, status["status"]!["replicas"]!.GetValue<long>());
        Assert.Equal(2, status["metadata"]!["generation"]!.GetValue<long>());
    }

    [Fact]
    public void Deleting_an_owner_collects_its_dependents_unless_orphaned()
    {
        var store = NewStore();
        var owner = store.Create(ResourceTypes.Deployments, "ns", Deployment("owner"));
        var uid = owner["metadata"]!["uid"]!.GetValue<string>();
        JsonObject Owned(string name) => Obj("""
            {"metadata":{"name":"NAME","ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"owner","uid":"UID","controller":true}]},"data":{}}
            """.Replace("NAME", name, StringComparison.Ordinal).Replace("UID", uid, StringComparison.Ordinal));
        store.Create(ResourceTypes.ConfigMaps, "ns", Owned("child1"));
        store.Create(ResourceTypes.ConfigMaps, "ns", Owned("child2"));
        store.Delete(ResourceTypes.Deployments, "ns", "owner");
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "ns", "child1"));
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "ns", "child2"));

        var owner2 = store.Create(ResourceTypes.Deployments, "ns", Deployment("owner"));
        uid = owner2["metadata"]!["uid"]!.GetValue<string>();
        store.Create(ResourceTypes.ConfigMaps, "ns", Owned("orphan"));
        store.Delete(ResourceTypes.Deployments, "ns", "owner", new DeleteOptions(PropagationPolicy.Orphan));
        var orphan = store.Get(ResourceTypes.ConfigMaps, "ns", "orphan");
        Assert.NotNull(orphan);
        Assert.Null(orphan["metadata"]!["ownerReferences"]);

        // A dependent created after its owner went (a controller pass racing the delete) is accepted, then collected.
        var late = store.Create(ResourceTypes.ConfigMaps, "ns", Owned("late"));
        Assert.Equal("late", late["metadata"]!["name"]!.GetValue<string>());
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "ns", "late"));
        var owner3 = store.Create(ResourceTypes.Deployments, "ns", Deployment("owner"));
        Assert.NotEqual(uid, owner3["metadata"]!["uid"]!.GetValue<string>());
        store.Create(ResourceTypes.ConfigMaps, "ns", Owned("stale-uid")); // same name, the old uid: not its owner
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "ns", "stale-uid"));
        uid = owner3["metadata"]!["uid"]!.GetValue<string>();
        store.Create(ResourceTypes.ConfigMaps, "ns", Owned("kept"));
        Assert.NotNull(store.Get(ResourceTypes.ConfigMaps, "ns", "kept"));

        // An update that points an object at owners who are all gone hands it to the collector as well.
        store.Create(ResourceTypes.ConfigMaps, "ns", Obj("""{"metadata":{"name":"adopted"},"data":{}}"""));
        uid = owner2["metadata"]!["uid"]!.GetValue<string>();
        store.Mutate(ResourceTypes.ConfigMaps, "ns", "adopted", o =>
        {
            o["metadata"]!["ownerReferences"] = Owned("x")["metadata"]!["ownerReferences"]!.DeepClone();
            return o;
        });
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "ns", "adopted"));
    }

    [Fact]
    public void Finalizers_hold_an_object_until_they_are_removed()
    {
        var store = NewStore();
        store.Create(ResourceTypes.ConfigMaps, "ns", Obj("""{"metadata":{"name":"f","finalizers":["example.com/hold"]}}"""));
        var result = store.Delete(ResourceTypes.ConfigMaps, "ns", "f");
        Assert.False(result.Removed);
        Assert.NotNull(store.Get(ResourceTypes.ConfigMaps, "ns", "f")!["metadata"]!["deletionTimestamp"]);
        store.Mutate(ResourceTypes.ConfigMaps, "ns", "f", o =>
        {
            ((JsonObject)o["metadata"]!).Remove("finalizers");
            return o;
        });
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "ns", "f"));
    }

    [Fact]
    public void Deleting_a_namespace_removes_its_contents_and_creating_in_it_is_404()
    {
        var store = NewStore();
        store.Create(ResourceTypes.ConfigMaps, "ns", Obj("""{"metadata":{"name":"a"}}"""));
        var result = store.Delete(ResourceTypes.Namespaces, null, "ns");
        Assert.Equal("Terminating", result.Object["status"]!["phase"]!.GetValue<string>());
        Assert.Empty(store.List(ResourceTypes.ConfigMaps, null).Items);
        var e = Assert.Throws<KubeApiException>(() => store.Create(ResourceTypes.ConfigMaps, "ns", Obj("""{"metadata":{"name":"b"}}""")));
        Assert.Equal(404, e.Code);
        Assert.Equal("namespaces \"ns\" not found", e.Message);
    }

    [Fact]
    public void A_watch_with_a_selector_sees_objects_enter_and_leave_it()
    {
        var store = NewStore();
        using var watch = store.Watch(ResourceTypes.ConfigMaps, "ns", store.ResourceVersion.ToString(CultureInfo.InvariantCulture), LabelSelector.Parse("app=x"));
        store.Create(ResourceTypes.ConfigMaps, "ns", Obj("""{"metadata":{"name":"c","labels":{"app":"y"}}}"""));
        store.Mutate(ResourceTypes.ConfigMaps, "ns", "c", o => { o["metadata"]!["labels"]!["app"] = "x"; return o; });
        store.Mutate(ResourceTypes.ConfigMaps, "ns", "c", o => { o["data"] = new JsonObject { ["k"] = "v" }; return o; });
        store.Mutate(ResourceTypes.ConfigMaps, "ns", "c", o => { o["metadata"]!["labels"]!["app"] = "z"; return o; });
        var types = new List<string>();
        while (watch.Events.TryRead(out var e)) types.Add(e.Type);
        Assert.Equal(["ADDED", "MODIFIED", "DELETED"], types);
    }

    [Fact]
    public void Watch_history_is_bounded_and_older_versions_expire()
    {
        var store = NewStore(history: 3);
        var start = store.ResourceVersion.ToString(CultureInfo.InvariantCulture);
        for (var i = 0; i < 5; i++) store.Create(ResourceTypes.ConfigMaps, "ns", Obj("""{"metadata":{"name":"cN"}}""".Replace("N", i.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)));
        var e = Assert.Throws<KubeApiException>(() => store.Watch(ResourceTypes.ConfigMaps, "ns", start));
        Assert.Equal(410, e.Code);
        Assert.Equal("Expired", e.Reason);
        using var recent = store.Watch(ResourceTypes.ConfigMaps, "ns", (store.ResourceVersion - 2).ToString(CultureInfo.InvariantCulture));
        Assert.True(recent.Events.TryRead(out var first));
        Assert.Equal("c3", first.Object["metadata"]!["name"]!.GetValue<string>());
    }

    [Fact]
    public void Generate_name_and_cluster_ip_allocation_and_release()
    {
        var store = NewStore();
        var svc = store.Create(ResourceTypes.Services, "ns", Obj("""{"metadata":{"generateName":"web-"},"spec":{"ports":[{"port":80}]}}"""));
        var name = svc["metadata"]!["name"]!.GetValue<string>();
        Assert.Matches("^web-[a-z0-9]{5}$", name);
        var ip = svc["spec"]!["clusterIP"]!.GetValue<string>();
        Assert.True(store.ServiceIps.IsUsed(ip));
        var e = Assert.Throws<KubeApiException>(() => store.Create(ResourceTypes.Services, "ns", Obj("""{"metadata":{"name":"dup"},"spec":{"clusterIP":"ADDR","ports":[{"port":80}]}}""".Replace("ADDR", ip, StringComparison.Ordinal))));
        Assert.Contains("provided IP is already allocated", e.Message, StringComparison.Ordinal);
        store.Delete(ResourceTypes.Services, "ns", name);
        Assert.False(store.ServiceIps.IsUsed(ip));
        var headless = store.Create(ResourceTypes.Services, "ns", Obj("""{"metadata":{"name":"h"},"spec":{"clusterIP":"None","ports":[{"port":80}]}}"""));
        Assert.Equal("""["None"]""", headless["spec"]!["clusterIPs"]!.ToJsonString());
    }
}
