using System.Net;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>/openapi/v2 and /openapi/v3 (what kubectl apply/create download) and server-side Table printing (issue 14).</summary>
public sealed class OpenApiAndTableTests
{
    private const string TableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    [Fact]
    public async Task Openapi_v3_lists_every_group_version_and_each_document_describes_its_paths_as_kubectl_reads_them()
    {
        await using var c = await SimClient.StartAsync();
        var (status, discovery, _) = await c.GetAsync("/openapi/v3");
        Assert.Equal(HttpStatusCode.OK, status);
        var paths = discovery!["paths"]!.AsObject();
        Assert.Contains("api/v1", paths.Select(p => p.Key));
        Assert.Contains("apis/apps/v1", paths.Select(p => p.Key));

        var url = paths["api/v1"]!["serverRelativeURL"]!.GetValue<string>();
        Assert.StartsWith("/openapi/v3/api/v1?hash=", url, StringComparison.Ordinal);
        var (docStatus, doc, _) = await c.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, docStatus);
        Assert.Equal("3.0.0", doc!["openapi"]!.GetValue<string>());

        // kubectl validates on the server when the PATCH of the kind has a fieldValidation query parameter.
        var patch = doc["paths"]!["/api/v1/namespaces/{namespace}/configmaps/{name}"]!["patch"]!;
        var gvk = patch["x-kubernetes-group-version-kind"]!;
        Assert.Equal(("", "ConfigMap", "v1"), (gvk["group"]!.GetValue<string>(), gvk["kind"]!.GetValue<string>(), gvk["version"]!.GetValue<string>()));
        Assert.Contains(patch["parameters"]!.AsArray(), p => p!["name"]!.GetValue<string>() == "fieldValidation" && p["in"]!.GetValue<string>() == "query");
        Assert.Contains("application/merge-patch+json", patch["requestBody"]!["content"]!.AsObject().Select(p => p.Key));
        Assert.Equal("post", doc["paths"]!["/api/v1/namespaces/{namespace}/pods"]!["post"]!["x-kubernetes-action"]!.GetValue<string>());
        Assert.NotNull(doc["paths"]!["/api/v1/pods"]!["get"]);
        Assert.NotNull(doc["paths"]!["/api/v1/nodes/{name}"]!["get"]);

        // Every $ref resolves inside the document, and each kind's schema names its GVK.
        var schemas = doc["components"]!["schemas"]!.AsObject();
        foreach (var r in Refs(doc)) Assert.True(schemas.ContainsKey(r["#/components/schemas/".Length..]), r);
        Assert.Equal("Pod", schemas["io.k8s.api.core.v1.Pod"]!["x-kubernetes-group-version-kind"]![0]!["kind"]!.GetValue<string>());

