using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Kube.Config;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Clean;

/// <summary>What `kt clean` and Clear-KtResource are asked to do.</summary>
public sealed record CleanOptions
{
    public string? Kubeconfig { get; init; }

    public string? Context { get; init; }

    /// <summary>The namespace to clean; null means the context's namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>
    /// How long without a heartbeat (in cluster time) makes a kt object stale (ktctl's --thresholdInMinus). An object whose
    /// owner is alive is kept whatever this says (<see cref="Liveness"/>): zero means every stale object, not every object.
    /// </summary>
    public TimeSpan Threshold { get; init; } = KtConventions.DefaultStaleThreshold;

    /// <summary>Also undo this machine's journal of local changes (routes, DNS, firewall) whose owner is gone.</summary>
    public bool IncludeLocal { get; init; } = true;

    /// <summary>Only undo this machine's journal of local changes; do not contact the cluster.</summary>
    public bool LocalOnly { get; init; }

    /// <summary>Say what would be done, do nothing.</summary>
    public bool DryRun { get; init; }

    public ChangeJournal? Journal { get; init; }

    /// <summary>Where the kubeconfig is read from (tests give their own).</summary>
    public KubeConfigLoader? Loader { get; init; }
}

/// <summary>
/// What a clean would do, in the order it does it: this machine's orphaned local changes, this machine's orphaned
/// cluster changes in the namespace (journal), then the namespace's stale kt objects (heartbeat).
/// </summary>
public sealed record CleanPlan(IReadOnlyList<JournalEntry> Local, IReadOnlyList<JournalEntry> Cluster, CleanupPlan? Stale)
{
    /// <summary>Every step's description (what -WhatIf and --dryRun print).</summary>
    public IEnumerable<string> Descriptions =>
        Local.Select(e => e.Description).Concat(Cluster.Select(e => e.Description)).Concat(Stale?.Actions.Select(a => a.Description) ?? []);

    /// <summary>The same plan with only the steps <paramref name="keep"/> accepts (ShouldProcess on the pipeline thread).</summary>
    public CleanPlan Where(Func<string, bool> keep)
    {
        ArgumentNullException.ThrowIfNull(keep);
        return new CleanPlan(Local.Where(e => keep(e.Description)).ToList(), Cluster.Where(e => keep(e.Description)).ToList(),
            Stale is null ? null : Stale with { Actions = Stale.Actions.Where(a => keep(a.Description)).ToList() });
    }
}

/// <summary>What a clean found and did. With a dry run, <see cref="Local"/> and <see cref="Cluster"/> are what it would undo.</summary>
public sealed record CleanReport(IReadOnlyList<JournalEntry> Local, IReadOnlyList<JournalEntry> Cluster, CleanupPlan? Plan,
    IReadOnlyList<CleanupOutcome> Outcomes)
{
    public bool HasFailures => Outcomes.Any(o => !o.Done && o.Error is not null);
}

