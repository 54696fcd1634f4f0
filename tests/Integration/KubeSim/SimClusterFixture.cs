using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>
/// One simulated cluster shared by the end-to-end tests: Deployment + Service `echo` (2 replicas, 80 → 8080),
/// Deployment `client` (1 replica), and a kt-connect shadow pod with its public key from a ConfigMap; all ready.
/// </summary>
public sealed class SimClusterFixture : IAsyncLifetime
{
    public const string ShadowPod = "kt-connect-shadow-smoke";
    public const string ShadowImage = "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow:v0.3.7";

    public SimCluster Cluster { get; private set; } = null!;

    public string KeyDirectory { get; } = Path.Combine(Path.GetTempPath(), "ktsim-test-key-" + Guid.NewGuid().ToString("N")[..8]);

    public string PrivateKeyPath => Path.Combine(KeyDirectory, "id_ed25519");

    public async Task InitializeAsync()
    {
        if (!SimNodeFixture.CanRun) return;
        Cluster = await SimCluster.StartAsync();
        try
        {
            Directory.CreateDirectory(KeyDirectory);
            (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-N", "", "-t", "ed25519", "-f", PrivateKeyPath])).EnsureSuccess();
            var publicKey = await File.ReadAllTextAsync(PrivateKeyPath + ".pub");

            Cluster.Apply(Deployment("default", "echo", 2, "ktconnect/echo:1.0", 8080));
            Cluster.Apply(Service("default", "echo", "app=echo", 80, 8080));
            Cluster.Apply(Deployment("default", "client", 1, "busybox:1.36", 80));
            Cluster.Apply(new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "ConfigMap",
                ["metadata"] = new JsonObject { ["name"] = ShadowPod, ["namespace"] = "default" },
                ["data"] = new JsonObject { ["authorized"] = publicKey },
            }.ToJsonString());
            Cluster.Apply(new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Pod",
                ["metadata"] = new JsonObject
                {
                    ["name"] = ShadowPod,
                    ["namespace"] = "default",
                    ["labels"] = new JsonObject { ["kt"] = ShadowPod, ["kt-component"] = "connect" },
                },
                ["spec"] = new JsonObject
                {
                    ["containers"] = new JsonArray(new JsonObject
                    {
                        ["name"] = "standalone",
                        ["image"] = ShadowImage,
                        ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = 22 }),
                        ["volumeMounts"] = new JsonArray(new JsonObject { ["name"] = "ssh-public-key", ["mountPath"] = "/root/authorized" }),
                    }),
                    ["volumes"] = new JsonArray(new JsonObject
                    {
                        ["name"] = "ssh-public-key",
                        ["configMap"] = new JsonObject { ["name"] = ShadowPod, ["items"] = new JsonArray(new JsonObject { ["key"] = "authorized", ["path"] = "authorized" }) },
                    }),
                },
            }.ToJsonString());
            await WaitDeploymentReadyAsync("default", "echo", 2);
            await WaitDeploymentReadyAsync("default", "client", 1);
            await Cluster.WaitForAsync(ResourceTypes.Pods, "default", ShadowPod, IsReady);
            await WaitEndpointsAsync("default", "echo", 2);
        }
        catch
        {
            // xunit does not dispose a fixture whose initialisation failed: leave nothing behind.
            await DisposeAsync();
            throw;
        }
    }

    public static bool IsReady(JsonObject? pod) =>
        (pod?["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>()
            .Any(c => c["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True");

    public Task WaitDeploymentReadyAsync(string ns, string name, int replicas) =>
        Cluster.WaitForAsync(ResourceTypes.Deployments, ns, name, d =>
            (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == replicas && (d?["status"]?["replicas"]?.GetValue<int>() ?? 0) == replicas
            && d?["status"]?["observedGeneration"]?.GetValue<long>() == d?["metadata"]?["generation"]?.GetValue<long>());

    /// <summary>Waits until the Service's ready addresses number <paramref name="count"/> and the node serves them.</summary>
    public async Task WaitEndpointsAsync(string ns, string name, int count)
    {
        await Cluster.WaitForAsync(ResourceTypes.Endpoints, ns, name, e =>
            (e?["subsets"] as JsonArray ?? []).OfType<JsonObject>().Sum(s => (s["addresses"] as JsonArray)?.Count ?? 0) == count);
        await Cluster.WaitUntilAsync(() => Cluster.Node.Services.Any(s => s.Namespace == ns && s.Name == name && s.Endpoints.Count == count),
            $"the node to serve {ns}/{name} with {count} endpoints");
    }

    public string ClientPod => Cluster.Pods("default", "app=client").Single(p => IsReady(p))["metadata"]!["name"]!.GetValue<string>();

    /// <summary>curl from the client pod; returns (exit code, output).</summary>
    public async Task<(int Code, string Body)> CurlFromClientAsync(params string[] args)
    {
        var r = await Cluster.RunInPodAsync("default", ClientPod, ["curl", "-sS", "--connect-timeout", "5", "--max-time", "15", .. args]);
        return (r.ExitCode, r.StandardOutput + r.StandardError);
    }

    public static string Deployment(string ns, string name, int replicas, string image, int port) => new JsonObject
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns, ["labels"] = new JsonObject { ["app"] = name } },
        ["spec"] = new JsonObject
        {
            ["replicas"] = replicas,
            ["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["app"] = name } },
            ["template"] = new JsonObject
            {
                ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["app"] = name } },
                ["spec"] = new JsonObject
                {
                    ["containers"] = new JsonArray(new JsonObject
                    {
                        ["name"] = name,
                        ["image"] = image,
                        ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = port, ["name"] = "http" }),
                    }),
                },
            },
        },
    }.ToJsonString();

    public static string Service(string ns, string name, string selector, int port, int targetPort) => new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Service",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns },
        ["spec"] = new JsonObject
        {
            ["selector"] = new JsonObject { [selector.Split('=')[0]] = selector.Split('=')[1] },
            ["ports"] = new JsonArray(new JsonObject { ["name"] = "http", ["port"] = port, ["targetPort"] = targetPort }),
        },
    }.ToJsonString();

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
        try { Directory.Delete(KeyDirectory, recursive: true); } catch (IOException) { }
    }
}

// Not in parallel with other collections: other tests compare global lists (`ip netns list`, root links) before and after.
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SimClusterCollection : ICollectionFixture<SimClusterFixture>
{
    public const string Name = "KubeSim cluster";
}
