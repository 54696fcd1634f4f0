using System.Management.Automation;

namespace KtConnect.Cmdlets;

/// <summary>Stops sessions and undoes every change they made to the cluster and to this machine.</summary>
[Cmdlet(VerbsLifecycle.Stop, "KtSession", DefaultParameterSetName = InputObjectSet, SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class StopKtSessionCommand : KtSessionTargetCmdlet
{
    /// <summary>Write the stopped sessions to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var session in SelectedSessions())
        {
            var snap = session.Snapshot();
            if (!ShouldProcess($"{snap.Kind} session {session.Id} ({snap.Namespace}/{snap.Target})", "Stop and restore")) continue;
            // Ctrl+C returns at once, and the stop goes on in the background without waiting for pods (scale mode), as a
            // second Ctrl+C does in kt: what is undone is done, only the wait for the workload to be ready is skipped.
            Run(async (output, ct) =>
            {
                try
                {
                    await session.StopAsync(output, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    session.MarkExiting();
                    throw;
                }
            });
            session.DetachOutput();
            var stopped = new KtSession(session.Snapshot());
            if (stopped.LastErrorId == "SessionRestoreFailed") WriteWarning(stopped.LastError);
            if (PassThru) WriteObject(stopped);
        }
    }
}
