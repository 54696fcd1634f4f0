using System.Net;
using System.Text;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>What the client puts on the wire, checked against a scripted responder.</summary>
public sealed class ScriptedClientTests
{
    private const string EmptyPodList = """{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"50"},"items":[]}""";

    [Fact]
    public async Task List_all_falls_back_to_one_unpaged_list_when_the_continue_token_expired()
    {
        var handler = new ScriptedHandler()
            .Then(HttpStatusCode.OK, """{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"10","continue":"tok"},"items":[{"metadata":{"name":"a"}}]}""")
            .Then(HttpStatusCode.Gone, """{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The provided continue parameter is too old","reason":"Expired","code":410}""")
            .Then(HttpStatusCode.OK, """{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"12"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}""");
        using var client = ScriptedHandler.Client(handler);
        var all = await client.Pods.ListAllAsync(options: new ListOptions { LabelSelector = "app=x" }, pageSize: 1);
        Assert.Equal(["a", "b"], all.Items.Select(p => p.Metadata.Name));
        Assert.Equal("12", all.Metadata.ResourceVersion);
        Assert.Equal("/api/v1/namespaces/fixtures/pods?labelSelector=app%3Dx&limit=1", handler.Requests[0].PathAndQuery);
        Assert.Equal("/api/v1/namespaces/fixtures/pods?labelSelector=app%3Dx&limit=1&continue=tok", handler.Requests[1].PathAndQuery);
        Assert.Equal("/api/v1/namespaces/fixtures/pods?labelSelector=app%3Dx", handler.Requests[2].PathAndQuery);
    }

    [Fact]
    public async Task Create_fills_type_meta_and_posts_json_to_the_collection()
    {
        var handler = new ScriptedHandler().Then(HttpStatusCode.Created, """{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d","namespace":"dev"}}""");
        using var client = ScriptedHandler.Client(handler);
        var created = await client.Deployments.CreateAsync(new Deployment { Metadata = new ObjectMeta { Name = "d", Namespace = "dev" } });
        Assert.Equal("d", created.Metadata.Name);
        var r = handler.Requests[0];
        Assert.Equal(HttpMethod.Post, r.Method);
        Assert.Equal("/apis/apps/v1/namespaces/dev/deployments", r.PathAndQuery);
        Assert.StartsWith("application/json", r.ContentType, StringComparison.Ordinal);
        Assert.StartsWith("""{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"dev"}""", r.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cluster_scoped_resources_ignore_the_namespace()
    {
        var handler = new ScriptedHandler().Then(HttpStatusCode.OK, """{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[]}""");
        using var client = ScriptedHandler.Client(handler);
        await client.Nodes.ListAsync("ignored");
        Assert.Equal("/api/v1/nodes", handler.Requests[0].PathAndQuery);
    }

    [Fact]
    public async Task Apply_patch_carries_field_manager_and_force()
    {
        var handler = new ScriptedHandler().Then(HttpStatusCode.OK, """{"kind":"Service","apiVersion":"v1","metadata":{"name":"s"}}""");
        using var client = ScriptedHandler.Client(handler);
        await client.Services.PatchAsync("s", KubePatch.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}""", "ktconnect", force: true));
        Assert.Equal("/api/v1/namespaces/fixtures/services/s?fieldManager=ktconnect&force=true", handler.Requests[0].PathAndQuery);
        Assert.Equal("application/apply-patch+yaml", handler.Requests[0].ContentType);
    }

    [Fact]
    public async Task Delete_with_preconditions_sends_delete_options()
    {
        var handler = new ScriptedHandler().Then(HttpStatusCode.OK, """{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"x","kind":"configmaps"}}""");
        using var client = ScriptedHandler.Client(handler);
        var result = await client.ConfigMaps.DeleteAsync("x", options: new DeleteOptions { PreconditionResourceVersion = "7", PropagationPolicy = PropagationPolicy.Foreground });
        Assert.Equal("Success", result.Status!.Status);
        Assert.Equal("/api/v1/namespaces/fixtures/configmaps/x?propagationPolicy=Foreground", handler.Requests[0].PathAndQuery);
        Assert.Equal("""{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground","preconditions":{"resourceVersion":"7"}}""", handler.Requests[0].Body);
    }

    [Fact]
    public async Task A_long_retry_after_is_capped()
    {
        var handler = new ScriptedHandler()
            .Then(HttpStatusCode.ServiceUnavailable, "overloaded", "text/plain", r => r.Headers.TryAddWithoutValidation("Retry-After", "3600"))
            .Then(HttpStatusCode.OK, EmptyPodList);
        using var client = ScriptedHandler.Client(handler, new KubeClientOptions { MaxRetryAfter = TimeSpan.FromMilliseconds(10) });
        var list = await client.Pods.ListAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("50", list.Metadata.ResourceVersion);
        Assert.Equal(2, handler.Requests.Count);
    }

    [Fact]
    public async Task Credentials_are_applied_to_every_attempt()
    {
        var handler = new ScriptedHandler()
            .Then(HttpStatusCode.TooManyRequests, "{}", "application/json", r => r.Headers.TryAddWithoutValidation("Retry-After", "0"))
            .Then(HttpStatusCode.OK, EmptyPodList);
        using var client = ScriptedHandler.Client(handler, credentials: new StaticCredentials("t0k"));
        await client.Pods.ListAsync();
        Assert.All(handler.Requests, r => Assert.Equal("Bearer t0k", r.Authorization));
    }

    [Fact]
    public async Task The_date_header_sets_the_cluster_clock()
    {
        var serverTime = DateTimeOffset.UtcNow.AddHours(3);
        var handler = new ScriptedHandler().Then(HttpStatusCode.OK, EmptyPodList, "application/json", r => r.Headers.Date = serverTime);
        using var client = ScriptedHandler.Client(handler);
        await client.Pods.ListAsync();
        Assert.True(client.Clock.IsKnown);
        Assert.InRange(client.Clock.Offset, TimeSpan.FromHours(3) - TimeSpan.FromSeconds(5), TimeSpan.FromHours(3) + TimeSpan.FromSeconds(5));
    }

    /// <summary>Answers every list with no pods and every watch with <c>watchBody</c> (then the end of the stream), counting both.</summary>
    private sealed class EndingWatchHandler(string watchBody) : HttpMessageHandler
    {
        public int Lists;
        public int Watches;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var watch = request.RequestUri!.Query.Contains("watch=1", StringComparison.Ordinal);
            if (watch) Interlocked.Increment(ref Watches);
            else Interlocked.Increment(ref Lists);
            var body = watch ? watchBody : """{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}""";
            var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "application/json"), RequestMessage = request };
            return Task.FromResult(r);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("""{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","code":500,"reason":"InternalError","message":"etcd down"}}""")]
    public async Task A_watch_that_ends_at_once_or_fails_at_once_is_restarted_after_a_backoff_not_in_a_loop(string watchBody)
    {
        var handler = new EndingWatchHandler(watchBody);
        using var client = ScriptedHandler.Client(handler);
        // A backoff far longer than the test: without it, the loop makes thousands of requests in the second below.
        await using var watcher = client.Pods.CreateWatcher(watcherOptions: new WatcherOptions { MinBackoff = TimeSpan.FromHours(1) }).Start();
        await Wait.UntilAsync(() => Volatile.Read(ref handler.Watches) >= 1, "the first watch", TimeSpan.FromSeconds(60));
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(1, Volatile.Read(ref handler.Watches));
        Assert.Equal(1, Volatile.Read(ref handler.Lists));
        Assert.False(watcher.Completion.IsCompleted);
    }
}
