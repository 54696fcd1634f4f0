using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Clean;

namespace KtConnect.Cmdlets;

/// <summary>Where a cleanup step applied.</summary>
public enum KtCleanupScope
{
    /// <summary>This machine (routes, DNS, firewall) from the local journal.</summary>
    Local,

    /// <summary>A cluster object a crashed KtConnect process on this machine changed, from the local journal.</summary>
    Journal,

    /// <summary>A cluster object found stale by its heartbeat, or a Service being recovered.</summary>
    Cluster,
}

/// <summary>One step Clear-KtResource or Restore-KtService took.</summary>
public sealed class KtCleanupResult
{
    internal KtCleanupResult(KtCleanupScope scope, string description, bool done, string? error)
    {
        Scope = scope;
        Description = description;
        Done = done;
        Error = error;
    }

    public KtCleanupScope Scope { get; }

    /// <summary>What was done, as -WhatIf prints it.</summary>
    public string Description { get; }

    public bool Done { get; }

    public string? Error { get; }

    public override string ToString() => Description;
}

/// <summary>
/// Undoes what crashed sessions left: this machine's journalled cluster changes in the namespace, the namespace's kt
/// objects whose heartbeat is older than the threshold, and with -Local this machine's routes, DNS and firewall changes.
/// Live sessions' objects are never touched.
/// </summary>
[Cmdlet(VerbsCommon.Clear, "KtResource", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(KtCleanupResult))]
public sealed class ClearKtResourceCommand : KtKubeCmdlet
{
    [Parameter]
    [ArgumentCompleter(typeof(NamespaceCompleter))]
    [ValidatePattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    public string? Namespace { get; set; }

    /// <summary>Minutes without a heartbeat before a kt object counts as left behind (ktctl's --thresholdInMinus); 0: every stale one.</summary>
    [Parameter]
    [ValidateRange(0, 525600)]
    public int ThresholdMinutes { get; set; } = 5;

    /// <summary>Also undo this machine's routes, DNS and firewall changes left by crashed processes.</summary>
    [Parameter]
    public SwitchParameter Local { get; set; }

    /// <summary>Only undo this machine's changes; do not contact the cluster.</summary>
    [Parameter]
    public SwitchParameter LocalOnly { get; set; }

    protected override void EndProcessing()
    {
        var options = new CleanOptions
        {
            Kubeconfig = KubeconfigPath,
            Context = Context,
            Namespace = Namespace,
            Threshold = TimeSpan.FromMinutes(ThresholdMinutes),
            IncludeLocal = Local || LocalOnly,
            LocalOnly = LocalOnly,
        };
        CleanPlan plan;
        try
        {
            plan = Run((output, ct) => Cleaner.PlanAsync(options, output, ct));
        }
        catch (KtException e)
        {
            ThrowKtError(e);
            return;
        }
        // ShouldProcess on the pipeline thread, step by step, before anything is changed.
        var accepted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in plan.Descriptions.Distinct(StringComparer.Ordinal))
        {
            if (ShouldProcess(d, $"Clear-KtResource: {d}?", "Clear-KtResource")) accepted.Add(d);
        }
        var chosen = plan.Where(accepted.Contains);
        if (!chosen.Descriptions.Any())
        {
            if (!plan.Descriptions.Any())
                WriteNote(LocalOnly ? "Nothing to clean: no change of a crashed session is left on this machine."
                    : $"Nothing to clean{(plan.Stale is { } stale ? $" in namespace '{stale.Namespace}'" : "")}: no crashed session left anything behind.");
            base.EndProcessing();
            return;
        }
        CleanReport report;
        try
        {
            report = Run((output, ct) => Cleaner.ExecuteAsync(options, chosen, output, ct));
        }
        catch (KtException e)
        {
            ThrowKtError(e);
            return;
        }
        foreach (var e in report.Local) WriteObject(new KtCleanupResult(KtCleanupScope.Local, e.Description, true, null));
        foreach (var e in report.Cluster) WriteObject(new KtCleanupResult(KtCleanupScope.Journal, e.Description, true, null));
        foreach (var o in report.Outcomes)
        {
            WriteObject(new KtCleanupResult(KtCleanupScope.Cluster, o.Action.Description, o.Done, o.Error));
            if (o.KeptBecause is { } why) WriteWarning($"Kept: {o.Action.Description}: {why}.");
            if (!o.Done && o.Error is not null)
                WriteKtError(new KtException("ClearKtResourceFailed", KtErrorCategory.InvalidOperation, $"Could not {o.Action.Description}: {o.Error}",
                    target: o.Action.Name));
        }
        base.EndProcessing();
    }
}
