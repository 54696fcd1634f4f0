using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>Pods created through the API: exec through the API server, environment and volumes from ConfigMaps and Secrets, kt in the laptop.</summary>
[Collection(SimClusterCollection.Name)]
public sealed class SimClusterPodTests(SimClusterFixture fx)
{
    private SimCluster Cluster => fx.Cluster;

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Exec_through_the_api_server_runs_in_the_pod_with_its_resolver_and_reports_the_exit_code()
    {
        var pod = Cluster.Pods("default", "app=echo")[0]["metadata"]!["name"]!.GetValue<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var resolv = await Cluster.ExecThroughApiAsync("default", pod, ["cat", "/etc/resolv.conf"], cts.Token);
        var failing = await Cluster.ExecThroughApiAsync("default", pod, ["sh", "-c", "echo oops >&2; exit 3"], cts.Token);

        Assert.Contains("nameserver " + Cluster.Node.ClusterDnsIp, resolv.Stdout, StringComparison.Ordinal);
        Assert.Contains("search default.svc.cluster.local svc.cluster.local cluster.local", resolv.Stdout, StringComparison.Ordinal);
        Assert.Contains("\"status\":\"Success\"", resolv.Status, StringComparison.Ordinal);
        Assert.Equal("oops\n", failing.Stderr);
        Assert.Contains("\"reason\":\"ExitCode\",\"message\":\"3\"", failing.Status, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Pod_logs_through_the_api_server_are_the_container_output_on_the_node()
    {
        var pod = Cluster.Pods("default", "app=echo")[0]["metadata"]!["name"]!.GetValue<string>();
        using var http = Cluster.CreateHttpClient();

        var log = await http.GetStringAsync($"api/v1/namespaces/default/pods/{pod}/log");

        Assert.Contains($"echo default/{pod} listening on", log, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Env_and_volumes_come_from_configmaps_and_secrets_and_a_missing_configmap_holds_the_pod_until_it_exists()
    {
        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"cfg"}}""");
        Cluster.Apply("""{"apiVersion":"v1","kind":"Secret","metadata":{"name":"creds","namespace":"cfg"},"data":{"token":"czNjcjN0"}}""");
        Cluster.Apply("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","namespace":"cfg"},"spec":{"containers":[{"name":"c","image":"busybox:1.36",
             "env":[{"name":"FROM_CM","valueFrom":{"configMapKeyRef":{"name":"settings","key":"mode"}}},{"name":"PLAIN","value":"p"},
                    {"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
             "volumeMounts":[{"name":"s","mountPath":"/var/run/creds"},{"name":"c","mountPath":"/srv/config"}]}],
             "volumes":[{"name":"s","secret":{"secretName":"creds"}},{"name":"c","configMap":{"name":"settings","items":[{"key":"mode","path":"mode.txt"}]}}]}}
            """);
        try
        {
            await Cluster.WaitUntilAsync(() =>
                Cluster.Store.List(ResourceTypes.Events, "cfg").Items.Any(e => e["reason"]!.GetValue<string>() == "FailedMount"), "a FailedMount event");
            Assert.Equal("Pending", Cluster.Store.Get(ResourceTypes.Pods, "cfg", "app")!["status"]!["phase"]!.GetValue<string>());
            Assert.Null(Cluster.Node.GetPod("cfg/app"));

            Cluster.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","namespace":"cfg"},"data":{"mode":"fast"}}""");
            await Cluster.WaitForAsync(ResourceTypes.Pods, "cfg", "app", SimClusterFixture.IsReady);

            var env = await Cluster.RunInPodAsync("cfg", "app", ["sh", "-c", "echo $FROM_CM/$PLAIN/$POD_NAME"]);
            Assert.Equal("fast/p/app\n", env.StandardOutput);
            Assert.Equal("s3cr3t", await File.ReadAllTextAsync(Cluster.Node.HostPath("cfg/app", "/var/run/creds/token")));
            Assert.Equal("fast", await File.ReadAllTextAsync(Cluster.Node.HostPath("cfg/app", "/srv/config/mode.txt")));
        }
        finally
        {
            Cluster.Store.Delete(ResourceTypes.Namespaces, null, "cfg");
        }
        await Cluster.WaitUntilAsync(() => Cluster.Node.GetPod("cfg/app") is null, "the pod to stop");
        Cluster.ThrowIfFailed();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Kt_runs_in_the_laptop_with_a_kubeconfig_for_the_laptop_reachable_api_server()
    {
        if (KtRunner.FindKtDll() is null) Assert.Fail("kt.dll not found: build src/Cli (dotnet build KtConnect.slnx) or set KTCONNECT_KT_DLL");
        var kt = new KtRunner(Cluster);
        try
        {
            var version = await kt.RunAsync(["--version"]);
            Assert.True(version.Succeeded, version.StandardError);
            Assert.Matches(@"^\d+\.\d+\.\d+", version.StandardOutput.Trim());
            Assert.Contains("server: " + Cluster.ServerUrl, await File.ReadAllTextAsync(kt.Kubeconfig), StringComparison.Ordinal);

            // A long-running process in the laptop, ended by SIGKILL.
            var sleeper = Cluster.Laptop.Start(["sleep", "300"]);
            await KtRunner.KillAsync(sleeper);
            Assert.Equal(137, sleeper.ExitCode);
        }
        finally
        {
            Directory.Delete(kt.Home, recursive: true);
        }
    }
}
