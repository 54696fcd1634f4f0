using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using KtConnect.Engine;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Json;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.KubeSim;

namespace KtConnect.Tests.Integration.KubeSimClients;

/// <summary>
/// A real kubectl (found on PATH) against the simulated cluster (issue 14): apply, get with server-side tables,
/// describe, the three patch types, scale, rollout status, logs, watch, auth can-i, namespace deletion, and
/// KtConnect's own client reading the same objects as kubectl.
/// </summary>
[Collection(SimClusterCollection.Name)]
public sealed partial class KubectlTests(SimClusterFixture fx) : IDisposable
{
    private const string Needs = "kubectl";
    private readonly string _home = Directory.CreateTempSubdirectory("kubesim-kubectl-").FullName;
    private string? _kubeconfig;

    private SimCluster Cluster => fx.Cluster;

    private string Kubeconfig => _kubeconfig ??= Cluster.WriteKubeconfig(Path.Combine(_home, "config"));

    public void Dispose()
    {
        // Leave the shared cluster as found: the test's namespace (and so its pods) goes.
        foreach (var ns in _namespaces)
        {
            if (fx.Cluster?.Store.Get(ResourceTypes.Namespaces, null, ns) is null) continue;
            try
            {
                fx.Cluster.Store.Delete(ResourceTypes.Namespaces, null, ns);
            }
            catch (KtConnect.KubeSim.Store.KubeApiException)
            {
                // Deleted meanwhile.
            }
        }
        try { Directory.Delete(_home, recursive: true); } catch (IOException) { }
    }

    private readonly List<string> _namespaces = [];

