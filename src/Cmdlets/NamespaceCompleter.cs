using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;

namespace KtConnect.Cmdlets;

/// <summary>
/// Completes namespaces: those named in kubeconfig contexts at once, plus the cluster's own, asked with a
/// two-second limit and remembered for a minute so a slow cluster never blocks typing for long.
/// </summary>
public sealed class NamespaceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var context = fakeBoundParameters?["Context"] as string;
        var kubeconfig = fakeBoundParameters?["Kubeconfig"] as string;
        var config = new KubeConfigLoader().TryLoad(kubeconfig);
        var names = new SortedSet<string>(config?.Namespaces ?? [], StringComparer.Ordinal);
        foreach (var n in ClusterNamespaces(kubeconfig, context)) names.Add(n);
        foreach (var n in names)
        {
            if (n.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
                yield return new CompletionResult(n, n, CompletionResultType.ParameterValue, n);
        }
    }

    private static string[] ClusterNamespaces(string? kubeconfig, string? context) =>
        ClusterNames.Get("namespaces", kubeconfig, context, null,
            (client, _, ct) => client.Namespaces.ListAsync(cancellationToken: ct).ContinueWith(t => t.Result.Items.Select(n => n.Metadata.Name), ct,
                TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default));
}

/// <summary>Completes Service names in the namespace being typed (or the context's), from the cluster.</summary>
public sealed class ServiceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var names = ClusterNames.Get("services", fakeBoundParameters?["Kubeconfig"] as string, fakeBoundParameters?["Context"] as string,
            fakeBoundParameters?["Namespace"] as string,
            (client, ns, ct) => client.Services.ListAsync(ns, cancellationToken: ct).ContinueWith(t => t.Result.Items.Select(s => s.Metadata.Name), ct,
                TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default));
        foreach (var n in names.Order(StringComparer.Ordinal))
        {
            if (n.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
                yield return new CompletionResult(n, n, CompletionResultType.ParameterValue, n);
        }
    }
}

/// <summary>
/// Names read from the cluster for completion: asked with a two-second limit and remembered for a minute per
/// kubeconfig, context, namespace and kind, so a slow or unreachable cluster never blocks typing for long.
/// </summary>
internal static class ClusterNames
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, (DateTime At, string[] Names)> Cache = new(StringComparer.Ordinal);

    internal static string[] Get(string kind, string? kubeconfig, string? context, string? ns,
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
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var task = Task.Run(() => list(client, string.IsNullOrEmpty(ns) ? config.Namespace : ns, cts.Token), cts.Token);
            names = task.Wait(TimeSpan.FromSeconds(2)) ? task.Result.OfType<string>().Where(n => n.Length > 0).ToArray() : [];
        }
        catch (Exception e) when (e is KtConnect.Engine.KtException or AggregateException or OperationCanceledException)
        {
            names = [];
        }
        lock (Gate) Cache[key] = (DateTime.UtcNow, names);
        return names;
    }
}

/// <summary>Completes kubeconfig context names (memory and local files only).</summary>
public sealed class ContextCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var config = new KubeConfigLoader().TryLoad(fakeBoundParameters?["Kubeconfig"] as string);
        foreach (var name in config?.ContextNames ?? [])
        {
            if (name.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase))
                yield return new CompletionResult(name, name, CompletionResultType.ParameterValue, name);
        }
    }
}
