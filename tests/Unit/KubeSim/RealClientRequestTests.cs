using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// What clients nobody here wrote send (issue 14): bodies without kind, <c>?dryRun=All</c>, protobuf bodies and
/// Accept lists that name protobuf first.
/// </summary>
public sealed class RealClientRequestTests
{
    private const string Cm = "/api/v1/namespaces/default/configmaps";

    [Fact]
    public async Task A_body_without_kind_and_apiVersion_takes_them_from_the_url()
    {
        await using var c = await SimClient.StartAsync();
        var (status, body, _) = await c.PostAsync(Cm, """{"metadata":{"name":"nokind"},"data":{"k":"v"}}""");
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("ConfigMap", body!["kind"]!.GetValue<string>());
        Assert.Equal("v1", body["apiVersion"]!.GetValue<string>());
        Assert.Equal("ConfigMap", c.Server.Store.Get(ResourceTypes.ConfigMaps, "default", "nokind")!["kind"]!.GetValue<string>());

        // PUT without kind, apps group: apiVersion comes from the URL too.
        var (dep, created, _) = await c.PostAsync("/apis/apps/v1/namespaces/default/deployments",
            """{"metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}""");
        Assert.Equal(HttpStatusCode.Created, dep);
        Assert.Equal("apps/v1", created!["apiVersion"]!.GetValue<string>());
        var (put, updated, _) = await c.SendAsync(HttpMethod.Put, Cm + "/nokind", """{"metadata":{"name":"nokind"},"data":{"k":"w"}}""");
        Assert.Equal(HttpStatusCode.OK, put);
        Assert.Equal("ConfigMap", updated!["kind"]!.GetValue<string>());
        Assert.Equal("w", updated["data"]!["k"]!.GetValue<string>());

        // What is given must still match (4q).
        var (mismatch, err, _) = await c.PostAsync(Cm, """{"kind":"Service","metadata":{"name":"x"}}""");
        Assert.Equal(HttpStatusCode.BadRequest, mismatch);
        Assert.Contains("cannot be handled as a ConfigMap", err!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var (wrongVersion, _, _) = await c.PostAsync(Cm, """{"apiVersion":"apps/v1","metadata":{"name":"x"}}""");
        Assert.Equal(HttpStatusCode.BadRequest, wrongVersion);
        Assert.Null(c.Server.Store.Get(ResourceTypes.ConfigMaps, "default", "x"));
    }

    [Fact]
    public async Task Dry_run_create_answers_the_defaulted_object_and_stores_nothing()
    {
        await using var c = await SimClient.StartAsync();
        var rv = c.Server.Store.ResourceVersion;
        using var watch = c.Server.Store.Watch(ResourceTypes.Services, null, rv.ToString(CultureInfo.InvariantCulture));
        var before = c.Server.Store.ServiceIps.SaveState().Length;
        var (status, svc, _) = await c.PostAsync("/api/v1/namespaces/default/services?dryRun=All",
            """{"apiVersion":"v1","kind":"Service","metadata":{"name":"dry"},"spec":{"selector":{"app":"x"},"ports":[{"port":80}]}}""");
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("ClusterIP", svc!["spec"]!["type"]!.GetValue<string>());
        Assert.Equal(80, svc["spec"]!["ports"]![0]!["targetPort"]!.GetValue<int>());
        Assert.StartsWith("10.96.", svc["spec"]!["clusterIP"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.NotNull(svc["metadata"]!["uid"]);
        Assert.NotNull(svc["metadata"]!["creationTimestamp"]);
        Assert.Null(svc["metadata"]!["resourceVersion"]);

        Assert.Null(c.Server.Store.Get(ResourceTypes.Services, "default", "dry"));
        Assert.Equal(rv, c.Server.Store.ResourceVersion);
        Assert.Equal(before, c.Server.Store.ServiceIps.SaveState().Length);
        Assert.False(watch.Events.TryRead(out _));

        // Validation still runs: an invalid object is 422, not stored either.
        var (invalid, err, _) = await c.PostAsync("/api/v1/namespaces/default/pods?dryRun=All",
            """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c","image":""}]}}""");
        Assert.Equal((HttpStatusCode)422, invalid);
        Assert.Equal("Invalid", err!["reason"]!.GetValue<string>());

        var (bad, _, _) = await c.PostAsync(Cm + "?dryRun=Some", """{"metadata":{"name":"x"}}""");
        Assert.Equal(HttpStatusCode.BadRequest, bad);
    }

    [Fact]
    public async Task Dry_run_update_patch_and_delete_change_nothing()
    {
        await using var c = await SimClient.StartAsync();
        var (_, created, _) = await c.PostAsync(Cm, """{"metadata":{"name":"cm"},"data":{"k":"v"}}""");
        var rv = created!["metadata"]!["resourceVersion"]!.GetValue<string>();
        using var watch = c.Server.Store.Watch(ResourceTypes.ConfigMaps, "default", rv);

        var (put, updated, _) = await c.SendAsync(HttpMethod.Put, Cm + "/cm?dryRun=All", """{"metadata":{"name":"cm"},"data":{"k":"put"}}""");
        Assert.Equal(HttpStatusCode.OK, put);
        Assert.Equal("put", updated!["data"]!["k"]!.GetValue<string>());
        Assert.Equal(rv, updated["metadata"]!["resourceVersion"]!.GetValue<string>());

        var (patch, patched, _) = await c.SendAsync(HttpMethod.Patch, Cm + "/cm?dryRun=All", """{"data":{"k":"patched"}}""", "application/merge-patch+json");
        Assert.Equal(HttpStatusCode.OK, patch);
        Assert.Equal("patched", patched!["data"]!["k"]!.GetValue<string>());

        var (del, status, _) = await c.SendAsync(HttpMethod.Delete, Cm + "/cm?dryRun=All");
        Assert.Equal(HttpStatusCode.OK, del);
        Assert.Equal("Success", status!["status"]!.GetValue<string>());
        // kubectl delete --dry-run=server puts it in the DeleteOptions body.
        var (delBody, _, _) = await c.SendAsync(HttpMethod.Delete, Cm + "/cm", """{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}""");
        Assert.Equal(HttpStatusCode.OK, delBody);

        var stored = c.Server.Store.Get(ResourceTypes.ConfigMaps, "default", "cm")!;
        Assert.Equal("v", stored["data"]!["k"]!.GetValue<string>());
        Assert.Equal(rv, stored["metadata"]!["resourceVersion"]!.GetValue<string>());
        Assert.False(watch.Events.TryRead(out _));

        // A namespace dry-run delete answers Terminating but the namespace and its contents stay.
        await c.CreateNamespaceAsync("dryns");
        await c.PostAsync("/api/v1/namespaces/dryns/configmaps", """{"metadata":{"name":"inside"}}""");
        var (nsDel, ns, _) = await c.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/dryns?dryRun=All");
        Assert.Equal(HttpStatusCode.OK, nsDel);
        Assert.Equal("Terminating", ns!["status"]!["phase"]!.GetValue<string>());
        Assert.Null(c.Server.Store.Get(ResourceTypes.Namespaces, null, "dryns")!["metadata"]!["deletionTimestamp"]);
        Assert.NotNull(c.Server.Store.Get(ResourceTypes.ConfigMaps, "dryns", "inside"));
    }

    [Fact]
    public async Task A_protobuf_body_is_a_clean_415_and_json_is_answered_when_protobuf_is_one_of_several_accepts()
    {
        await using var c = await SimClient.StartAsync();
        var configMaps = c.Server.Store.List(ResourceTypes.ConfigMaps, null).Items.Count;
        // A kind KubeSim cannot decode from protobuf (Deployment) is 415.
        using (var req = new HttpRequestMessage(HttpMethod.Post, "/apis/apps/v1/namespaces/default/deployments"))
        {
            req.Content = new ByteArrayContent([0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f]);
            req.Content.Headers.ContentType = new("application/vnd.kubernetes.protobuf");
            using var resp = await c.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, resp.StatusCode);
            Assert.Equal("application/json", resp.Content.Headers.ContentType?.MediaType);
            var status = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
            Assert.Equal("Status", status["kind"]!.GetValue<string>());
            Assert.Equal("UnsupportedMediaType", status["reason"]!.GetValue<string>());
            Assert.Equal(415, status["code"]!.GetValue<int>());
            Assert.Contains("application/json", status["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }
        using (var req = new HttpRequestMessage(HttpMethod.Get, "/api/v1/namespaces/default/services/kubernetes"))
        {
            req.Headers.TryAddWithoutValidation("Accept", "application/vnd.kubernetes.protobuf, application/json");
            using var resp = await c.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
            Assert.Equal("application/json", resp.Content.Headers.ContentType?.MediaType);
            Assert.Equal("Service", JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["kind"]!.GetValue<string>());
        }
        using (var req = new HttpRequestMessage(HttpMethod.Get, "/api/v1/namespaces/default/services/kubernetes"))
        {
            req.Headers.TryAddWithoutValidation("Accept", "application/vnd.kubernetes.protobuf");
            using var resp = await c.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.NotAcceptable, resp.StatusCode);
            Assert.Equal("NotAcceptable", JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["reason"]!.GetValue<string>());
        }
        // JSON bodies sent as such still work, and nothing was stored by the 415.
        Assert.Equal(configMaps, c.Server.Store.List(ResourceTypes.ConfigMaps, null).Items.Count);
        Assert.Empty(c.Server.Store.List(ResourceTypes.Deployments, null).Items);
        var (ok, _, _) = await c.SendAsync(HttpMethod.Post, Cm, Encoding.UTF8.GetString("""{"metadata":{"name":"j"}}"""u8), "application/json");
        Assert.Equal(HttpStatusCode.Created, ok);
    }

    [Fact]
    public async Task Protobuf_bodies_of_the_kinds_kubectls_typed_clients_create_are_decoded()
    {
        await using var c = await SimClient.StartAsync();
        // v1.ConfigMap{metadata{name "pb", labels{a: b}}, data{k: v}, binaryData{bin: 0x00ff}} in the "k8s\0" runtime.Unknown envelope.
        var meta = Concat(Str(1, "pb"), Str(3, ""), Msg(11, Concat(Str(1, "a"), Str(2, "b"))), Msg(8, []));
        var cm = Concat(Msg(1, meta), Msg(2, Concat(Str(1, "k"), Str(2, "v"))), Msg(3, Concat(Str(1, "bin"), Msg(2, [0x00, 0xff]))));
        var envelope = Concat("k8s\0"u8.ToArray(), Msg(1, Concat(Str(1, "v1"), Str(2, "ConfigMap"))), Msg(2, cm), Str(4, ""));
        using var req = new HttpRequestMessage(HttpMethod.Post, Cm) { Content = new ByteArrayContent(envelope) };
        req.Content.Headers.ContentType = new("application/vnd.kubernetes.protobuf");
        req.Headers.TryAddWithoutValidation("Accept", "application/vnd.kubernetes.protobuf,application/json");
        using var resp = await c.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.Created, resp.StatusCode);
        Assert.Equal("application/json", resp.Content.Headers.ContentType?.MediaType);
        var stored = c.Server.Store.Get(ResourceTypes.ConfigMaps, "default", "pb")!;
        Assert.Equal("v", stored["data"]!["k"]!.GetValue<string>());
        Assert.Equal("AP8=", stored["binaryData"]!["bin"]!.GetValue<string>());
        Assert.Equal("b", stored["metadata"]!["labels"]!["a"]!.GetValue<string>());
        Assert.NotNull(stored["metadata"]!["uid"]);

        // A SelfSubjectAccessReview (kubectl auth can-i) answers as its JSON twin does.
        var attrs = Concat(Str(1, "default"), Str(2, "create"), Str(5, "pods"));
        var ssar = Concat(Msg(1, []), Msg(2, Msg(1, attrs)));
        var body = Concat("k8s\0"u8.ToArray(), Msg(1, Concat(Str(1, "authorization.k8s.io/v1"), Str(2, "SelfSubjectAccessReview"))), Msg(2, ssar));
        using var review = new HttpRequestMessage(HttpMethod.Post, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") { Content = new ByteArrayContent(body) };
        review.Content.Headers.ContentType = new("application/vnd.kubernetes.protobuf");
        using var answer = await c.Http.SendAsync(review);
        Assert.Equal(HttpStatusCode.Created, answer.StatusCode);
        var json = JsonNode.Parse(await answer.Content.ReadAsStringAsync())!;
        Assert.True(json["status"]!["allowed"]!.GetValue<bool>());
        Assert.Equal("pods", json["spec"]!["resourceAttributes"]!["resource"]!.GetValue<string>());

        // Garbage after the prefix is a 400, not a crash.
        using var bad = new HttpRequestMessage(HttpMethod.Post, Cm) { Content = new ByteArrayContent([0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f]) };
        bad.Content.Headers.ContentType = new("application/vnd.kubernetes.protobuf");
        using var badResp = await c.Http.SendAsync(bad);
        Assert.Equal(HttpStatusCode.BadRequest, badResp.StatusCode);
    }

    private static byte[] Concat(params byte[][] parts) => [.. parts.SelectMany(p => p)];

    private static byte[] Str(int field, string value) => Msg(field, Encoding.UTF8.GetBytes(value));

    private static byte[] Msg(int field, byte[] value) => Concat(Varint((ulong)(field << 3 | 2)), Varint((ulong)value.Length), value);

    private static byte[] Varint(ulong v)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(v & 0x7f);
            v >>= 7;
            bytes.Add(v == 0 ? b : (byte)(b | 0x80));
        }
        while (v != 0);
        return [.. bytes];
    }

    [Fact]
    public void The_spdy3_header_dictionary_is_the_specs_1423_bytes()
    {
        var dict = KtConnect.KubeSim.Streaming.SpdyDictionary.V3;
        Assert.Equal(1423, dict.Length);
        Assert.Equal(new byte[] { 0, 0, 0, 7, (byte)'o', (byte)'p', (byte)'t', (byte)'i', (byte)'o', (byte)'n', (byte)'s' }, dict[..11]);
        Assert.EndsWith(",*,enq=0.", Encoding.ASCII.GetString(dict), StringComparison.Ordinal);
    }
}
