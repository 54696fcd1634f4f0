using KtConnect.Engine;
using KtConnect.Engine.Sessions.Clean;

namespace KtConnect.Cli;

/// <summary>`kt clean`: what crashed sessions left on this machine and in the namespace (ktctl clean's flags).</summary>
internal static class CleanVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags =
    [
        new("thresholdInMinus", null, true, "Minutes without a heartbeat before a kt object counts as left behind", "5"),
        new("dryRun", null, false, "Only print what would be restored and deleted"),
        new("localOnly", null, false, "Only undo this machine's routes, DNS and firewall changes"),
    ];

    internal static readonly Verb Verb = new("clean", "Undo what crashed sessions left on this machine and in the namespace", Flags, RunAsync);

    private static async Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        CleanOptions options;
        try
        {
            if (a.Positional.Count > 0) throw ParsedArgs.Usage($"clean takes no arguments, not '{a.Positional[0]}'");
            options = new CleanOptions
            {
                Kubeconfig = a.Get("kubeconfig"),
                Context = a.Get("context"),
                Namespace = a.Get("namespace"),
                Threshold = TimeSpan.FromMinutes(a.Int("thresholdInMinus", 5)),
                DryRun = a.Flag("dryRun"),
                LocalOnly = a.Flag("localOnly"),
            };
        }
        catch (KtException e)
        {
            await stderr.WriteLineAsync($"kt: {e.Message} ({e.ErrorId})").ConfigureAwait(false);
            return 2;
        }
        try
        {
            var report = await Cleaner.RunAsync(options, new ConsoleOutput(stderr, a.Flag("debug"))).ConfigureAwait(false);
            var verb = options.DryRun ? "would undo" : "undone";
            foreach (var e in report.Local) await stdout.WriteLineAsync($"local: {verb} {e.Description}").ConfigureAwait(false);
            foreach (var e in report.Cluster) await stdout.WriteLineAsync($"journal: {verb} {e.Description}").ConfigureAwait(false);
            if (report.Plan is { } plan)
            {
                foreach (var action in plan.Actions)
                {
                    var outcome = report.Outcomes.FirstOrDefault(o => o.Action == action);
                    var state = options.DryRun ? "would" : outcome is { Done: true } ? "done:" : outcome?.Error is { } err ? $"FAILED ({err}):"
                        : outcome?.KeptBecause is { } why ? $"kept ({why}):" : "skipped:";
                    await stdout.WriteLineAsync($"cluster: {state} {action.Description}").ConfigureAwait(false);
                }
                if (plan.Actions.Count == 0 && report.Cluster.Count == 0)
                    await stdout.WriteLineAsync($"cluster: nothing left behind in namespace {plan.Namespace}").ConfigureAwait(false);
            }
            return report.HasFailures ? 1 : 0;
        }
        catch (KtException e)
        {
            await stderr.WriteLineAsync($"kt: {e.Message} ({e.ErrorId})").ConfigureAwait(false);
            return 1;
        }
    }
}
