using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Streaming;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class KubeSimServerTests
{
    private const string ConfigMap = """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1","labels":{"app":"a","tier":"web"}},"data":{"k":"v"}}""";

    [Fact]
    public async Task Crud_round_trips_unknown_fields_and_bumps_resource_version()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("t1");
        var (status, created, resp) = await c.PostAsync("/api/v1/namespaces/t1/configmaps",
            """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm1"},"data":{"k":"v"},"futureField":{"x":[1,2]}}""");
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.NotNull(resp.Headers.Date);
        Assert.Equal("""{"x":[1,2]}""", created!["futureField"]!.ToJsonString());
        var rv1 = created["metadata"]!["resourceVersion"]!.GetValue<string>();
        Assert.False(string.IsNullOrEmpty(created["metadata"]!["uid"]!.GetValue<string>()));

        created["data"]!["k"] = "v2";
        var (putStatus, updated, _) = await c.SendAsync(HttpMethod.Put, "/api/v1/namespaces/t1/configmaps/cm1", created.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, putStatus);
        Assert.NotEqual(rv1, updated!["metadata"]!["resourceVersion"]!.GetValue<string>());
        Assert.Equal("v2", updated["data"]!["k"]!.GetValue<string>());

        // The same PUT again carries the old resourceVersion: 409 Conflict with the exact message.
        var (conflict, body, _) = await c.SendAsync(HttpMethod.Put, "/api/v1/namespaces/t1/configmaps/cm1", created.ToJsonString());
        Assert.Equal(HttpStatusCode.Conflict, conflict);
        Assert.Equal("Operation cannot be fulfilled on configmaps \"cm1\": the object has been modified; please apply your changes to the latest version and try again",
            body!["message"]!.GetValue<string>());

        var (dup, dupBody, _) = await c.PostAsync("/api/v1/namespaces/t1/configmaps", ConfigMap);
        Assert.Equal(HttpStatusCode.Conflict, dup);
        Assert.Equal("AlreadyExists", dupBody!["reason"]!.GetValue<string>());

        var (del, delBody, _) = await c.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/t1/configmaps/cm1");
        Assert.Equal(HttpStatusCode.OK, del);
        Assert.Equal("Success", delBody!["status"]!.GetValue<string>());
        var (gone, _, _) = await c.GetAsync("/api/v1/namespaces/t1/configmaps/cm1");
        Assert.Equal(HttpStatusCode.NotFound, gone);
    }

    [Theory]
    [InlineData("app=a", "cm-a1,cm-a2")]
    [InlineData("app==a,tier!=db", "cm-a1")]
    [InlineData("app in (a,b)", "cm-a1,cm-a2,cm-b")]
    [InlineData("app notin (a)", "cm-b,cm-none")]
    [InlineData("tier", "cm-a1,cm-a2")]
    [InlineData("!tier", "cm-b,cm-none")]
    public async Task Label_selectors_follow_the_apimachinery_grammar(string selector, string expected)
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("sel");
        foreach (var (name, labels) in new[] { ("cm-a1", """{"app":"a","tier":"web"}"""), ("cm-a2", """{"app":"a","tier":"db"}"""),
                     ("cm-b", """{"app":"b"}"""), ("cm-none", "{}") })
        {
            await c.PostAsync("/api/v1/namespaces/sel/configmaps", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" + name + "\",\"labels\":" + labels + "}}");
        }
        var (status, list, _) = await c.GetAsync("/api/v1/namespaces/sel/configmaps?labelSelector=" + Uri.EscapeDataString(selector));
        Assert.Equal(HttpStatusCode.OK, status);
        var names = list!["items"]!.AsArray().Select(i => i!["metadata"]!["name"]!.GetValue<string>());
        Assert.Equal(expected, string.Join(',', names));
        Assert.All(list["items"]!.AsArray(), i => Assert.Null(i!["kind"]));
    }

    [Fact]
    public async Task Limit_and_continue_page_through_a_list()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("pg");
        foreach (var n in new[] { "a", "b", "c" })
        {
            await c.PostAsync("/api/v1/namespaces/pg/configmaps", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"" + n + "\"}}");
        }
        var (_, page1, _) = await c.GetAsync("/api/v1/namespaces/pg/configmaps?limit=2");
        Assert.Equal(2, page1!["items"]!.AsArray().Count);
        Assert.Equal(1, page1["metadata"]!["remainingItemCount"]!.GetValue<long>());
        var token = page1["metadata"]!["continue"]!.GetValue<string>();
        var (_, page2, _) = await c.GetAsync("/api/v1/namespaces/pg/configmaps?limit=2&continue=" + token);
        Assert.Equal("c", page2!["items"]![0]!["metadata"]!["name"]!.GetValue<string>());
        Assert.Null(page2["metadata"]!["continue"]);
        Assert.Equal(page1["metadata"]!["resourceVersion"]!.GetValue<string>(), page2["metadata"]!["resourceVersion"]!.GetValue<string>());
    }

    [Fact]
    public async Task Watch_from_a_resource_version_streams_changes_and_ends_at_the_timeout()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("w");
        var (_, list, _) = await c.GetAsync("/api/v1/namespaces/w/configmaps");
        var rv = list!["metadata"]!["resourceVersion"]!.GetValue<string>();
        using var req = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/namespaces/w/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=30&allowWatchBookmarks=true");
        using var resp = await c.Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.True(resp.Headers.TransferEncodingChunked);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());

        await c.PostAsync("/api/v1/namespaces/w/configmaps", ConfigMap);
        await c.SendAsync(HttpMethod.Patch, "/api/v1/namespaces/w/configmaps/cm1", """{"data":{"k":"patched"}}""", "application/merge-patch+json");
        await c.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/w/configmaps/cm1");
        c.Server.Store.SendBookmarks();

        var types = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var line = await reader.ReadLineAsync();
            var e = JsonNode.Parse(line!)!;
            types.Add(e["type"]!.GetValue<string>());
            if (i == 1) Assert.Equal("patched", e["object"]!["data"]!["k"]!.GetValue<string>());
        }
        Assert.Equal(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"], types);
    }

    [Fact]
    public async Task Watch_from_a_compacted_resource_version_gives_one_410_error_event()
    {
        await using var c = await SimClient.StartAsync();
        var (status, body, resp) = await c.GetAsync("/api/v1/namespaces/default/pods?watch=1&resourceVersion=1");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.NotNull(resp);
        Assert.Equal("ERROR", body!["type"]!.GetValue<string>());
        Assert.Equal(410, body["object"]!["code"]!.GetValue<int>());
        Assert.Equal("Expired", body["object"]!["reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Port_forward_carries_bytes_both_ways_to_a_mapped_local_endpoint()
    {
        var network = new LocalPodNetwork();
        await using var c = await SimClient.StartAsync(new KubeSimOptions { PodNetwork = network });
        c.Server.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"nodeName":"n","containers":[{"name":"c","image":"i"}]}}""");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        network.Map("default", "p", 8080, (IPEndPoint)listener.LocalEndpoint);
        var echo = Task.Run(async () =>
        {
            using var s = await listener.AcceptTcpClientAsync();
            var stream = s.GetStream();
            await stream.WriteAsync("hello\n"u8.ToArray());
            var buf = new byte[1024];
            int n;
            while ((n = await stream.ReadAsync(buf)) > 0) await stream.WriteAsync(buf.AsMemory(0, n));
        });

        using var ws = await c.ConnectWebSocketAsync("/api/v1/namespaces/default/pods/p/portforward?ports=8080", "v4.channel.k8s.io");
        Assert.Equal("v4.channel.k8s.io", ws.SubProtocol);
        Assert.Equal(new byte[] { 0, 0x90, 0x1F }, (await SimClient.ReceiveAsync(ws))!.Value.Data);
        Assert.Equal(new byte[] { 1, 0x90, 0x1F }, (await SimClient.ReceiveAsync(ws))!.Value.Data);
        Assert.Equal("\0hello\n", Encoding.ASCII.GetString((await SimClient.ReceiveAsync(ws))!.Value.Data));
        await ws.SendAsync("\0ping"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None);
        Assert.Equal("\0ping", Encoding.ASCII.GetString((await SimClient.ReceiveAsync(ws))!.Value.Data));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
        await echo.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Exec_streams_output_then_status_then_closes()
    {
        await using var c = await SimClient.StartAsync();
        c.Server.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"i"}]}}""");
        using var ws = await c.ConnectWebSocketAsync(
            "/api/v1/namespaces/default/pods/p/exec?command=sh&command=-c&command=" + Uri.EscapeDataString("echo out; echo err 1>&2; exit 3") + "&stdout=true&stderr=true",
            "v5.channel.k8s.io", "v4.channel.k8s.io");
        Assert.Equal("v4.channel.k8s.io", ws.SubProtocol);
        var frames = new List<byte[]>();
        while (await SimClient.ReceiveAsync(ws) is { } m) frames.Add(m.Data);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
        Assert.Equal(new byte[] { 1 }, frames[0]);
        var stdout = string.Concat(frames.Where(f => f[0] == 1).Select(f => Encoding.UTF8.GetString(f, 1, f.Length - 1)));
        var stderr = string.Concat(frames.Where(f => f[0] == 2).Select(f => Encoding.UTF8.GetString(f, 1, f.Length - 1)));
        Assert.Equal("out\n", stdout);
        Assert.Equal("err\n", stderr);
        var status = frames.Last();
        Assert.Equal(3, status[0]);
        Assert.Equal("""{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo out; echo err 1\u003e\u00262; exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}""",
            Encoding.UTF8.GetString(status, 1, status.Length - 1));
    }

    [Fact]
    public async Task Optimistic_concurrency_loses_no_update_under_parallel_writers()
    {
        await using var c = await SimClient.StartAsync();
        await c.PostAsync("/api/v1/namespaces/default/configmaps", """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"counter"},"data":{"n":"0"}}""");
        var conflicts = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            for (var i = 0; i < 10; i++)
            {
                while (true)
                {
                    var (_, cm, _) = await c.GetAsync("/api/v1/namespaces/default/configmaps/counter");
                    var n = int.Parse(cm!["data"]!["n"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
                    cm["data"]!["n"] = (n + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
                    var (status, _, _) = await c.SendAsync(HttpMethod.Put, "/api/v1/namespaces/default/configmaps/counter", cm.ToJsonString());
                    if (status == HttpStatusCode.OK) break;
                    Assert.Equal(HttpStatusCode.Conflict, status);
                    Interlocked.Increment(ref conflicts);
                }
            }
        }));
        var (_, final, _) = await c.GetAsync("/api/v1/namespaces/default/configmaps/counter");
        Assert.Equal("80", final!["data"]!["n"]!.GetValue<string>());
    }
}
