using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Clean;

namespace KtConnect.Cmdlets;

/// <summary>
/// Restores a Service that an exchange changed, now (ktctl recover): selector from kt-selector, kt-lock removed, the
/// exchange shadows it selects deleted, a scale exchange's Deployment scaled back.
/// </summary>
[Cmdlet(VerbsData.Restore, "KtService", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(KtCleanupResult))]
public sealed class RestoreKtServiceCommand : KtKubeCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ServiceCompleter))]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(NamespaceCompleter))]
    [ValidatePattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    public string? Namespace { get; set; }

    protected override void ProcessRecord()
    {
        var options = new RecoverOptions
        {
            Kubeconfig = KubeconfigPath,
            Context = Context,
            Namespace = Namespace,
        };
        if (!TryRun((_, ct) => Recoverer.PlanAsync(options, Name, ct), Name, out var plan)) return;
        foreach (var w in plan.Warnings) WriteWarning(w);
        if (plan.Actions.Count == 0)
        {
            WriteNote($"Nothing to restore: Service {plan.Namespace}/{Name} carries no change of kt.");
            return;
        }
        var chosen = plan with { Actions = plan.Actions.Where(a => ShouldProcess(a.Description, $"Restore-KtService: {a.Description}?", "Restore-KtService")).ToList() };
        if (chosen.Actions.Count == 0) return;
        if (!TryRun((_, ct) => Recoverer.ExecuteAsync(options, chosen, ct), Name, out var outcomes)) return;
        foreach (var o in outcomes)
        {
            WriteObject(new KtCleanupResult(KtCleanupScope.Cluster, o.Action.Description, o.Done, o.Error));
            if (o.KeptBecause is { } why) WriteWarning($"Kept: {o.Action.Description}: {why}.");
            if (!o.Done && o.Error is not null)
                WriteKtError(new KtException("RestoreKtServiceFailed", KtErrorCategory.InvalidOperation, $"Could not {o.Action.Description}: {o.Error}",
                    target: o.Action.Name));
        }
    }
}
