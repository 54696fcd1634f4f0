using System.Management.Automation;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Stops sessions and undoes every change they made to the cluster and to this machine.</summary>
[Cmdlet(VerbsLifecycle.Stop, "KtSession", DefaultParameterSetName = InputObjectSet, SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class StopKtSessionCommand : KtCmdlet
{
    private const string InputObjectSet = "InputObject";
    private const string IdSet = "Id";

    [Parameter(ParameterSetName = InputObjectSet, Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public KtSession[] InputObject { get; set; } = [];

    [Parameter(ParameterSetName = IdSet, Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(SessionIdCompleter))]
    [ValidateRange(1, int.MaxValue)]
    public int[] Id { get; set; } = [];

    /// <summary>Write the stopped sessions to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var ids = ParameterSetName == IdSet ? Id : InputObject.Select(s => s.Id).ToArray();
        foreach (var id in ids)
        {
            var session = SessionRegistry.Default.Get(id);
            if (session is null)
            {
                WriteKtError(SessionErrors.NotFound(id), id);
                continue;
            }
            var snap = session.Snapshot();
            if (!ShouldProcess($"{snap.Kind} session {id} ({snap.Namespace}/{snap.Target})", "Stop and restore")) continue;
            Run((output, ct) => session.StopAsync(output, ct));
            session.DetachOutput();
            var stopped = new KtSession(session.Snapshot());
            if (stopped.LastErrorId == "SessionRestoreFailed") WriteWarning(stopped.LastError);
            if (PassThru) WriteObject(stopped);
        }
    }
}
