using System.Text.Json.Nodes;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Images;
using KtConnect.KubeSim.Store;
using Xunit.Abstractions;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>
/// The router image's /usr/sbin/router (kt-connect's mesh auto): exec'd through the API server into a router pod
/// in namespace `mesh`, it routes the pod's target port by header to `orders-kt-mesh-&lt;ver&gt;` and otherwise to
/// `orders-kt-stuntman`, both reached by their short names through the pod's cluster DNS search path.
/// </summary>
[Collection(SimClusterCollection.Name)]
public sealed class SimClusterRouterTests(SimClusterFixture fx, ITestOutputHelper output)
{
    private const string Ns = "mesh";
    private const string Router = "orders-kt-router";
    private const string RouterImage = "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-router:v0.3.7";

    private SimCluster Cluster => fx.Cluster;

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Router_setup_add_and_remove_route_by_header_to_the_mesh_services_and_otherwise_to_the_stuntman()
    {
        await CreateMeshAsync();
        try
        {
            var routerIp = Cluster.Store.Get(ResourceTypes.Pods, Ns, Router)!["status"]!["podIP"]!.GetValue<string>();
            var url = $"http://{routerIp}:8080/";

            // Short Service names resolve in the router pod through its search path, as nginx needs them to.
            var lookup = await Cluster.RunInPodAsync(Ns, Router, ["getent", "hosts", "orders-kt-stuntman"]);
            Assert.True(lookup.Succeeded, "orders-kt-stuntman does not resolve in the router pod: " + lookup.StandardError);
            Assert.StartsWith(ClusterIp("orders-kt-stuntman") + " ", lookup.StandardOutput, StringComparison.Ordinal);

            var setup = await RouterAsync("setup", "orders", "80:8080", "version:v1");
            AssertSucceeded(setup);
            var state = JsonNode.Parse(await File.ReadAllTextAsync(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/kt.conf")))!.ToJsonString();
            Assert.Equal("""{"Service":"orders","Ports":[["80","8080"]],"Header":"version","Versions":["v1"]}""", state);
            var route = await File.ReadAllTextAsync(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/nginx/conf.d/route.conf"));
            Assert.Contains("upstream orders-kt-mesh-v1-80 {\n    server orders-kt-mesh-v1:80;\n}", route, StringComparison.Ordinal);
            Assert.Contains("upstream orders-kt-stuntman-80 {\n    server orders-kt-stuntman:80;\n}", route, StringComparison.Ordinal);
            Assert.Contains("if ($http_version = \"v1\") {\n            proxy_pass http://orders-kt-mesh-v1-80;", route, StringComparison.Ordinal);

            // Exit 0 means the config is in effect: no retry loop around the first request.
            Assert.Equal("orders-kt-mesh-v1", await AnsweredByAsync(url, "version: v1"));
            Assert.StartsWith("orders-", await AnsweredByAsync(url));
            Assert.DoesNotContain("kt-mesh", await AnsweredByAsync(url), StringComparison.Ordinal);
            Assert.DoesNotContain("kt-mesh", await AnsweredByAsync(url, "version: v2"), StringComparison.Ordinal);

            AssertSucceeded(await RouterAsync("add", "version:v2"));
            Assert.Equal("orders-kt-mesh-v2", await AnsweredByAsync(url, "version: v2"));
            Assert.Equal("orders-kt-mesh-v1", await AnsweredByAsync(url, "version: v1"));

            // A different header than the one set up: refused, nothing changes.
            var mismatch = await RouterAsync("add", "kt-user:v3");
            AssertFailed(mismatch);
            Assert.Contains("kt_user", mismatch.Stderr, StringComparison.Ordinal);
            Assert.Contains("version", mismatch.Stderr, StringComparison.Ordinal);

            // A version without a Service: nginx rejects the config with its own error and the old routes stay.
            var ghost = await RouterAsync("add", "version:ghost");
            AssertFailed(ghost);
            Assert.Contains("host not found in upstream \"orders-kt-mesh-ghost:80\"", ghost.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("ghost", await File.ReadAllTextAsync(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/kt.conf")), StringComparison.Ordinal);
            Assert.Equal("orders-kt-mesh-v2", await AnsweredByAsync(url, "version: v2"));

            // nginx -t passes but the reload cannot bind the new port (taken in the pod): nginx's [emerg] is the error,
            // files go back to what nginx still serves.
            var squatter = await Cluster.RunInPodAsync(Ns, Router,
                ["sh", "-c", "\"$@\" >/dev/null 2>&1 </dev/null &", "sh", .. EchoLauncher.KubeSimCommand(), "echo", "--name", "squatter", "--port", "9090"]);
            Assert.True(squatter.Succeeded, squatter.StandardError);
            await Cluster.WaitUntilAsync(() => Cluster.RunInPodAsync(Ns, Router, ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:9090/"]).Result.Succeeded,
                "the squatter to listen on 9090");
            var routeBefore = await File.ReadAllTextAsync(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/nginx/conf.d/route.conf"));
            var bind = await RouterAsync("setup", "orders", "80:8080,90:9090", "version:v2");
            AssertFailed(bind);
            Assert.Contains("[emerg] bind() to 0.0.0.0:9090 failed (98: Address", bind.Stderr, StringComparison.Ordinal);
            Assert.Equal(routeBefore, await File.ReadAllTextAsync(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/nginx/conf.d/route.conf")));
            Assert.Contains("\"v1\"", await File.ReadAllTextAsync(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/kt.conf")), StringComparison.Ordinal);
            Assert.Equal("orders-kt-mesh-v1", await AnsweredByAsync(url, "version: v1"));

            AssertSucceeded(await RouterAsync("remove", "version:v1"));
            Assert.DoesNotContain("kt-mesh", await AnsweredByAsync(url, "version: v1"), StringComparison.Ordinal);
            Assert.Equal("orders-kt-mesh-v2", await AnsweredByAsync(url, "version: v2"));

            // The last version gone: route.conf is deleted and nginx no longer listens on the target port.
            AssertSucceeded(await RouterAsync("remove", "version:v2"));
            Assert.False(File.Exists(Cluster.Node.HostPath(Ns + "/" + Router, "/etc/nginx/conf.d/route.conf")));
            var closed = await CurlAsync(url);
            Assert.NotEqual(0, closed.Code);

            // Other commands in the router pod run as before.
            var other = await Cluster.ExecThroughApiAsync(Ns, Router, ["nginx", "-v"]);
            Assert.Contains("nginx version", other.Stderr, StringComparison.Ordinal);
            Cluster.ThrowIfFailed();
        }
        finally
        {
            Cluster.Store.Delete(ResourceTypes.Namespaces, null, Ns);
            await Cluster.WaitUntilAsync(() => Cluster.Node.GetPod(Ns + "/" + Router) is null, "the mesh namespace's pods to stop");
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Router_commands_without_setup_or_with_a_bad_command_line_fail_and_write_nothing()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"mesh-bare"}}""");
        try
        {
            Cluster.Apply(RouterPod("mesh-bare"));
            await Cluster.WaitForAsync(ResourceTypes.Pods, "mesh-bare", Router, SimClusterFixture.IsReady);

            var add = await Cluster.ExecThroughApiAsync("mesh-bare", Router, ["/usr/sbin/router", "add", "version:v1"]);
            var usage = await Cluster.ExecThroughApiAsync("mesh-bare", Router, ["router", "setup", "orders", "80", "version:v1"]);

            AssertFailed(add);
            Assert.Contains("router setup", add.Stderr, StringComparison.Ordinal);
            Assert.Contains("\"reason\":\"ExitCode\",\"message\":\"2\"", usage.Status, StringComparison.Ordinal);
            Assert.Contains("usage: router setup", usage.Stderr, StringComparison.Ordinal);
            Assert.False(File.Exists(Cluster.Node.HostPath("mesh-bare/" + Router, "/etc/kt.conf")));
            Assert.False(File.Exists(Cluster.Node.HostPath("mesh-bare/" + Router, "/etc/nginx/conf.d/route.conf")));
        }
        finally
        {
            Cluster.Store.Delete(ResourceTypes.Namespaces, null, "mesh-bare");
            await Cluster.WaitUntilAsync(() => Cluster.Node.GetPod("mesh-bare/" + Router) is null, "the router pod to stop");
        }
    }

    private async Task CreateMeshAsync()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"mesh"}}""");
        Cluster.Apply(SimClusterFixture.Deployment(Ns, "orders", 2, "ktconnect/echo:1.0", 8080));
        Cluster.Apply(SimClusterFixture.Service(Ns, "orders", "app=orders", 80, 8080));
        Cluster.Apply(SimClusterFixture.Service(Ns, "orders-kt-stuntman", "app=orders", 80, 8080));
        foreach (var ver in new[] { "v1", "v2" })
        {
            Cluster.Apply(MeshPod(ver));
            Cluster.Apply(SimClusterFixture.Service(Ns, "orders-kt-mesh-" + ver, "kt-target=mesh-" + ver, 80, 8080));
        }
        Cluster.Apply(RouterPod(Ns));
        await fx.WaitDeploymentReadyAsync(Ns, "orders", 2);
        await Cluster.WaitForAsync(ResourceTypes.Pods, Ns, Router, SimClusterFixture.IsReady);
        await fx.WaitEndpointsAsync(Ns, "orders-kt-stuntman", 2);
        await fx.WaitEndpointsAsync(Ns, "orders-kt-mesh-v1", 1);
        await fx.WaitEndpointsAsync(Ns, "orders-kt-mesh-v2", 1);
    }

    private static string MeshPod(string ver) => new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Pod",
        ["metadata"] = new JsonObject
        {
            ["name"] = "orders-kt-mesh-" + ver,
            ["namespace"] = Ns,
            ["labels"] = new JsonObject { ["kt-role"] = "shadow-mesh", ["kt-target"] = "mesh-" + ver },
        },
        ["spec"] = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject
            {
                ["name"] = "standalone",
                ["image"] = "ktconnect/echo:1.0",
                ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = 8080 }),
            }),
        },
    }.ToJsonString();

    // As kt-connect creates it: container `standalone`, ports `router-<targetPort>`.
    private static string RouterPod(string ns) => new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Pod",
        ["metadata"] = new JsonObject
        {
            ["name"] = Router,
            ["namespace"] = ns,
            ["labels"] = new JsonObject { ["kt-role"] = "router", ["control-by"] = "kt" },
            ["annotations"] = new JsonObject { ["kt-config"] = "service=orders", ["kt-ref-count"] = "1" },
        },
        ["spec"] = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject
            {
                ["name"] = "standalone",
                ["image"] = RouterImage,
                ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = 8080, ["name"] = "router-8080" }),
            }),
        },
    }.ToJsonString();

