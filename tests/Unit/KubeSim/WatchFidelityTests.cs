using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>Watch streams against 5b/5f/5g: HTTP framing (one chunk per event), event sequence, BOOKMARK and 410 shapes.</summary>
public sealed class WatchFidelityTests
{
    private static void AssertStreamHeaders(RawResponse r)
    {
        Assert.Equal(200, r.Status);
        Assert.Equal("application/json", r.Header("Content-Type"));
        Assert.Equal("chunked", r.Header("Transfer-Encoding"));
        Assert.Equal("no-cache, private", r.Header("Cache-Control"));
        Assert.NotNull(r.Header("Date"));
        Assert.Null(r.Header("Content-Length"));
        Assert.NotNull(r.Chunks);
    }

    /// <summary>Each chunk is exactly one compact event followed by '\n'.</summary>
    private static List<JsonObject> Events(RawResponse r)
    {
        var events = new List<JsonObject>();
        foreach (var chunk in r.Chunks!)
        {
            Assert.Equal((byte)'\n', chunk[^1]);
            var text = Encoding.UTF8.GetString(chunk, 0, chunk.Length - 1);
            Assert.DoesNotContain('\n', text);
            events.Add((JsonObject)JsonNode.Parse(text)!);
        }
        return events;
    }

    [Fact]
    public async Task Too_old_resource_version_is_200_with_one_ERROR_chunk_like_5f()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("fixtures");
        var r = await RawResponse.SendAsync(c.Server, "GET", Fixtures.Path("5f"), c.Server.AdminToken);
        AssertStreamHeaders(r);
        var events = Events(r);
        Assert.Single(events);
        var expected = (JsonObject)Fixtures.ResponseBody("5f")![0]!;
        Assert.Empty(Fixtures.ShapeDifferences(expected, events[0]));
        Assert.Equal("ERROR", events[0]["type"]!.GetValue<string>());
        Assert.Equal(410, events[0]["object"]!["code"]!.GetValue<int>());
        Assert.Matches(new Regex(@"^too old resource version: 1 \(\d+\)$"), events[0]["object"]!["message"]!.GetValue<string>());
        // The recorded raw body is a single chunk too.
        Assert.StartsWith("ab\r\n{\"type\":\"ERROR\"", Encoding.ASCII.GetString(Fixtures.Raw("5f")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_without_resource_version_starts_with_ADDED_for_existing_objects_like_5g()
    {
        await using var c = await SimClient.StartAsync(new() { RunPods = false });
        await c.CreateNamespaceAsync("fixtures");
        foreach (var item in Fixtures.ResponseBody("5g")!.AsArray())
        {
            var pod = (JsonObject)item!["object"]!.DeepClone();
            pod["metadata"]!.AsObject().Remove("resourceVersion");
            c.Server.Apply(pod);
        }
        var r = await RawResponse.SendAsync(c.Server, "GET", "/api/v1/namespaces/fixtures/pods?watch=1&timeoutSeconds=1", c.Server.AdminToken);
        AssertStreamHeaders(r);
        var events = Events(r);
        var expected = Fixtures.ResponseBody("5g")!.AsArray();
        Assert.Equal(expected.Count, events.Count);
        for (var i = 0; i < events.Count; i++)
        {
            Assert.Equal("ADDED", events[i]["type"]!.GetValue<string>());
            var diffs = Fixtures.ShapeDifferences(expected.Single(e => e!["object"]!["metadata"]!["name"]!.GetValue<string>()
                == events[i]["object"]!["metadata"]!["name"]!.GetValue<string>()), events[i]);
            Assert.True(diffs.Count == 0, string.Join("; ", diffs));
        }
    }

    [Fact]
    public async Task Create_patch_delete_replayed_by_a_watch_then_a_bookmark_before_the_timeout_like_5b()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("fixtures");
        var (_, list, _) = await c.GetAsync("/api/v1/namespaces/fixtures/pods");
        var rv = list!["metadata"]!["resourceVersion"]!.GetValue<string>();
        var (created, _, _) = await c.PostAsync("/api/v1/namespaces/fixtures/pods", Fixtures.RequestBody("5c").ToJsonString());
        Assert.Equal(System.Net.HttpStatusCode.Created, created);
        // Wait until the stand-in kubelet reports it Running, as the real one did before 5d.
        await Wait.UntilAsync(() => c.Server.Store.Get(ResourceTypes.Pods, "fixtures", "watch-demo")?["status"]?["phase"]?.GetValue<string>() == "Running",
            "pod fixtures/watch-demo to be Running");
        var (patched, _, _) = await c.SendAsync(HttpMethod.Patch, "/api/v1/namespaces/fixtures/pods/watch-demo", Fixtures.RequestBody("5d").ToJsonString(),
            "application/merge-patch+json");
        Assert.Equal(System.Net.HttpStatusCode.OK, patched);
        var (deleted, deletedBody, _) = await c.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/fixtures/pods/watch-demo");
        Assert.Equal(System.Net.HttpStatusCode.OK, deleted);
        Assert.Empty(Fixtures.ShapeDifferences(Fixtures.ResponseBody("5e"), deletedBody));

        // The watch starts from the list's resourceVersion after the changes, so they replay from the history in order
        // and the timer's BOOKMARK (2 s before timeoutSeconds) comes last however slow this machine is.
        var watch = RawResponse.SendAsync(c.Server, "GET",
            $"/api/v1/namespaces/fixtures/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3", c.Server.AdminToken);
        var r = await watch;
        AssertStreamHeaders(r);
        var events = Events(r);
        var types = events.Select(e => e["type"]!.GetValue<string>()).ToList();
        Assert.Equal("ADDED", types[0]);
        Assert.Equal("DELETED", types[^2]);
        Assert.Equal("BOOKMARK", types[^1]);
        Assert.All(types.Skip(1).SkipLast(2), t => Assert.Equal("MODIFIED", t));
        Assert.Contains(events, e => e["object"]!["metadata"]!["labels"]?["step"]?.GetValue<string>() == "modified");

        // The recorded events and ours have the same shape: ADDED, the deleted pod's metadata, the bookmark.
        var recorded = Fixtures.ResponseBody("5b")!.AsArray();
        Assert.Empty(Fixtures.ShapeDifferences(recorded[0], events[0]));
        // The real kubelet reports the container terminated before the DELETED; KubeSim's stand-in does not, so compare metadata.
        Assert.Empty(Fixtures.ShapeDifferences(recorded[^2]!["object"]!["metadata"], events[^2]["object"]!["metadata"]));
        var bookmark = events[^1]["object"]!;
        var recordedBookmark = Fixtures.WithoutVolatile(recorded[^1]!["object"]);
        Assert.True(JsonNode.DeepEquals(recordedBookmark, Fixtures.WithoutVolatile(bookmark)), bookmark.ToJsonString());
        Assert.Equal(events[^2]["object"]!["metadata"]!["resourceVersion"]!.GetValue<string>(), bookmark["metadata"]!["resourceVersion"]!.GetValue<string>());
        // Chunk framing as recorded: "<hex>\r\n{...}\n\r\n" per event.
        var raw = Encoding.ASCII.GetString(Fixtures.Raw("5b"));
        Assert.Matches(new Regex("^[0-9a-f]+\r\n\\{\"type\":\"ADDED\""), raw);
    }
}
