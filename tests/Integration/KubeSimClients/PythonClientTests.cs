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
        try { Directory.Delete(_home, recursive: true); } catch (IOException) { }
    }

    [PythonKubernetesFact("sshd", "dnsmasq", "nginx", "nft")]
    public async Task Lists_creates_without_kind_watches_and_deletes()
    {
        var python = FindPython() ?? throw new InvalidOperationException("no python3 with the kubernetes module");
        var kubeconfig = fx.Cluster.WriteKubeconfig(Path.Combine(_home, "config"));

        var r = await ProcessRunner.RunAsync(python, [Script(), kubeconfig, "default"], null, TimeSpan.FromMinutes(2),
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

    /// <summary>python_client.py beside this file in the repository (found by walking up from the test assembly).</summary>
    private static string Script()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var path = Path.Combine(dir.FullName, "tests", "Integration", "KubeSimClients", "python_client.py");
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException("tests/Integration/KubeSimClients/python_client.py not found above " + AppContext.BaseDirectory);
    }
}
