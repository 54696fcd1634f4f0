using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.KubeSim;

namespace KtConnect.Tests.Integration.KubeSimClients;

/// <summary>A fact that needs what <see cref="LinuxRootFactAttribute"/> needs plus a python3 that imports the official client.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class PythonKubernetesFactAttribute : FactAttribute
{
    public PythonKubernetesFactAttribute(params string[] programs)
    {
        var missing = LinuxRootFactAttribute.Missing(programs)
            ?? (PythonClientTests.FindPython() is null ? "needs python3 with the kubernetes module (python3-kubernetes; bash .ci/install-deps installs it)" : null);
        if (missing is not null && Environment.GetEnvironmentVariable("KTCONNECT_REQUIRE_INTEGRATION") != "1") Skip = missing;
    }
}

/// <summary>The official Python client (Debian's python3-kubernetes) against the simulated cluster: python_client.py.</summary>
[Collection(SimClusterCollection.Name)]
public sealed class PythonClientTests(SimClusterFixture fx) : IDisposable
{
    private readonly string _home = Directory.CreateTempSubdirectory("kubesim-python-").FullName;

    public void Dispose()
    {
        if (fx.Cluster?.Store.Get(ResourceTypes.Namespaces, null, AttachNamespace) is not null)
        {
            try
            {
                fx.Cluster.Store.Delete(ResourceTypes.Namespaces, null, AttachNamespace);
            }
            catch (KubeApiException)
            {
                // Deleted meanwhile.
            }
        }
        try { Directory.Delete(_home, recursive: true); } catch (IOException) { }
    }

    private const string AttachNamespace = "py-attach";

    [PythonKubernetesFact("sshd", "dnsmasq", "nginx", "nft")]
    public async Task Attaches_over_websocket_to_the_main_process_and_feeds_its_stdin()
    {
        var python = FindPython() ?? throw new InvalidOperationException("no python3 with the kubernetes module");
        var kubeconfig = fx.Cluster.WriteKubeconfig(Path.Combine(_home, "config"));
        fx.Cluster.Apply($$$"""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"{{{AttachNamespace}}}"}}""");
        fx.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"echoer","namespace":"{{{AttachNamespace}}}"},"spec":{"containers":[{"name":"c",
             "image":"busybox:1.36","stdin":true,"command":["sh","-c","echo started >&2; while read l; do echo \"got $l\"; done"]}]}}
            """);
        await fx.Cluster.WaitForAsync(ResourceTypes.Pods, AttachNamespace, "echoer", p => p?["status"]?["containerStatuses"]?[0]?["state"]?["running"] is not null);

        var r = await ProcessRunner.RunAsync(python, [Script("python_attach.py"), kubeconfig, AttachNamespace, "echoer"], null, TimeSpan.FromMinutes(2),
            new Dictionary<string, string?> { ["HOME"] = _home });

        Assert.True(r.Succeeded, r.StandardError);
        var found = JsonNode.Parse(r.StandardOutput.Trim().Split('\n')[^1])!;
        Assert.Equal("got from python\n", found["stdout"]!.GetValue<string>());
        Assert.Equal("", found["stderr"]!.GetValue<string>()); // "started" was printed before attaching: no history
        Assert.True(found["open_before_close"]!.GetValue<bool>());
        Assert.Contains("404", found["missing"]!.GetValue<string>(), StringComparison.Ordinal);
        // The client's close detached it; the main process still runs and has its stdin.
        Assert.NotNull(fx.Cluster.Node.GetPod(AttachNamespace + "/echoer"));
        Assert.Contains("got from python", File.ReadAllText(fx.Cluster.Node.LogPath(AttachNamespace + "/echoer")), StringComparison.Ordinal);
    }

    [PythonKubernetesFact("sshd", "dnsmasq", "nginx", "nft")]
    public async Task Lists_creates_without_kind_watches_and_deletes()
    {
        var python = FindPython() ?? throw new InvalidOperationException("no python3 with the kubernetes module");
        var kubeconfig = fx.Cluster.WriteKubeconfig(Path.Combine(_home, "config"));

        var r = await ProcessRunner.RunAsync(python, [Script("python_client.py"), kubeconfig, "default"], null, TimeSpan.FromMinutes(2),
            new Dictionary<string, string?> { ["HOME"] = _home });

        Assert.True(r.Succeeded, r.StandardError);
        var found = JsonNode.Parse(r.StandardOutput.Trim().Split('\n')[^1])!;
        var pods = fx.Cluster.Store.List(ResourceTypes.Pods, "default").Items.Select(p => p["metadata"]!["name"]!.GetValue<string>()).Order();
        Assert.Equal(pods, found["pods"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Contains("Running", found["pod_phases"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal("ConfigMap", found["created_kind"]!.GetValue<string>());
        Assert.Equal("v", found["created_data"]!["k"]!.GetValue<string>());
        Assert.Equal(["ADDED", "py-cm"], found["watched"]!.AsArray()[^1]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal("Success", found["delete_status"]!.GetValue<string>());
        Assert.Equal(404, found["after_delete"]!.GetValue<int>());
        Assert.Null(fx.Cluster.Store.Get(ResourceTypes.ConfigMaps, "default", "py-cm"));
    }

    /// <summary>The first of python3 on PATH and /usr/bin/python3 (Debian's, where python3-kubernetes installs) that imports kubernetes.</summary>
    internal static string? FindPython()
    {
        foreach (var candidate in new[] { "python3", "/usr/bin/python3" })
        {
            if (!ProcessRunner.IsOnPath(candidate)) continue;
            try
            {
                var r = ProcessRunner.RunAsync(candidate, ["-c", "import kubernetes"], null, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                if (r.Succeeded) return candidate;
            }
            catch (Exception e) when (e is KtException or System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                // Not runnable: try the next one.
            }
        }
        return null;
    }

    /// <summary>A script beside this file in the repository (found by walking up from the test assembly).</summary>
    private static string Script(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "tests", "Integration", "KubeSimClients", name);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException($"tests/Integration/KubeSimClients/{name} not found above " + AppContext.BaseDirectory);
    }
}
