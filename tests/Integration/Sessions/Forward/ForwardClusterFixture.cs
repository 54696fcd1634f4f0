using System.Text.RegularExpressions;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.Sessions.Connect;
using KtConnect.Tests.Integration.KubeSim;

namespace KtConnect.Tests.Integration.Sessions.Forward;

/// <summary>
/// A simulated cluster for Forward, Clean and Recover: namespace `dev` with Deployment `orders` (2 replicas, an echo
/// server that names its pod, container port "http" 8080) behind Service `orders` (80 → named target port "http"),
/// and `kt` run as separate processes in the laptop namespace (they share one HOME, so one journal, like one user).
/// </summary>
public sealed partial class ForwardClusterFixture : IAsyncLifetime
{
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
            Cluster.Apply(SimClusterFixture.Deployment("dev", "orders", 2, "ktconnect/echo:1.0", 8080));
            Cluster.Apply("""
                {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"dev"},
                 "spec":{"selector":{"app":"orders"},"ports":[{"name":"http","port":80,"targetPort":"http"}]}}
                """);
            await WaitForOrdersAsync();
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits until `orders` has two ready replicas again (after a test deleted one).</summary>
    public Task WaitForOrdersAsync() =>
        Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "orders", d => (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 2);

    /// <summary>The kt objects (label control-by=kt) of a namespace, by kind/name.</summary>
    public IReadOnlyList<string> KtObjects(string ns = "dev") =>
        Cluster.Snapshot(ns).Objects.Where(o => o.Value["metadata"]?["labels"]?["control-by"]?.GetValue<string>() == "kt")
            .Select(o => o.Key).Order(StringComparer.Ordinal).ToList();

    public async Task<KtProcess> StartKtAsync(params string[] args)
    {
        var p = new KtProcess(Kt.Start(args));
        await p.WaitForAsync("Press Ctrl+C", TimeSpan.FromMinutes(2));
        return p;
    }

    /// <summary>curl in the laptop; the echo server's answer names the pod ("pod: orders-…").</summary>
    public async Task<(int Code, string Output, string? Pod)> CurlInLaptopAsync(params string[] args)
    {
        var r = await Cluster.RunInLaptopAsync(["curl", "-sS", "--connect-timeout", "5", "--max-time", "20", .. args]);
        var output = r.StandardOutput + r.StandardError;
        var pod = PodLine().Match(output);
        return (r.ExitCode, output, pod.Success ? pod.Groups[1].Value : null);
    }

    [GeneratedRegex(@"^pod: (\S+)$", RegexOptions.Multiline)]
    private static partial Regex PodLine();

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ForwardClusterCollection : ICollectionFixture<ForwardClusterFixture>
{
    public const string Name = "Forward, clean and recover on KubeSim";
}
