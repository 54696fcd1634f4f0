using System.Management.Automation;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Cmdlets that take sessions from the pipeline (<c>KtSession[] InputObject</c>) or by <c>-Id</c>.</summary>
public abstract class KtSessionTargetCmdlet : KtCmdlet
{
    protected const string InputObjectSet = "InputObject";
    protected const string IdSet = "Id";

    [Parameter(ParameterSetName = InputObjectSet, Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNull]
    public KtSession[] InputObject { get; set; } = [];

    [Parameter(ParameterSetName = IdSet, Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(SessionIdCompleter))]
    [ValidateRange(1, int.MaxValue)]
    public int[] Id { get; set; } = [];

    /// <summary>The sessions this record names, in order; an unknown id is written as a <c>SessionNotFound</c> error and skipped.</summary>
    protected IEnumerable<Session> SelectedSessions()
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
            yield return session;
        }
    }
}
