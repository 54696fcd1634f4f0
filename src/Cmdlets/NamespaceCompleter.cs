using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>
/// Completes namespaces: those named in kubeconfig contexts at once, plus the cluster's own, asked with a
/// two-second limit and remembered for a minute so a slow cluster never blocks typing for long.
/// </summary>
public sealed class NamespaceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters) =>
        Completions.Matching(CompletionNames.Namespaces(Completions.Kubeconfig(fakeBoundParameters), fakeBoundParameters?["Context"] as string), wordToComplete);
}

/// <summary>Completes Service names in the namespace being typed (or the context's), from the cluster.</summary>
public sealed class ServiceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters) =>
        Completions.Matching(CompletionNames.Services(Completions.Kubeconfig(fakeBoundParameters), fakeBoundParameters?["Context"] as string,
            fakeBoundParameters?["Namespace"] as string), wordToComplete);
}

/// <summary>Completes kubeconfig context names (memory and local files only).</summary>
public sealed class ContextCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters) =>
        Completions.Matching(CompletionNames.Contexts(Completions.Kubeconfig(fakeBoundParameters)), wordToComplete);
}

internal static class Completions
{
    internal static IEnumerable<CompletionResult> Matching(IEnumerable<string> names, string? word) =>
        names.Where(n => n.StartsWith(word ?? "", StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n, n, CompletionResultType.ParameterValue, n)).ToList();

    // -Kubeconfig as typed: a relative path is taken from the process's directory, as kubectl would.
    internal static string? Kubeconfig(IDictionary? fakeBoundParameters) =>
        fakeBoundParameters?["Kubeconfig"] is string { Length: > 0 } path ? Path.GetFullPath(path) : null;
}