        var (apps, appsDoc, _) = await c.GetAsync(paths["apis/apps/v1"]!["serverRelativeURL"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, apps);
        Assert.NotNull(appsDoc!["paths"]!["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]!["put"]);
        var (missing, _, _) = await c.GetAsync("/openapi/v3/apis/nope.example.com/v1");
        Assert.Equal(HttpStatusCode.NotFound, missing);
    }

    [Fact]
    public async Task Openapi_v2_is_json_for_a_json_accept_and_gnostic_protobuf_for_client_go()
    {
        await using var c = await SimClient.StartAsync();
        var (status, doc, _) = await c.GetAsync("/openapi/v2");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("2.0", doc!["swagger"]!.GetValue<string>());
        var definitions = doc["definitions"]!.AsObject();
        foreach (var r in Refs(doc)) Assert.True(definitions.ContainsKey(r["#/definitions/".Length..]), r);
        Assert.NotNull(doc["paths"]!["/apis/apps/v1/namespaces/{namespace}/deployments"]!["post"]);

        using var req = new HttpRequestMessage(HttpMethod.Get, "/openapi/v2");
        req.Headers.TryAddWithoutValidation("Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf");
        using var resp = await c.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("application/octet-stream", resp.Content.Headers.ContentType?.MediaType);
        var pb = await resp.Content.ReadAsByteArrayAsync();
        // openapi.v2.Document: field 1 (swagger) = "2.0" first, then info and the paths with kubectl's vendor extensions.
        Assert.Equal(new byte[] { 0x0a, 0x03, (byte)'2', (byte)'.', (byte)'0' }, pb[..5]);
        var text = System.Text.Encoding.Latin1.GetString(pb);
        Assert.Contains("/api/v1/namespaces/{namespace}/configmaps/{name}", text, StringComparison.Ordinal);
        Assert.Contains("x-kubernetes-group-version-kind", text, StringComparison.Ordinal);
        Assert.Contains("group: \"\"\nkind: ConfigMap\nversion: v1\n", text, StringComparison.Ordinal);
        Assert.Contains("dryRun", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pods_services_and_deployments_print_kubectls_columns()
    {
        await using var c = await SimClient.StartAsync(new() { RunPods = false });
        c.Server.Apply("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},
             "spec":{"nodeName":"n1","containers":[{"name":"a","image":"i"},{"name":"b","image":"i"}]},
             "status":{"phase":"Running","podIP":"10.244.0.7","containerStatuses":[
               {"name":"a","ready":true,"restartCount":2,"state":{"running":{}}},
               {"name":"b","ready":false,"restartCount":1,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}
            """);
        c.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"default"},"spec":{"type":"NodePort","selector":{"app":"x"},"ports":[{"port":80,"nodePort":30080},{"port":53,"protocol":"UDP"}]}}""");
        c.Server.Apply("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"default"},
             "spec":{"replicas":3,"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"img:1"}]}}},
             "status":{"replicas":3,"readyReplicas":2,"updatedReplicas":3,"availableReplicas":1}}
            """);

        var pods = await GetTableAsync(c, "/api/v1/namespaces/default/pods");
        Assert.Equal(["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"], ColumnNames(pods));
        Assert.Equal([0, 0, 0, 0, 0, 1, 1, 1, 1], pods["columnDefinitions"]!.AsArray().Select(d => d!["priority"]!.GetValue<int>()));
        var row = pods["rows"]![0]!;
        Assert.Equal("p", row["cells"]![0]!.GetValue<string>());
        Assert.Equal("1/2", row["cells"]![1]!.GetValue<string>());
        Assert.Equal("CrashLoopBackOff", row["cells"]![2]!.GetValue<string>());
        Assert.Equal(3, row["cells"]![3]!.GetValue<long>());
        Assert.Matches("^[0-9]+s$", row["cells"]![4]!.GetValue<string>());
        Assert.Equal("10.244.0.7", row["cells"]![5]!.GetValue<string>());
        Assert.Equal("n1", row["cells"]![6]!.GetValue<string>());
        Assert.Equal("PartialObjectMetadata", row["object"]!["kind"]!.GetValue<string>());
        Assert.Equal("p", row["object"]!["metadata"]!["name"]!.GetValue<string>());
        Assert.NotNull(pods["metadata"]!["resourceVersion"]);

        var svc = await GetTableAsync(c, "/api/v1/namespaces/default/services/s");
        Assert.Equal(["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"], ColumnNames(svc));
        var cells = svc["rows"]![0]!["cells"]!.AsArray().Select(x => x!.ToString()).ToList();
        Assert.Equal("NodePort", cells[1]);
        Assert.StartsWith("10.96.", cells[2], StringComparison.Ordinal);
        Assert.Equal("<none>", cells[3]);
        Assert.Matches("^80:30080/TCP,53(:[0-9]+)?/UDP$", cells[4]);
        Assert.Equal("app=x", cells[6]);

        var deploy = await GetTableAsync(c, "/apis/apps/v1/namespaces/default/deployments?includeObject=Object");
        Assert.Equal(["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"], ColumnNames(deploy));
        var d = deploy["rows"]![0]!;
        Assert.Equal(["d", "2/3", "3", "1"], d["cells"]!.AsArray().Take(4).Select(x => x!.ToString()));
        Assert.Equal(["c", "img:1", "app=x"], d["cells"]!.AsArray().Skip(5).Select(x => x!.ToString()));
        Assert.Equal("Deployment", d["object"]!["kind"]!.GetValue<string>());

        var leases = await GetTableAsync(c, "/apis/coordination.k8s.io/v1/leases");
        Assert.Equal(["Name", "Age"], ColumnNames(leases));
        var ns = await GetTableAsync(c, "/api/v1/namespaces?includeObject=None");
        Assert.Equal(["Name", "Status", "Age"], ColumnNames(ns));
        Assert.Contains(ns["rows"]!.AsArray(), r => r!["cells"]![0]!.GetValue<string>() == "default" && r["cells"]![1]!.GetValue<string>() == "Active");
        Assert.All(ns["rows"]!.AsArray(), r => Assert.Null(r!["object"]));

        // Without the Table Accept, the same list is an ordinary PodList.
        var (_, plain, _) = await c.GetAsync("/api/v1/namespaces/default/pods");
        Assert.Equal("PodList", plain!["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_watch_asking_for_tables_gets_one_row_per_event()
    {
        await using var c = await SimClient.StartAsync(new() { RunPods = false });
        var rv = c.Server.Store.ResourceVersion;
        using var req = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=30");
        req.Headers.TryAddWithoutValidation("Accept", TableAccept);
        using var resp = await c.Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        c.Server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"one","namespace":"default"},"data":{"a":"1","b":"2"}}""");
        c.Server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"two","namespace":"default"}}""");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var first = JsonNode.Parse((await reader.ReadLineAsync(cts.Token))!)!;
        var second = JsonNode.Parse((await reader.ReadLineAsync(cts.Token))!)!;
        Assert.Equal("ADDED", first["type"]!.GetValue<string>());
        Assert.Equal("Table", first["object"]!["kind"]!.GetValue<string>());
        Assert.Equal(["Name", "Data", "Age"], ColumnNames(first["object"]!));
        Assert.Equal(["one", "2"], first["object"]!["rows"]![0]!["cells"]!.AsArray().Take(2).Select(x => x!.ToString()));
        Assert.Equal("two", second["object"]!["rows"]![0]!["cells"]![0]!.GetValue<string>());
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(119, "119s")]
    [InlineData(125, "2m5s")]
    [InlineData(600, "10m")]
    [InlineData(3 * 3600 + 60, "3h1m")]
    [InlineData(30 * 3600, "30h")]
    [InlineData(50 * 3600, "2d2h")]
    [InlineData(10 * 86400, "10d")]
    [InlineData(3 * 365 * 86400 + 86400, "3y1d")]
    public void Ages_read_like_kubectls(long seconds, string expected) =>
        Assert.Equal(expected, Tables.HumanDuration(TimeSpan.FromSeconds(seconds)));

    private static async Task<JsonNode> GetTableAsync(SimClient c, string path)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, path);
        req.Headers.TryAddWithoutValidation("Accept", TableAccept);
        using var resp = await c.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var table = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
        Assert.Equal("Table", table["kind"]!.GetValue<string>());
        Assert.Equal("meta.k8s.io/v1", table["apiVersion"]!.GetValue<string>());
        return table;
    }

    private static List<string> ColumnNames(JsonNode table) => table["columnDefinitions"]!.AsArray().Select(d => d!["name"]!.GetValue<string>()).ToList();

    private static IEnumerable<string> Refs(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o)
                {
                    if (k == "$ref") yield return v!.GetValue<string>();
                    else foreach (var r in Refs(v)) yield return r;
                }
                break;
            case JsonArray a:
                foreach (var v in a) foreach (var r in Refs(v)) yield return r;
                break;
            default:
                break;
        }
    }
}
