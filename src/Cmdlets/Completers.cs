using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Language;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Completes session ids from this process's registry (memory only, never the network).</summary>
public sealed class SessionIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        foreach (var s in SessionRegistry.Default.List())
        {
            var id = s.Id.ToString(CultureInfo.InvariantCulture);
            if (!id.StartsWith(wordToComplete ?? "", StringComparison.Ordinal)) continue;
            var snap = s.Snapshot();
            yield return new CompletionResult(id, id, CompletionResultType.ParameterValue, $"{snap.Kind} {snap.Namespace}/{snap.Target} ({snap.State})");
        }
    }
}
