using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>Namespace deletion as the namespace controller does it (9d, 9f; issue 14).</summary>
public sealed class NamespaceTerminationTests
{
    [Fact]
    public async Task A_namespace_stays_terminating_until_its_last_object_is_gone()
    {
        await using var c = await SimClient.StartAsync(new() { RunPods = false });
        await c.CreateNamespaceAsync("term");
        await c.PostAsync("/api/v1/namespaces/term/configmaps", """{"metadata":{"name":"plain"}}""");
        await c.PostAsync("/api/v1/namespaces/term/configmaps", """{"metadata":{"name":"held","finalizers":["example.com/hold"]}}""");
        using var watch = c.Server.Store.Watch(ResourceTypes.Namespaces, null, c.Server.Store.ResourceVersion.ToString(CultureInfo.InvariantCulture));

        var (status, ns, _) = await c.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/term");
        Assert.Equal(HttpStatusCode.OK, status);
        // 9d: the Namespace itself, Terminating, deletionTimestamp set, the kubernetes finalizer kept.
        Assert.Equal("Namespace", ns!["kind"]!.GetValue<string>());
        Assert.Equal("Terminating", ns["status"]!["phase"]!.GetValue<string>());
        Assert.NotNull(ns["metadata"]!["deletionTimestamp"]);
        Assert.Equal(["kubernetes"], ns["spec"]!["finalizers"]!.AsArray().Select(f => f!.GetValue<string>()));

        var (still, again, _) = await c.GetAsync("/api/v1/namespaces/term");
        Assert.Equal(HttpStatusCode.OK, still);
        Assert.Equal("Terminating", again!["status"]!["phase"]!.GetValue<string>());
        Assert.Null(c.Server.Store.Get(ResourceTypes.ConfigMaps, "term", "plain"));
        Assert.NotNull(c.Server.Store.Get(ResourceTypes.ConfigMaps, "term", "held")!["metadata"]!["deletionTimestamp"]);
        var (create, refused, _) = await c.PostAsync("/api/v1/namespaces/term/configmaps", """{"metadata":{"name":"late"}}""");
        Assert.Equal(HttpStatusCode.Forbidden, create);
        Assert.Contains("because it is being terminated", refused!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // The last finalizer goes: the object, then the namespace.
        var (patch, _, _) = await c.SendAsync(HttpMethod.Patch, "/api/v1/namespaces/term/configmaps/held", """{"metadata":{"finalizers":null}}""",
            "application/merge-patch+json");
        Assert.Equal(HttpStatusCode.OK, patch);
        var (gone, notFound, _) = await c.GetAsync("/api/v1/namespaces/term");
        Assert.Equal(HttpStatusCode.NotFound, gone);
        Assert.Equal("namespaces \"term\" not found", notFound!["message"]!.GetValue<string>());
        Assert.Equal("namespaces", notFound["details"]!["kind"]!.GetValue<string>());

        var events = new List<WatchEvent>();
        while (watch.Events.TryRead(out var e)) events.Add(e);
        Assert.Equal(["MODIFIED", "MODIFIED", "DELETED"], events.Select(e => e.Type));
        Assert.Equal("Terminating", events[0].Object["status"]!["phase"]!.GetValue<string>());
        Assert.Null(events[1].Object["spec"]!["finalizers"]);
    }

    [Fact]
    public void An_empty_namespace_goes_at_once_and_a_metadata_finalizer_holds_it()
    {
        var store = new ObjectStore();
        store.Create(ResourceTypes.Namespaces, null, (JsonObject)JsonNode.Parse("""{"metadata":{"name":"empty"}}""")!);
        Assert.True(store.Delete(ResourceTypes.Namespaces, null, "empty").Removed);
        Assert.Null(store.Get(ResourceTypes.Namespaces, null, "empty"));

        store.Create(ResourceTypes.Namespaces, null, (JsonObject)JsonNode.Parse("""{"metadata":{"name":"held","finalizers":["example.com/x"]}}""")!);
        store.Create(ResourceTypes.ConfigMaps, "held", (JsonObject)JsonNode.Parse("""{"metadata":{"name":"cm","finalizers":["example.com/y"]}}""")!);
        Assert.False(store.Delete(ResourceTypes.Namespaces, null, "held").Removed);
        store.Mutate(ResourceTypes.Namespaces, null, "held", o => { ((JsonObject)o["metadata"]!).Remove("finalizers"); return o; });
        Assert.NotNull(store.Get(ResourceTypes.Namespaces, null, "held")); // the held ConfigMap is still there
        store.Mutate(ResourceTypes.ConfigMaps, "held", "cm", o => { ((JsonObject)o["metadata"]!).Remove("finalizers"); return o; });
        Assert.Null(store.Get(ResourceTypes.ConfigMaps, "held", "cm"));
        Assert.Null(store.Get(ResourceTypes.Namespaces, null, "held"));
    }
}
