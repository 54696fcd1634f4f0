using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using KtConnect.Engine.Sessions;

namespace KtConnect.Engine.Cluster;

/// <summary>What `kt clean` and Clear-KtResource are asked to do.</summary>
public sealed record CleanOptions
{
    public string? Kubeconfig { get; init; }

    public string? Context { get; init; }

    /// <summary>The namespace to clean; null means the context's namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>How long without a heartbeat (in cluster time) makes a kt object stale (ktctl's --thresholdInMinus).</summary>
    public TimeSpan Threshold { get; init; } = KtConventions.DefaultStaleThreshold;

    /// <summary>Only undo this machine's journal of local changes; do not contact the cluster.</summary>
    public bool LocalOnly { get; init; }

    /// <summary>Say what would be done, do nothing.</summary>
    public bool DryRun { get; init; }

    public ChangeJournal? Journal { get; init; }
}

/// <summary>What a clean found and did.</summary>
public sealed record CleanReport(IReadOnlyList<JournalEntry> Local, CleanupPlan? Plan, IReadOnlyList<CleanupOutcome> Outcomes)
{
    public bool HasFailures => Outcomes.Any(o => !o.Done && o.Error is not null);
}

/// <summary>
/// Undoes what crashed sessions left: this machine's journaled changes whose owner process is gone, then the
/// namespace's kt objects whose heartbeat is older than the threshold (selectors and replicas restored before
/// anything is deleted; live sessions' objects, with fresh heartbeats, are never touched).
/// </summary>
public static class Cleaner
{
    public static async Task<CleanReport> RunAsync(CleanOptions options, IKtOutput? output = null, Func<string, bool>? shouldProcess = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        output ??= NullOutput.Instance;
        var journal = options.Journal ?? new ChangeJournal();
        IReadOnlyList<JournalEntry> local;
        if (options.DryRun)
        {
            local = LocalRecovery.Pending(journal);
        }
        else
        {
            local = await LocalRecovery.UndoAsync(journal, shouldProcess: e => shouldProcess?.Invoke(e.Description) ?? true, output: output,
                cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        if (options.LocalOnly) return new CleanReport(local, null, []);

        var config = new KubeConfigLoader().CreateClientConfiguration(options.Kubeconfig, options.Context);
        var ns = string.IsNullOrEmpty(options.Namespace) ? config.Namespace : options.Namespace;
        using var client = new KubeClient(config);
        var stale = new StaleResources(client);
        var plan = await stale.PlanAsync(ns, options.Threshold, cancellationToken).ConfigureAwait(false);
        foreach (var w in plan.Warnings) output.Warning(w);
        if (options.DryRun) return new CleanReport(local, plan, []);
        var outcomes = await stale.ExecuteAsync(plan, a => shouldProcess?.Invoke(a.Description) ?? true, cancellationToken).ConfigureAwait(false);
        return new CleanReport(local, plan, outcomes);
    }
}