    private string ClusterIp(string service) => Cluster.Store.Get(ResourceTypes.Services, Ns, service)!["spec"]!["clusterIP"]!.GetValue<string>();

    private async Task<RawExecResult> RouterAsync(params string[] args)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = await Cluster.ExecThroughApiAsync(Ns, Router, ["/usr/sbin/router", .. args]);
        output.WriteLine($"router {string.Join(' ', args)}: {clock.ElapsedMilliseconds} ms, {r.Status.Trim()} {r.Stderr.Trim()}");
        return r;
    }

    private static void AssertSucceeded(RawExecResult r) =>
        Assert.True(r.Status.Contains("\"status\":\"Success\"", StringComparison.Ordinal), $"router failed: {r.Status}\n{r.Stderr}");

    private static void AssertFailed(RawExecResult r) =>
        Assert.True(r.Status.Contains("\"reason\":\"ExitCode\",\"message\":\"1\"", StringComparison.Ordinal), $"router did not fail with 1: {r.Status}\n{r.Stdout}\n{r.Stderr}");

    private Task<(int Code, string Body)> CurlAsync(string url, string? header = null) =>
        header is null ? fx.CurlFromClientAsync(url) : fx.CurlFromClientAsync("-H", header, url);

    // The pod that answered (the echo server's X-Pod-Name), after one request without retries.
    private async Task<string> AnsweredByAsync(string url, string? header = null)
    {
        var (code, body) = await CurlAsync(url, header);
        Assert.True(code == 0, $"curl {url} ({header}) failed: {body}");
        var line = body.Split('\n').FirstOrDefault(l => l.StartsWith("pod: ", StringComparison.Ordinal));
        Assert.True(line is not null, "no echo answer: " + body);
        return line!["pod: ".Length..];
    }
}
