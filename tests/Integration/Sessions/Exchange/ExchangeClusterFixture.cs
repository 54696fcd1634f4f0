using System.Diagnostics;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Images;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.Sessions.Connect;
using KtConnect.Tests.Integration.KubeSim;

namespace KtConnect.Tests.Integration.Sessions.Exchange;

/// <summary>
/// A simulated cluster for Exchange and Preview: namespace `dev` with
/// - Deployment + Service `orders` (2 replicas; ports 80 → 8080 "http" and 81 → 8081 "admin") for selector mode,
/// - Deployment + Service `pay` (1 replica; 80 → 8080) for scale mode,
/// - Deployment `client` whose pod is where in-cluster requests come from (curl in its network namespace),
/// and `kt` run as a separate process in the laptop namespace, next to a local HTTP server that names itself "laptop".
/// </summary>
public sealed class ExchangeClusterFixture : IAsyncLifetime
{
    public const int LocalHttp = 18080;
    public const int LocalAdmin = 18081;

    private Process? _laptopServer;

    public SimCluster Cluster { get; private set; } = null!;

    public KtRunner Kt { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!SimNodeFixture.CanRun) return;
        Cluster = await SimCluster.StartAsync();
        try
        {
            Kt = new KtRunner(Cluster);
            Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dev"}}""");
            Cluster.Apply(Deployment("orders", 2, [("http", 8080), ("admin", 8081)]));
            Cluster.Apply(Service("orders", [("http", 80, 8080), ("admin", 81, 8081)]));
            Cluster.Apply(Deployment("pay", 1, [("http", 8080)]));
            Cluster.Apply(Service("pay", [("http", 80, 8080)]));
            Cluster.Apply(Deployment("client", 1, [("http", 8080)]));
            foreach (var (name, n) in new[] { ("orders", 2), ("pay", 1), ("client", 1) })
                await Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", name, d => (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == n);
            await WaitServedAsync("orders", 2);
            await WaitServedAsync("pay", 1);
            _laptopServer = StartLaptopServer(LocalHttp, LocalAdmin);
            await WaitLocalAsync(LocalHttp);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>An echo server in the laptop namespace, named "laptop", on the given ports; the laptop kills it on dispose.</summary>
    public Process StartLaptopServer(params int[] ports)
    {
        List<string> argv = [.. EchoLauncher.KubeSimCommand(), "echo", "--name", "laptop", "--namespace", "laptop"];
        foreach (var p in ports) argv.AddRange(["--port", p.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return Cluster.Laptop.Start(argv);
    }

    public Task WaitLocalAsync(int port) => Cluster.WaitUntilAsync(() =>
            Cluster.RunInLaptopAsync(["curl", "-sS", "--max-time", "5", $"http://127.0.0.1:{port}/"]).GetAwaiter().GetResult().ExitCode == 0,
        $"the laptop server on {port}");

    /// <summary>Waits until the node's Service rules send <paramref name="name"/> to <paramref name="count"/> endpoints.</summary>
    public Task WaitServedAsync(string name, int count) =>
        Cluster.WaitUntilAsync(() => Cluster.Node.Services.Any(s => s.Namespace == "dev" && s.Name == name && s.Endpoints.Count == count),
            $"the node to serve dev/{name} with {count} endpoints");

    public string ClusterIp(string service) => Cluster.Store.Get(ResourceTypes.Services, "dev", service)!["spec"]!["clusterIP"]!.GetValue<string>();

    public JsonObject? Service(string name) => Cluster.Store.Get(ResourceTypes.Services, "dev", name);

    public string ClientPod => Cluster.Pods("dev", "app=client").Single(SimClusterFixture.IsReady)["metadata"]!["name"]!.GetValue<string>();

    /// <summary>A request from inside the cluster: curl in the client pod's network namespace (its resolv.conf is the cluster DNS).</summary>
    public async Task<(int Code, string Body)> CurlFromClusterAsync(string url, string? header = null)
    {
        var r = await Cluster.RunInPodAsync("dev", ClientPod,
            header is null ? ["curl", "-sS", "--connect-timeout", "5", "--max-time", "15", url] : ["curl", "-sS", "--connect-timeout", "5", "--max-time", "15", "-H", header, url]);
        return (r.ExitCode, r.StandardOutput + r.StandardError);
    }

    /// <summary>Polls until a request from the cluster to <paramref name="url"/> answers with <paramref name="expected"/> in the body.</summary>
    public async Task<string> WaitAnswerAsync(string url, string expected, TimeSpan? timeout = null, string? header = null)
    {
        var last = "";
        await Cluster.WaitUntilAsync(() =>
        {
            var (code, body) = CurlFromClusterAsync(url, header).GetAwaiter().GetResult();
            last = body;
            return code == 0 && body.Contains(expected, StringComparison.Ordinal);
        }, $"{url} to answer with '{expected}' (last answer: {last})", timeout ?? TimeSpan.FromSeconds(60));
        return last;
    }

    /// <summary>Starts `kt args` in the laptop and waits until it says the session runs (or it exits).</summary>
    public async Task<KtProcess> StartKtAsync(params string[] args)
    {
        var p = new KtProcess(Kt.Start(args));
        await p.WaitForAsync("Press Ctrl+C", TimeSpan.FromMinutes(2));
        return p;
    }

    /// <summary>Services and Deployments without status and generation: what scale mode must give back (its pods are new ones).</summary>
    public string Workloads()
    {
        var snapshot = Cluster.Snapshot("dev");
        return string.Join('\n', snapshot.Objects
            .Where(kv => kv.Key.StartsWith("Service ", StringComparison.Ordinal) || kv.Key.StartsWith("Deployment ", StringComparison.Ordinal))
            .Select(kv =>
            {
                var o = (JsonObject)kv.Value.DeepClone();
                o.Remove("status");
                (o["metadata"] as JsonObject)?.Remove("generation");
                return kv.Key + " " + Sorted(o)!.ToJsonString();
            }));
    }

    /// <summary>Object keys in ordinal order, recursively: a server may store fields in another order than they were sent.</summary>
    private static JsonNode? Sorted(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sorted(p.Value)))),
        JsonArray a => new JsonArray([.. a.Select(Sorted)]),
        _ => node?.DeepClone(),
    };

    public static string Deployment(string name, int replicas, IReadOnlyList<(string Name, int Port)> ports) => new JsonObject
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "dev", ["labels"] = new JsonObject { ["app"] = name } },
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
                        ["image"] = "ktconnect/echo:1.0",
                        ["ports"] = new JsonArray([.. ports.Select(p => (JsonNode)new JsonObject { ["containerPort"] = p.Port, ["name"] = p.Name })]),
                    }),
                },
            },
        },
    }.ToJsonString();

    public static string Service(string name, IReadOnlyList<(string Name, int Port, int Target)> ports) => new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Service",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "dev" },
        ["spec"] = new JsonObject
        {
            ["selector"] = new JsonObject { ["app"] = name },
            ["ports"] = new JsonArray([.. ports.Select(p => (JsonNode)new JsonObject { ["name"] = p.Name, ["port"] = p.Port, ["targetPort"] = p.Target })]),
        },
    }.ToJsonString();

    public async Task DisposeAsync()
    {
        if (_laptopServer is not null) await KtRunner.KillAsync(_laptopServer);
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ExchangeClusterCollection : ICollectionFixture<ExchangeClusterFixture>
{
    public const string Name = "Exchange on KubeSim";
}
