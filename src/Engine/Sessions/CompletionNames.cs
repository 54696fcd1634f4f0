using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions;

/// <summary>
/// Names read from the cluster for tab completion: asked with a short limit and remembered for a minute per
/// kubeconfig, context, namespace and kind, so a slow or unreachable cluster never blocks typing for long. Never
/// throws: a cluster that cannot answer completes nothing.
/// </summary>
public static class CompletionNames
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, (DateTime At, string[] Names)> Cache = new(StringComparer.Ordinal);

    public static TimeSpan Limit { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The namespaces the kubeconfig's contexts name, then the cluster's own.</summary>
    public static IReadOnlyList<string> Namespaces(string? kubeconfig, string? context)
    {
        var names = new SortedSet<string>(new KubeConfigLoader().TryLoad(kubeconfig)?.Namespaces ?? [], StringComparer.Ordinal);
        names.UnionWith(Get("namespaces", kubeconfig, context, null,
            async (client, _, ct) => (await client.Namespaces.ListAsync(cancellationToken: ct).ConfigureAwait(false)).Items.Select(n => n.Metadata.Name)));
        return [.. names];
    }

    /// <summary>The Services of a namespace (the context's when none is given).</summary>
    public static IReadOnlyList<string> Services(string? kubeconfig, string? context, string? ns) =>
        [.. Get("services", kubeconfig, context, ns,
            async (client, n, ct) => (await client.Services.ListAsync(n, cancellationToken: ct).ConfigureAwait(false)).Items.Select(s => s.Metadata.Name))
            .Order(StringComparer.Ordinal)];

    /// <summary>The kubeconfig's context names (local files only).</summary>
    public static IReadOnlyList<string> Contexts(string? kubeconfig) => [.. new KubeConfigLoader().TryLoad(kubeconfig)?.ContextNames ?? []];

    private static string[] Get(string kind, string? kubeconfig, string? context, string? ns,
        Func<KubeClient, string, CancellationToken, Task<IEnumerable<string?>>> list)
    {
        var key = string.Join("|", kind, kubeconfig, context, ns);
        lock (Gate)
        {
            if (Cache.TryGetValue(key, out var hit) && DateTime.UtcNow - hit.At < TimeSpan.FromMinutes(1)) return hit.Names;
        }
        string[] names;
        try
        {
            var config = new KubeConfigLoader().CreateClientConfiguration(kubeconfig, context);
            using var client = new KubeClient(config);
            using var cts = new CancellationTokenSource(Limit);
            var task = Task.Run(() => list(client, string.IsNullOrEmpty(ns) ? config.Namespace : ns, cts.Token), cts.Token);
            names = task.Wait(Limit) ? task.Result.OfType<string>().Where(n => n.Length > 0).ToArray() : [];
        }
        catch (Exception e) when (e is KtException or AggregateException or OperationCanceledException or IOException)
        {
            names = [];
        }
        lock (Gate) Cache[key] = (DateTime.UtcNow, names);
        return names;
    }
}
