using KtConnect.Engine;
using KtConnect.Engine.Sessions.Clean;

namespace KtConnect.Cli;

/// <summary>`kt recover &lt;service&gt;`: restore a Service an exchange changed, now (ktctl recover; no own flags).</summary>
internal static class RecoverVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags = [];

    internal static readonly Verb Verb = new("recover", "Restore a Service changed by exchange or mesh, now: recover <service>", Flags, RunAsync);

    private static async Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        if (a.Positional.Count != 1 || string.IsNullOrWhiteSpace(a.Positional[0]))
        {
            await stderr.WriteLineAsync("kt: recover takes exactly one Service name: kt recover <service> (InvalidCommandLine)").ConfigureAwait(false);
            return 2;
        }
        var options = new RecoverOptions { Kubeconfig = a.Get("kubeconfig"), Context = a.Get("context"), Namespace = a.Get("namespace") };
        try
        {
            var plan = await Recoverer.PlanAsync(options, a.Positional[0]).ConfigureAwait(false);
            foreach (var w in plan.Warnings) await stderr.WriteLineAsync("warning: " + w).ConfigureAwait(false);
            if (plan.Actions.Count == 0)
            {
                await stdout.WriteLineAsync($"Service {plan.Namespace}/{a.Positional[0]} carries no change of kt; nothing to recover.").ConfigureAwait(false);
                return 0;
            }
            var outcomes = await Recoverer.ExecuteAsync(options, plan).ConfigureAwait(false);
            foreach (var o in outcomes)
                await stdout.WriteLineAsync(o.Done ? $"done: {o.Action.Description}"
                    : o.KeptBecause is { } why ? $"kept ({why}): {o.Action.Description}" : $"FAILED ({o.Error}): {o.Action.Description}").ConfigureAwait(false);
            return outcomes.All(o => o.Done || o.KeptBecause is not null) ? 0 : 1;
        }
        catch (KtException e)
        {
            await stderr.WriteLineAsync($"kt: {e.Message} ({e.ErrorId})").ConfigureAwait(false);
            return 1;
        }
    }
}