/// <summary>
/// Undoes what crashed sessions left: this machine's journaled changes whose owner process is gone (local ones, then
/// the cluster ones of this server and namespace), then the namespace's kt objects whose heartbeat is older than the
/// threshold (selectors and replicas restored before anything is deleted). Live sessions' objects are never touched,
/// whatever the threshold: those a live process of this machine journalled, and those no journal here knows whose
/// heartbeat is younger than <see cref="Liveness.Floor"/>; each one the threshold alone would have taken is said as a
/// "kept: ..." warning.
/// </summary>
public static class Cleaner
{
    public static async Task<CleanReport> RunAsync(CleanOptions options, IKtOutput? output = null, Func<string, bool>? shouldProcess = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var plan = await PlanAsync(options, output, cancellationToken).ConfigureAwait(false);
        if (options.DryRun) return new CleanReport(plan.Local, plan.Cluster, plan.Stale, []);
        if (shouldProcess is not null) plan = plan.Where(shouldProcess);
        return await ExecuteAsync(options, plan, output, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Finds what would be undone; changes nothing.</summary>
    public static async Task<CleanPlan> PlanAsync(CleanOptions options, IKtOutput? output = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        output ??= NullOutput.Instance;
        var journal = options.Journal ?? new ChangeJournal();
        IReadOnlyList<JournalEntry> local = options.IncludeLocal || options.LocalOnly ? LocalRecovery.Pending(journal) : [];
        if (options.LocalOnly) return new CleanPlan(local, [], null);
        using var client = ClusterSessions.Connect(options.Loader, options.Kubeconfig, options.Context, options.Namespace, out var ns);
        var cluster = ClusterRecovery.Pending(journal, client.Configuration.Server, ns);
        var stale = await new StaleResources(client, journal).PlanAsync(ns, options.Threshold, cancellationToken).ConfigureAwait(false);
        foreach (var w in stale.Warnings) output.Warning(w);
        foreach (var k in stale.Kept) output.Warning(k);
        return new CleanPlan(local, cluster, WithoutJournalled(stale, cluster));
    }

    /// <summary>
    /// The stale plan without the steps the journal's entries already take (a crashed session of this machine is found
    /// both ways once its heartbeat is old), so each step is proposed, confirmed and printed by -WhatIf once.
    /// </summary>
    internal static CleanupPlan WithoutJournalled(CleanupPlan stale, IReadOnlyList<JournalEntry> cluster)
    {
        var journalled = cluster.Select(ClusterChange.FromEntry).OfType<ClusterChange>()
            .Select(c => (Step(c.Change, c.ObjectKind), c.Namespace, c.Name)).ToHashSet();
        return stale with { Actions = stale.Actions.Where(a => !journalled.Contains((a.Kind, a.Namespace, a.Name))).ToList() };
    }

    private static CleanupActionKind? Step(ClusterChangeKind change, KtObjectKind kind) => (change, kind) switch
    {
        (ClusterChangeKind.SelectorChanged, _) => CleanupActionKind.RestoreServiceSelector,
        (ClusterChangeKind.Scaled, _) => CleanupActionKind.ScaleDeployment,
        (ClusterChangeKind.Locked, _) => CleanupActionKind.UnlockService,
        (ClusterChangeKind.Created, KtObjectKind.Pod) => CleanupActionKind.DeletePod,
        (ClusterChangeKind.Created, KtObjectKind.Deployment) => CleanupActionKind.DeleteDeployment,
        (ClusterChangeKind.Created, KtObjectKind.Service) => CleanupActionKind.DeleteService,
        (ClusterChangeKind.Created, KtObjectKind.ConfigMap) => CleanupActionKind.DeleteConfigMap,
        _ => null,
    };

    /// <summary>Does exactly the steps of <paramref name="plan"/> (steps that vanished meanwhile are skipped).</summary>
    public static async Task<CleanReport> ExecuteAsync(CleanOptions options, CleanPlan plan, IKtOutput? output = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(plan);
        output ??= NullOutput.Instance;
        var journal = options.Journal ?? new ChangeJournal();
        var localIds = plan.Local.Select(e => e.Id).ToHashSet(StringComparer.Ordinal);
        var local = localIds.Count == 0
            ? []
            : await LocalRecovery.UndoAsync(journal, shouldProcess: e => localIds.Contains(e.Id), output: output, cancellationToken: cancellationToken)
                .ConfigureAwait(false);
        if (options.LocalOnly || (plan.Cluster.Count == 0 && (plan.Stale?.Actions.Count ?? 0) == 0))
            return new CleanReport(local, [], plan.Stale, []);

        using var client = ClusterSessions.Connect(options.Loader, options.Kubeconfig, options.Context, options.Namespace, out var ns);
        // The plan may have waited for confirmation (Clear-KtResource -Confirm): what is no longer stale now, because its
        // owner came back (a laptop woke up, a link reconnected) or it is gone, is left out.
        var stalePlan = plan.Stale is { Actions.Count: > 0 } planned
            ? await StillStaleAsync(new StaleResources(client, journal), planned, output, cancellationToken).ConfigureAwait(false)
            : plan.Stale;
        var clusterIds = plan.Cluster.Select(e => e.Id).ToHashSet(StringComparer.Ordinal);
        var cluster = clusterIds.Count == 0
            ? []
            : await ClusterRecovery.UndoOrphanedAsync(journal, client, ns, output, e => clusterIds.Contains(e.Id), cancellationToken).ConfigureAwait(false);
        IReadOnlyList<CleanupOutcome> outcomes = stalePlan is { Actions.Count: > 0 } stale
            ? await new StaleResources(client, journal).ExecuteAsync(stale, null, cancellationToken).ConfigureAwait(false)
            : [];
        return new CleanReport(local, cluster, plan.Stale, outcomes);
    }

    /// <summary><paramref name="plan"/> with only the actions a plan made now (same threshold) still has.</summary>
    private static async Task<CleanupPlan> StillStaleAsync(StaleResources stale, CleanupPlan plan, IKtOutput output, CancellationToken ct)
    {
        var now = await stale.PlanAsync(plan.Namespace, plan.Threshold, ct).ConfigureAwait(false);
        var still = now.Actions.Select(a => (a.Kind, a.Namespace, a.Name)).ToHashSet();
        var keep = new List<CleanupAction>();
        foreach (var a in plan.Actions)
        {
            if (still.Contains((a.Kind, a.Namespace, a.Name))) keep.Add(a);
            else output.Warning($"not done: {a.Description}: no longer stale (its owner is alive again, or it is gone).");
        }
        return plan with { Actions = keep };
    }
}
