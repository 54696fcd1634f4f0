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
    private static readonly object Gate = new();
    private static (DateTime At, string Key, string[] Names) s_cache = (DateTime.MinValue, "", []);

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

    private static string[] ClusterNamespaces(string? kubeconfig, string? context)
    {
        var key = kubeconfig + "|" + context;
        lock (Gate)
        {
            if (s_cache.Key == key && DateTime.UtcNow - s_cache.At < TimeSpan.FromMinutes(1)) return s_cache.Names;
        }
        string[] names;
        try
        {
            using var client = new KubeClient(new KubeConfigLoader().CreateClientConfiguration(kubeconfig, context));
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var list = Task.Run(() => client.Namespaces.ListAsync(cancellationToken: cts.Token), cts.Token);
            names = list.Wait(TimeSpan.FromSeconds(2)) ? list.Result.Items.Select(n => n.Metadata.Name ?? "").Where(n => n.Length > 0).ToArray() : [];
        }
        catch (Exception e) when (e is KtConnect.Engine.KtException or AggregateException or OperationCanceledException)
        {
            names = [];
        }
        lock (Gate) s_cache = (DateTime.UtcNow, key, names);
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