    private async Task CreateNamespaceAsync(string ns)
    {
        _namespaces.Add(ns);
        (await Kubectl("create", "namespace", ns)).EnsureSuccess();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Apply_get_tables_rollout_describe_logs_and_dry_run()
    {
        const string ns = "kubectl-apply";
        await CreateNamespaceAsync(ns);
        var manifest = SimClusterFixture.Deployment(ns, "web", 2, "ktconnect/echo:1.0", 8080) + "\n" + SimClusterFixture.Service(ns, "web", "app=web", 80, 8080);

        var applied = await Kubectl(["apply", "-n", ns, "-f", "-"], manifest);
        Assert.True(applied.Succeeded, applied.StandardError);
        Assert.Contains("deployment.apps/web created", applied.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("service/web created", applied.StandardOutput, StringComparison.Ordinal);
        var rollout = await Kubectl(["rollout", "status", "deployment/web", "-n", ns, "--timeout=90s"]);
        Assert.True(rollout.Succeeded, rollout.StandardOutput + rollout.StandardError);
        Assert.Contains("successfully rolled out", rollout.StandardOutput, StringComparison.Ordinal);

        var again = await Kubectl(["apply", "-n", ns, "-f", "-"], manifest);
        Assert.Contains("deployment.apps/web unchanged", again.StandardOutput, StringComparison.Ordinal);

        var pods = Table(await KubectlOk("get", "pods", "-n", ns));
        Assert.Equal(["NAME", "READY", "STATUS", "RESTARTS", "AGE"], pods.Header);
        Assert.Equal(2, pods.Rows.Count);
        Assert.All(pods.Rows, r => Assert.Equal(["1/1", "Running", "0"], r[1..4]));
        var wide = Table(await KubectlOk("get", "pods", "-n", ns, "-o", "wide"));
        Assert.Equal(["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"], wide.Header);
        var podIps = Cluster.Pods(ns, "app=web").Select(p => p["status"]!["podIP"]!.GetValue<string>()).Order().ToList();
        Assert.Equal(podIps, wide.Rows.Select(r => r[5]).Order().ToList());

        var svc = Table(await KubectlOk("get", "services", "-n", ns));
        Assert.Equal(["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], svc.Header);
        var clusterIp = Cluster.Store.Get(ResourceTypes.Services, ns, "web")!["spec"]!["clusterIP"]!.GetValue<string>();
        Assert.Equal(["web", "ClusterIP", clusterIp, "<none>", "80/TCP"], svc.Rows.Single()[..5]);

        var deploy = Table(await KubectlOk("get", "deployments", "-n", ns));
        Assert.Equal(["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], deploy.Header);
        Assert.Equal(["web", "2/2", "2", "2"], deploy.Rows.Single()[..4]);
        var rs = Table(await KubectlOk("get", "replicasets", "-n", ns));
        Assert.Equal(["NAME", "DESIRED", "CURRENT", "READY", "AGE"], rs.Header);
        var nsTable = Table(await KubectlOk("get", "namespace", ns));
        Assert.Equal(["NAME", "STATUS", "AGE"], nsTable.Header);
        Assert.Equal([ns, "Active"], nsTable.Rows.Single()[..2]);
        var nodes = Table(await KubectlOk("get", "nodes"));
        Assert.Equal(["NAME", "STATUS", "ROLES", "AGE", "VERSION"], nodes.Header);
        Assert.Equal("Ready", nodes.Rows.Single()[1]);
        var ep = Table(await KubectlOk("get", "endpoints", "web", "-n", ns));
        Assert.Equal(["NAME", "ENDPOINTS", "AGE"], ep.Header);
        Assert.Equal(string.Join(',', podIps.Select(ip => ip + ":8080").Order()), string.Join(',', ep.Rows.Single()[1].Split(',').Order()));

        var describe = await KubectlOk("describe", "deployment", "web", "-n", ns);
        Assert.Matches(@"Replicas:\s+2 desired \| 2 updated \| 2 total \| 2 available \| 0 unavailable", describe);
        var pod = pods.Rows[0][0];
        var describePod = await KubectlOk("describe", "pod", pod, "-n", ns);
        Assert.Matches(@"Status:\s+Running", describePod);
        Assert.Contains("ktconnect/echo:1.0", describePod, StringComparison.Ordinal);

        var logs = await KubectlOk("logs", pod, "-n", ns);
        Assert.Contains($"echo {ns}/{pod} listening on", logs, StringComparison.Ordinal);

        // --dry-run=server: validated and answered, nothing stored; an invalid object is refused by the server.
        var dry = await Kubectl(["create", "configmap", "dry", "-n", ns, "--from-literal=k=v", "--dry-run=server"]);
        Assert.True(dry.Succeeded, dry.StandardError);
        Assert.Contains("configmap/dry created (server dry run)", dry.StandardOutput, StringComparison.Ordinal);
        Assert.Null(Cluster.Store.Get(ResourceTypes.ConfigMaps, ns, "dry"));
        var invalid = await Kubectl(["create", "-n", ns, "-f", "-", "--dry-run=server"],
            """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c","image":""}]}}""");
        Assert.False(invalid.Succeeded);
        Assert.Contains("is invalid", invalid.StandardError, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Patch_merge_json_and_strategic_and_scale()
    {
        const string ns = "kubectl-patch";
        await CreateNamespaceAsync(ns);
        (await Kubectl(["apply", "-n", ns, "-f", "-"], SimClusterFixture.Deployment(ns, "app", 1, "ktconnect/echo:1.0", 8080))).EnsureSuccess();
        (await Kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=a=1")).EnsureSuccess();

        (await Kubectl("patch", "configmap", "settings", "-n", ns, "--type", "merge", "-p", """{"data":{"b":"2"}}""")).EnsureSuccess();
        (await Kubectl("patch", "configmap", "settings", "-n", ns, "--type", "json", "-p", """[{"op":"replace","path":"/data/a","value":"one"}]""")).EnsureSuccess();
        var data = Cluster.Store.Get(ResourceTypes.ConfigMaps, ns, "settings")!["data"]!;
        Assert.Equal(("one", "2"), (data["a"]!.GetValue<string>(), data["b"]!.GetValue<string>()));
        var failedTest = await Kubectl("patch", "configmap", "settings", "-n", ns, "--type", "json", "-p", """[{"op":"test","path":"/data/a","value":"x"}]""");
        Assert.False(failedTest.Succeeded);

        // Strategic merge (kubectl's default type): the container list merges by name.
        (await Kubectl("patch", "deployment", "app", "-n", ns, "-p",
            """{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"MODE","value":"fast"}]}]}}}}""")).EnsureSuccess();
        var container = Cluster.Store.Get(ResourceTypes.Deployments, ns, "app")!["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Single()!;
        Assert.Equal("ktconnect/echo:1.0", container["image"]!.GetValue<string>());
        Assert.Equal("fast", container["env"]![0]!["value"]!.GetValue<string>());

        var scaled = await Kubectl("scale", "deployment", "app", "-n", ns, "--replicas=2");
        Assert.True(scaled.Succeeded, scaled.StandardError);
        Assert.Contains("deployment.apps/app scaled", scaled.StandardOutput, StringComparison.Ordinal);
        (await Kubectl("rollout", "status", "deployment/app", "-n", ns, "--timeout=90s")).EnsureSuccess();
        await fx.WaitDeploymentReadyAsync(ns, "app", 2);
        Assert.Equal(2, Cluster.Pods(ns, "app=app").Count(SimClusterFixture.IsReady));
        Assert.Equal("2", (await KubectlOk("get", "deployment", "app", "-n", ns, "-o", "jsonpath={.status.readyReplicas}")).Trim());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Get_watch_prints_a_row_per_change_until_stopped()
    {
        const string ns = "kubectl-watch";
        await CreateNamespaceAsync(ns);
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new StringBuilder();
        using var watch = StartKubectl("get", "configmaps", "-n", ns, "-w", "--request-timeout=60s");
        watch.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            if (e.Data.StartsWith("watched ", StringComparison.Ordinal)) seen.TrySetResult(e.Data);
        };
        watch.BeginOutputReadLine();
        watch.BeginErrorReadLine();
        try
        {
            // Create the ConfigMap once kubectl's watch request has reached the server.
            await Cluster.WaitUntilAsync(() => Cluster.Server.Hooks.Requests.Any(r => r.PathAndQuery.Contains($"/namespaces/{ns}/configmaps?", StringComparison.Ordinal)
                && r.PathAndQuery.Contains("watch=true", StringComparison.Ordinal)), "kubectl's watch request");
            Cluster.Apply($$$"""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"watched","namespace":"{{{ns}}}"},"data":{"a":"1","b":"2"}}""");
            var line = await seen.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Matches(@"^watched\s+2\s+\d+s$", line);
        }
        finally
        {
            watch.Kill();
            await watch.WaitForExitAsync();
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Auth_can_i_follows_the_authorizer()
    {
        var yes = await Kubectl("auth", "can-i", "create", "pods", "-n", "default");
        Assert.Equal(0, yes.ExitCode);
        Assert.Equal("yes", yes.StandardOutput.Trim());
        Cluster.Server.Hooks.Authorize = info => !(info.Verb == "delete" && info.Resource == "services");
        try
        {
            var no = await Kubectl("auth", "can-i", "delete", "services", "-n", "default");
            Assert.Equal(1, no.ExitCode);
            Assert.Equal("no", no.StandardOutput.Trim());
            var other = await Kubectl("auth", "can-i", "delete", "pods", "-n", "default");
            Assert.Equal("yes", other.StandardOutput.Trim());
        }
        finally
        {
            Cluster.Server.Hooks.Authorize = null;
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Deleting_a_namespace_waits_for_its_contents_and_shows_terminating_meanwhile()
    {
        const string ns = "kubectl-doomed";
        await CreateNamespaceAsync(ns);
        (await Kubectl(["apply", "-n", ns, "-f", "-"], SimClusterFixture.Deployment(ns, "gone", 1, "busybox:1.36", 80))).EnsureSuccess();
        await fx.WaitDeploymentReadyAsync(ns, "gone", 1);
        Cluster.Apply($$$"""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","namespace":"{{{ns}}}","finalizers":["example.com/hold"]}}""");

        var podName = Cluster.Pods(ns).Single()["metadata"]!["name"]!.GetValue<string>();
        Assert.NotNull(Cluster.Node.GetPod(ns + "/" + podName));
        var deleted = await Kubectl("delete", "namespace", ns, "--wait=false");
        Assert.True(deleted.Succeeded, deleted.StandardError);
        Assert.Contains($"namespace \"{ns}\" deleted", deleted.StandardOutput, StringComparison.Ordinal);
        var terminating = Table(await KubectlOk("get", "namespace", ns));
        Assert.Equal([ns, "Terminating"], terminating.Rows.Single()[..2]);
        Assert.Empty(Cluster.Pods(ns));
        await Cluster.WaitUntilAsync(() => Cluster.Node.GetPod(ns + "/" + podName) is null, "the node to stop the namespace's pod");

        (await Kubectl("patch", "configmap", "held", "-n", ns, "--type", "merge", "-p", """{"metadata":{"finalizers":null}}""")).EnsureSuccess();
        var waited = await Kubectl("wait", "--for=delete", "namespace/" + ns, "--timeout=60s");
        // Already gone when kubectl looks: 1.32 succeeds, 1.20 says "no matching resources found".
        Assert.True(waited.Succeeded || waited.StandardError.Contains("no matching resources found", StringComparison.Ordinal), waited.StandardError);
        var get = await Kubectl("get", "namespace", ns);
        Assert.False(get.Succeeded);
        Assert.Contains($"namespaces \"{ns}\" not found", get.StandardError, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Exec_over_spdy_reports_output_exit_codes_and_takes_stdin()
    {
        var pod = Cluster.Pods("default", "app=echo")[0]["metadata"]!["name"]!.GetValue<string>();

        var failing = await Kubectl("exec", pod, "-n", "default", "--", "sh", "-c", "echo out; echo err >&2; exit 3");
        Assert.Equal(3, failing.ExitCode);
        Assert.Equal("out\n", failing.StandardOutput);
        Assert.Contains("err", failing.StandardError, StringComparison.Ordinal);
        Assert.Contains("command terminated with exit code 3", failing.StandardError, StringComparison.Ordinal);

        var ok = await Kubectl("exec", pod, "-n", "default", "--", "cat", "/etc/resolv.conf");
        Assert.True(ok.Succeeded, ok.StandardError);
        Assert.Contains("nameserver " + Cluster.Node.ClusterDnsIp, ok.StandardOutput, StringComparison.Ordinal);

        // -i: SPDY half-closes stdin, so cat sees end of input and the command ends by itself.
        var input = string.Concat(Enumerable.Repeat("line of stdin\n", 5000));
        var cat = await Kubectl(["exec", "-i", pod, "-n", "default", "--", "cat"], input);
        Assert.True(cat.Succeeded, cat.StandardError);
        Assert.Equal(input, cat.StandardOutput);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs, "script")]
    public async Task Exec_with_a_tty_gets_a_terminal_that_follows_resizes()
    {
        var pod = Cluster.Pods("default", "app=echo")[0]["metadata"]!["name"]!.GetValue<string>();
        // kubectl wants a terminal of its own for -t: util-linux script gives it one (33x111), fed from our stdin.
        // The remote shell waits (with a deadline) until kubectl's resize has reached its pty.
        const string input = """for i in $(seq 100); do [ "$(stty size)" = "33 111" ] && break; sleep 0.1; done; echo SIZE=$(stty size); test -t 0 && echo IS_A_TTY; tty; exit 4""";
        var r = await ProcessRunner.RunAsync("script", ["-q", "-e", "-c", $"stty rows 33 cols 111; kubectl exec -it {pod} -n default -- sh", "/dev/null"],
            input + "\n", TimeSpan.FromMinutes(1), Environment());

        Assert.Equal(4, r.ExitCode);
        Assert.Contains("SIZE=33 111\r\n", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("IS_A_TTY\r\n", r.StandardOutput, StringComparison.Ordinal);
        Assert.Matches(@"/dev/pts/\d+\r\n", r.StandardOutput);
        Assert.Contains("command terminated with exit code 4", r.StandardOutput, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Port_forward_to_a_pod_and_to_a_service_carries_http_both_ways()
    {
        var pods = Cluster.Pods("default", "app=echo").Select(p => p["metadata"]!["name"]!.GetValue<string>()).ToList();
        foreach (var (target, remote) in new[] { ("pod/" + pods[0], "8080"), ("service/echo", "80") })
        {
            var output = new StringBuilder();
            var forwarding = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var pf = StartKubectl("port-forward", "-n", "default", target, ":" + remote);
            pf.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (output) output.AppendLine(e.Data);
                var m = Regex.Match(e.Data, @"^Forwarding from 127\.0\.0\.1:(\d+) ->");
                if (m.Success) forwarding.TrySetResult(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            };
            pf.BeginOutputReadLine();
            pf.BeginErrorReadLine();
            try
            {
                var port = await forwarding.Task.WaitAsync(TimeSpan.FromSeconds(30));
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
                var marker = new string('x', 40_000); // a request and an answer of some size, through every layer
                for (var i = 0; i < 3; i++)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, $"http://127.0.0.1:{port}/round/{i}");
                    request.Headers.TryAddWithoutValidation("X-Marker", marker);
                    using var response = await http.SendAsync(request);
                    var body = await response.Content.ReadAsStringAsync();
                    Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
                    Assert.Contains($"request: GET /round/{i} HTTP/1.1", body, StringComparison.Ordinal);
                    Assert.Contains("header: X-Marker: " + marker, body, StringComparison.Ordinal);
                    Assert.Contains("port: 8080", body, StringComparison.Ordinal);
                    Assert.Contains(response.Headers.GetValues("X-Pod-Name").Single(), pods);
                }
            }
            finally
            {
                pf.Kill();
                await pf.WaitForExitAsync();
            }
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task KtConnects_client_and_kubectl_read_the_same_objects()
    {
        using var client = new KubeClient(new KubeClientConfiguration
        {
            Server = new Uri(Cluster.ServerUrl),
            ContextName = "kubesim",
            Namespace = "default",
            CertificateAuthorities = new X509Certificate2Collection(Cluster.Server.CaCertificate),
            Credentials = new StaticCredentials(Cluster.AdminToken),
        });
        var compared = 0;
        compared += await CompareAsync("pods", (await client.Pods.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Pod));
        compared += await CompareAsync("services", (await client.Services.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Service));
        compared += await CompareAsync("configmaps", (await client.ConfigMaps.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.ConfigMap));
        compared += await CompareAsync("secrets", (await client.Secrets.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Secret));
        compared += await CompareAsync("namespaces", (await client.Namespaces.ListAsync()).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Namespace));
        compared += await CompareAsync("nodes", (await client.Nodes.ListAsync()).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Node));
        compared += await CompareAsync("deployments.apps", (await client.Deployments.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Deployment));
        compared += await CompareAsync("replicasets.apps", (await client.ReplicaSets.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.ReplicaSet));
        compared += await CompareAsync("endpointslices.discovery.k8s.io", (await client.EndpointSlices.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.EndpointSlice));
        compared += await CompareAsync("leases.coordination.k8s.io", (await client.Leases.ListAsync(KubeClient.AllNamespaces)).Items,
            o => JsonSerializer.SerializeToNode(o, KubeJsonContext.Default.Lease));
        // The shared cluster holds at least the echo and client deployments with their pods, services, slices, namespaces, the node.
        Assert.True(compared >= 15, $"only {compared} objects compared");
    }

    /// <summary>
    /// kubectl get -A -o json of <paramref name="resource"/> against what our client read: every object both saw at
    /// the same resourceVersion must be equal field for field (our models keep unmodelled fields, so the whole object).
    /// </summary>
    private async Task<int> CompareAsync<T>(string resource, IReadOnlyList<T> ours, Func<T, JsonNode?> toJson) where T : KtConnect.Engine.Kube.Models.KubeObject
    {
        var theirs = JsonNode.Parse(await KubectlOk("get", resource, "-A", "-o", "json"))!["items"]!.AsArray()
            .ToDictionary(i => i!["metadata"]!["uid"]!.GetValue<string>(), i => i!);
        var count = 0;
        foreach (var o in ours)
        {
            if (!theirs.TryGetValue(o.Metadata.Uid!, out var kubectl)) continue;
            if (kubectl["metadata"]!["resourceVersion"]!.GetValue<string>() != o.Metadata.ResourceVersion) continue; // changed between the reads
            var mine = Normalize(toJson(o));
            var expected = Normalize(kubectl.DeepClone());
            Assert.True(JsonNode.DeepEquals(expected, mine),
                $"{resource} {o.Metadata.Namespace}/{o.Metadata.Name}:\nkubectl: {expected?.ToJsonString()}\nours:    {mine?.ToJsonString()}");
            count++;
        }
        return count;
    }

    /// <summary>Nulls dropped (our serializer omits them; kubectl prints a few, e.g. a template's creationTimestamp: null).</summary>
    private static JsonNode? Normalize(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o.ToList())
                {
                    if (v is null) o.Remove(k);
                    else Normalize(v);
                }
                return o;
            case JsonArray a:
                foreach (var v in a) Normalize(v);
                return a;
            default:
                return node;
        }
    }

    // ---------------------------------------------------------------- kubectl

    private Task<ProcessResult> Kubectl(params string[] args) => Kubectl(args, null);

    private Task<ProcessResult> Kubectl(string[] args, string? stdin) =>
        ProcessRunner.RunAsync("kubectl", args, stdin, TimeSpan.FromMinutes(2), Environment());

    private async Task<string> KubectlOk(params string[] args)
    {
        var r = await Kubectl(args);
        Assert.True(r.Succeeded, $"kubectl {string.Join(' ', args)}: {r.StandardError}");
        return r.StandardOutput;
    }

    private Process StartKubectl(params string[] args)
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in Environment()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    private Dictionary<string, string?> Environment() => new()
    {
        ["KUBECONFIG"] = Kubeconfig,
        ["HOME"] = _home, // a private discovery and OpenAPI cache
        ["KUBECACHEDIR"] = Path.Combine(_home, "cache"),
    };

    /// <summary>kubectl's human-readable table: header cells and row cells, split on runs of two or more spaces.</summary>
    private static (List<string> Header, List<string[]> Rows) Table(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        return (Columns().Split(lines[0].Trim()).ToList(), lines.Skip(1).Select(l => Columns().Split(l.Trim())).ToList());
    }

    [GeneratedRegex(@"\s{2,}")]
    private static partial Regex Columns();
}
