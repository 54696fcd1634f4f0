using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Clean;

/// <summary>Where `kt recover` / Restore-KtService work.</summary>
public sealed record RecoverOptions
{
    public string? Kubeconfig { get; init; }

    public string? Context { get; init; }

    /// <summary>Null means the context's namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>Where the kubeconfig is read from (tests give their own).</summary>
    public KubeConfigLoader? Loader { get; init; }

    /// <summary>This machine's journal, for which objects live local sessions own (default: the user's journal).</summary>
    public IChangeJournal? Journal { get; init; }
}

/// <summary>`kt recover` / Restore-KtService: <see cref="ServiceRecovery"/> on the cluster the options name.</summary>
public static class Recoverer
{
    /// <summary>Connects with <paramref name="options"/> and plans (see <see cref="ServiceRecovery.PlanAsync(Kube.KubeClient, string, string, IChangeJournal?, CancellationToken)"/>).</summary>
    public static async Task<CleanupPlan> PlanAsync(RecoverOptions options, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var client = ClusterSessions.Connect(options.Loader, options.Kubeconfig, options.Context, options.Namespace, out var ns);
        return await ServiceRecovery.PlanAsync(client, ns, name, options.Journal, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Connects with <paramref name="options"/> and applies the plan (see <see cref="ServiceRecovery.ExecuteAsync"/>).</summary>
    public static async Task<IReadOnlyList<CleanupOutcome>> ExecuteAsync(RecoverOptions options, CleanupPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Actions.Count == 0) return [];
        using var client = ClusterSessions.Connect(options.Loader, options.Kubeconfig, options.Context, options.Namespace, out _);
        return await ServiceRecovery.ExecuteAsync(client, plan, options.Journal, cancellationToken).ConfigureAwait(false);
    }
}
