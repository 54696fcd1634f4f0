using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>The smoke test of issue 6: objects applied through the control plane become processes, routes and DNS.</summary>
[Collection(SimClusterCollection.Name)]
public sealed class SimClusterSmokeTests(SimClusterFixture fx)
{
    private SimCluster Cluster => fx.Cluster;

    private string[] EchoPods => [.. Cluster.Pods("default", "app=echo").Select(p => p["metadata"]!["name"]!.GetValue<string>())];

    private string EchoClusterIp => Cluster.Store.Get(ResourceTypes.Services, "default", "echo")!["spec"]!["clusterIP"]!.GetValue<string>();

    [LinuxRootTheory("sshd", "dnsmasq", "nginx", "nft", "curl")]
    [InlineData("echo")]
    [InlineData("echo.default")]
    [InlineData("echo.default.svc.cluster.local")]
    [InlineData("CLUSTER-IP")]
    public async Task A_pod_reaches_the_echo_deployment_by_service_name_and_cluster_ip(string host)
    {
        if (host == "CLUSTER-IP") host = EchoClusterIp;

        var (code, body) = await fx.CurlFromClientAsync($"http://{host}/");

        Assert.True(code == 0, body);
        Assert.Contains(EchoPods, pod => body.Contains("pod: " + pod + "\n", StringComparison.Ordinal));
        Assert.Contains("port: 8080\n", body, StringComparison.Ordinal);
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task The_laptop_reaches_the_api_server_but_neither_the_cluster_ip_nor_a_pod_ip()
    {
        var api = await Cluster.RunInLaptopAsync(["curl", "-sS", "--cacert", await WriteCaAsync(), "--connect-timeout", "5", Cluster.ServerUrl + "/version"]);
        Assert.True(api.Succeeded, api.StandardError);
        Assert.Contains("\"gitVersion\"", api.StandardOutput, StringComparison.Ordinal);

        var podIp = Cluster.Pods("default", "app=echo")[0]["status"]!["podIP"]!.GetValue<string>();
        foreach (var url in new[] { $"http://{EchoClusterIp}/", $"http://{podIp}:8080/" })
        {
            var r = await Cluster.RunInLaptopAsync(["curl", "-sS", "--connect-timeout", "2", "--max-time", "4", url]);
            Assert.False(r.Succeeded, $"{url} answered from the laptop: {r.StandardOutput}");
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_port_forward_through_the_api_server_reads_the_shadow_pods_sshd_banner()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var forward = await Cluster.PortForwardAsync("default", SimClusterFixture.ShadowPod, 22, cts.Token);

        var banner = await forward.ReadUntilAsync(t => t.Contains('\n', StringComparison.Ordinal), cts.Token);

        Assert.StartsWith("SSH-2.0-OpenSSH", banner, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task An_unknown_image_gives_ErrImagePull_then_ImagePullBackOff_and_events()
    {
        var pod = new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject { ["name"] = "bad-image", ["namespace"] = "default" },
            ["spec"] = new JsonObject { ["containers"] = new JsonArray(new JsonObject { ["name"] = "app", ["image"] = "unknown/nothing:1" }) },
        };
        Cluster.Apply(pod.ToJsonString());
        try
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            await Cluster.WaitForAsync(ResourceTypes.Pods, "default", "bad-image", p =>
            {
                if (p?["status"]?["containerStatuses"]?[0]?["state"]?["waiting"]?["reason"]?.GetValue<string>() is { } reason) seen.Add(reason);
                return seen.Contains("ImagePullBackOff");
            });
            var status = Cluster.Store.Get(ResourceTypes.Pods, "default", "bad-image")!["status"]!;
            Assert.Equal("Pending", status["phase"]!.GetValue<string>());
            Assert.Equal("False", status["conditions"]!.AsArray().Single(c => c!["type"]!.GetValue<string>() == "Ready")!["status"]!.GetValue<string>());
            // The kubelet records the BackOff event just after it writes the status.
            List<JsonObject> events = [];
            await Cluster.WaitUntilAsync(() =>
            {
                events = Cluster.Store.List(ResourceTypes.Events, "default").Items
                    .Where(e => e["involvedObject"]?["name"]?.GetValue<string>() == "bad-image").ToList();
                return events.Any(e => e["reason"]!.GetValue<string>() == "BackOff");
            }, "the BackOff event");
            Assert.Contains(events, e => e["reason"]!.GetValue<string>() == "Failed" && e["type"]!.GetValue<string>() == "Warning"
                && e["message"]!.GetValue<string>().Contains("Failed to pull image \"unknown/nothing:1\"", StringComparison.Ordinal));
            Assert.Contains(events, e => e["message"]!.GetValue<string>() == "Error: ErrImagePull");
            Assert.Contains(events, e => e["reason"]!.GetValue<string>() == "BackOff");
            Assert.Contains(events, e => e["reason"]!.GetValue<string>() == "Scheduled" && e["source"]!["component"]!.GetValue<string>() == "default-scheduler");
            Assert.Null(Cluster.Node.GetPod("default/bad-image"));
        }
        finally
        {
            Cluster.Store.Delete(ResourceTypes.Pods, "default", "bad-image");
        }
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Scaling_through_the_scale_subresource_adds_pods_and_scaling_to_zero_removes_them_and_their_namespaces()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"scale"}}""");
        Cluster.Apply(SimClusterFixture.Deployment("scale", "web", 1, "nginx:1.25", 8080));
        await fx.WaitDeploymentReadyAsync("scale", "web", 1);
        using var http = Cluster.CreateHttpClient();

        using (var patch = new HttpRequestMessage(HttpMethod.Patch, "apis/apps/v1/namespaces/scale/deployments/web/scale")
        {
            Content = new StringContent("""{"spec":{"replicas":3}}""", Encoding.UTF8, new MediaTypeHeaderValue("application/merge-patch+json")),
        })
        {
            using var response = await http.SendAsync(patch);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }
        await fx.WaitDeploymentReadyAsync("scale", "web", 3);
        var pods = Cluster.Pods("scale", "app=web");
        Assert.Equal(3, pods.Count);
        var netns = pods.Select(p => Cluster.Node.GetPod("scale/" + p["metadata"]!["name"])!.NetNsName).ToList();
        Assert.All(netns, n => Assert.True(File.Exists("/var/run/netns/" + n), n));

        using (var put = new HttpRequestMessage(HttpMethod.Put, "apis/apps/v1/namespaces/scale/deployments/web/scale")
        {
            Content = new StringContent("""{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":"scale"},"spec":{"replicas":0}}""",
                Encoding.UTF8, "application/json"),
        })
        {
            using var response = await http.SendAsync(put);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }
        await Cluster.WaitUntilAsync(() => Cluster.Pods("scale").Count == 0, "the pods to go");
        await Cluster.WaitUntilAsync(() => netns.All(n => !File.Exists("/var/run/netns/" + n)), "the pod namespaces to go");
        Assert.DoesNotContain(Cluster.Node.Pods, p => p.Key.StartsWith("scale/", StringComparison.Ordinal));
        var deployment = await Cluster.WaitForAsync(ResourceTypes.Deployments, "scale", "web", d => d?["status"]?["replicas"] is null
            && d?["status"]?["observedGeneration"]?.GetValue<long>() == d?["metadata"]?["generation"]?.GetValue<long>());
        Assert.Equal(0, deployment!["spec"]!["replicas"]!.GetValue<int>());
        var rs = Assert.Single(Cluster.Store.List(ResourceTypes.ReplicaSets, "scale").Items);
        Assert.Equal(0, rs["spec"]!["replicas"]!.GetValue<int>());
        Cluster.Store.Delete(ResourceTypes.Namespaces, null, "scale");
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task The_snapshot_diff_shows_exactly_the_objects_a_deployment_and_service_create()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"snap"}}""");
        var before = Cluster.Snapshot();

        Cluster.ApplyManifest("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: api, namespace: snap}
            spec:
              replicas: 2
              selector: {matchLabels: {app: api}}
              template:
                metadata: {labels: {app: api}}
                spec:
                  containers:
                  - {name: api, image: "ktconnect/echo:1.0", ports: [{name: http, containerPort: 8080}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: api, namespace: snap}
            spec:
              selector: {app: api}
              ports: [{name: http, port: 80, targetPort: http}]
            """);
        await fx.WaitDeploymentReadyAsync("snap", "api", 2);
        await fx.WaitEndpointsAsync("snap", "api", 2);
        var after = Cluster.Snapshot();
        var (code, body) = await fx.CurlFromClientAsync("http://api.snap/"); // named targetPort, another namespace
        Assert.True(code == 0, body);
        Assert.Contains("namespace: snap\n", body, StringComparison.Ordinal);

        var diff = before.Diff(after);
        var rs = Assert.Single(Cluster.Store.List(ResourceTypes.ReplicaSets, "snap").Items)["metadata"]!["name"]!.GetValue<string>();
        var slice = Assert.Single(Cluster.Store.List(ResourceTypes.EndpointSlices, "snap").Items)["metadata"]!["name"]!.GetValue<string>();
        string[] expected =
        [
            "Deployment snap/api", "ReplicaSet snap/" + rs, "Service snap/api", "Endpoints snap/api", "EndpointSlice snap/" + slice,
            .. Cluster.Pods("snap").Select(p => "Pod snap/" + p["metadata"]!["name"]),
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), diff.Added.Order(StringComparer.Ordinal));
        Assert.Empty(diff.Removed);
        Assert.DoesNotContain(diff.Changed, k => k.Contains(" snap/", StringComparison.Ordinal));

        Cluster.Store.Delete(ResourceTypes.Namespaces, null, "snap");
        await Cluster.WaitUntilAsync(() => !Cluster.Node.Pods.Any(p => p.Key.StartsWith("snap/", StringComparison.Ordinal)), "the snap pods to stop");
        Assert.True(before.Diff(Cluster.Snapshot()).Added.All(k => !k.Contains(" snap/", StringComparison.Ordinal)));
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public void Deployment_objects_look_like_the_real_controllers_make_them()
    {
        var deployment = Cluster.Store.Get(ResourceTypes.Deployments, "default", "echo")!;
        var rs = Assert.Single(Cluster.Store.List(ResourceTypes.ReplicaSets, "default", LabelSelector.Parse("app=echo")).Items);
        var hash = rs["metadata"]!["labels"]!["pod-template-hash"]!.GetValue<string>();
        Assert.Equal("echo-" + hash, rs["metadata"]!["name"]!.GetValue<string>());
        Assert.Equal(hash, rs["spec"]!["selector"]!["matchLabels"]!["pod-template-hash"]!.GetValue<string>());
        Assert.Equal("1", rs["metadata"]!["annotations"]!["deployment.kubernetes.io/revision"]!.GetValue<string>());
        Assert.Equal(deployment["metadata"]!["uid"]!.GetValue<string>(), rs["metadata"]!["ownerReferences"]![0]!["uid"]!.GetValue<string>());

        var pods = Cluster.Pods("default", "app=echo");
        Assert.Equal(2, pods.Count);
        foreach (var pod in pods)
        {
            Assert.Matches($"^echo-{hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}$", pod["metadata"]!["name"]!.GetValue<string>());
            Assert.Equal(hash, pod["metadata"]!["labels"]!["pod-template-hash"]!.GetValue<string>());
            var owner = pod["metadata"]!["ownerReferences"]![0]!;
            Assert.Equal("ReplicaSet", owner["kind"]!.GetValue<string>());
            Assert.True(owner["controller"]!.GetValue<bool>());
            var status = pod["status"]!;
            Assert.Equal("Running", status["phase"]!.GetValue<string>());
            var ip = status["podIP"]!.GetValue<string>();
            Assert.Equal(Cluster.Node.GetPod("default/" + pod["metadata"]!["name"])!.Ip, ip);
            Assert.Equal(ip, status["podIPs"]![0]!["ip"]!.GetValue<string>());
            Assert.NotNull(status["startTime"]);
            Assert.Equal(SimCluster.NodeHostIp, status["hostIP"]!.GetValue<string>());
            Assert.Equal(["ContainersReady", "Initialized", "PodScheduled", "Ready"],
                status["conditions"]!.AsArray().Where(c => c!["status"]!.GetValue<string>() == "True").Select(c => c!["type"]!.GetValue<string>()).Order());
            Assert.NotNull(status["containerStatuses"]![0]!["state"]!["running"]);
            Assert.True(status["containerStatuses"]![0]!["ready"]!.GetValue<bool>());
        }

        var ds = deployment["status"]!;
        Assert.Equal(2, ds["replicas"]!.GetValue<int>());
        Assert.Equal(2, ds["updatedReplicas"]!.GetValue<int>());
        Assert.Equal(2, ds["readyReplicas"]!.GetValue<int>());
        Assert.Equal(2, ds["availableReplicas"]!.GetValue<int>());
        Assert.Equal(deployment["metadata"]!["generation"]!.GetValue<long>(), ds["observedGeneration"]!.GetValue<long>());
        Assert.Contains(ds["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == "Available" && c["status"]!.GetValue<string>() == "True");
        Assert.Contains(ds["conditions"]!.AsArray(), c => c!["type"]!.GetValue<string>() == "Progressing" && c["reason"]!.GetValue<string>() == "NewReplicaSetAvailable");

        var ips = pods.Select(p => p["status"]!["podIP"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToArray();
        var endpoints = Cluster.Store.Get(ResourceTypes.Endpoints, "default", "echo")!;
        Assert.Equal(ips, endpoints["subsets"]![0]!["addresses"]!.AsArray().Select(a => a!["ip"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.Equal(8080, endpoints["subsets"]![0]!["ports"]![0]!["port"]!.GetValue<int>());
        var slice = Assert.Single(Cluster.Store.List(ResourceTypes.EndpointSlices, "default", LabelSelector.Parse("kubernetes.io/service-name=echo")).Items);
        Assert.Equal("IPv4", slice["addressType"]!.GetValue<string>());
        Assert.Equal(ips, slice["endpoints"]!.AsArray().Select(e => e!["addresses"]![0]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.All(slice["endpoints"]!.AsArray(), e => Assert.True(e!["conditions"]!["ready"]!.GetValue<bool>()));

        var node = Assert.Single(Cluster.Store.List(ResourceTypes.Nodes, null).Items);
        Assert.Equal(Cluster.Node.Options.NodePodCidr, node["spec"]!["podCIDR"]!.GetValue<string>());
        Assert.All(pods, p => Assert.StartsWith("10.244.0.", p["status"]!["podIP"]!.GetValue<string>(), StringComparison.Ordinal));
        var dns = Cluster.Store.Get(ResourceTypes.Services, "kube-system", "kube-dns")!;
        Assert.Equal(Cluster.Node.ClusterDnsIp, dns["spec"]!["clusterIP"]!.GetValue<string>());
        Assert.Contains(Cluster.Node.Services, s => s.Name == "kube-dns" && s.ClusterIp == Cluster.Node.ClusterDnsIp);
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_pod_whose_process_exits_is_reported_and_leaves_the_endpoints_and_a_deleted_pod_is_stopped()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"crash"}}""");
        Cluster.Apply(SimClusterFixture.Deployment("crash", "app", 1, "ktconnect/echo:1.0", 8080));
        Cluster.Apply(SimClusterFixture.Service("crash", "app", "app=app", 80, 8080));
        await fx.WaitDeploymentReadyAsync("crash", "app", 1);
        await fx.WaitEndpointsAsync("crash", "app", 1);
        var name = Cluster.Pods("crash").Single()["metadata"]!["name"]!.GetValue<string>();

        Cluster.Node.SignalPod("crash/" + name, 9);

        var pod = await Cluster.WaitForAsync(ResourceTypes.Pods, "crash", name, p =>
            p?["status"]?["containerStatuses"]?[0]?["state"]?["waiting"]?["reason"]?.GetValue<string>() == "CrashLoopBackOff");
        Assert.NotNull(pod!["status"]!["containerStatuses"]![0]!["lastState"]!["terminated"]);
        Assert.False(SimClusterFixture.IsReady(pod));
        await fx.WaitEndpointsAsync("crash", "app", 0);

        // Deleting the crashed pod: the ReplicaSet replaces it, and the new one runs and serves.
        var oldNetNs = Cluster.Node.GetPod("crash/" + name)!.NetNsName;
        Cluster.Store.Delete(ResourceTypes.Pods, "crash", name);
        await Cluster.WaitUntilAsync(() => !File.Exists("/var/run/netns/" + oldNetNs), "the deleted pod's namespace to go");
        await fx.WaitDeploymentReadyAsync("crash", "app", 1);
        await fx.WaitEndpointsAsync("crash", "app", 1);
        Assert.NotEqual(name, Cluster.Pods("crash").Single()["metadata"]!["name"]!.GetValue<string>());

        Cluster.Store.Delete(ResourceTypes.Namespaces, null, "crash");
        await Cluster.WaitUntilAsync(() => !Cluster.Node.Pods.Any(p => p.Key.StartsWith("crash/", StringComparison.Ordinal)), "the crash pods to stop");
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl", "dig")]
    public async Task A_headless_service_resolves_to_the_ready_pod_ips_and_kube_dns_to_its_cluster_ip()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"echo-headless","namespace":"default"},"spec":{"clusterIP":"None","selector":{"app":"echo"},"ports":[{"name":"http","port":8080}]}}""");
        try
        {
            await fx.WaitEndpointsAsync("default", "echo-headless", 2);
            var ips = Cluster.Pods("default", "app=echo").Select(p => p["status"]!["podIP"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToArray();

            var headless = await Cluster.RunInPodAsync("default", fx.ClientPod, ["dig", "+short", "+time=2", "+tries=2", "echo-headless.default.svc.cluster.local"]);
            var dns = await Cluster.RunInPodAsync("default", fx.ClientPod, ["dig", "+short", "+time=2", "+tries=2", "kube-dns.kube-system.svc.cluster.local"]);

            Assert.Equal(ips, headless.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
            Assert.Equal(Cluster.Node.ClusterDnsIp, dns.StandardOutput.Trim());
        }
        finally
        {
            Cluster.Store.Delete(ResourceTypes.Services, "default", "echo-headless");
        }
        await Cluster.WaitUntilAsync(() => Cluster.Store.Get(ResourceTypes.Endpoints, "default", "echo-headless") is null
            && Cluster.Node.Services.All(s => s.Name != "echo-headless"), "the headless service to go from the node");
        Cluster.ThrowIfFailed();
    }

    private async Task<string> WriteCaAsync()
    {
        var path = Path.Combine(fx.KeyDirectory, "ca.crt");
        await File.WriteAllTextAsync(path, Cluster.Server.CaCertificatePem);
        return path;
    }
}
