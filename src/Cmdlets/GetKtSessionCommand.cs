using System.Management.Automation;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Lists the KtConnect sessions of this process.</summary>
[Cmdlet(VerbsCommon.Get, "KtSession", DefaultParameterSetName = FilterSet)]
[OutputType(typeof(KtSession))]
public sealed class GetKtSessionCommand : KtCmdlet
{
    private const string FilterSet = "Filter";
    private const string IdSet = "Id";

    [Parameter(ParameterSetName = IdSet, Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(SessionIdCompleter))]
    [ValidateRange(1, int.MaxValue)]
    public int[] Id { get; set; } = [];

    [Parameter(ParameterSetName = FilterSet)]
    public KtSessionKind[]? Kind { get; set; }

    [Parameter(ParameterSetName = FilterSet, Position = 0)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Namespace { get; set; }

    /// <summary>Only sessions in these states; naming Stopped or Failed lists ended sessions too.</summary>
    [Parameter(ParameterSetName = FilterSet)]
    public KtSessionState[]? State { get; set; }

    /// <summary>Also list sessions that have ended (Stopped, or Failed including failed starts), like Get-Job keeps finished jobs.</summary>
    [Parameter(ParameterSetName = FilterSet)]
    public SwitchParameter IncludeEnded { get; set; }

    protected override void ProcessRecord()
    {
        switch (ParameterSetName)
        {
            case IdSet:
                foreach (var id in Id)
                {
                    var s = SessionRegistry.Default.Get(id);
                    if (s is null) WriteKtError(SessionErrors.NotFound(id), id);
                    else WriteObject(new KtSession(s.Snapshot()));
                }
                break;
            default:
                var patterns = Namespace?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
                foreach (var s in SessionRegistry.Default.List().Select(x => new KtSession(x.Snapshot())))
                {
                    if (Kind is not null && !Kind.Contains(s.Kind)) continue;
                    if (State is not null ? !State.Contains(s.State) : !IncludeEnded && s.State is KtSessionState.Stopped or KtSessionState.Failed) continue;
                    if (patterns is not null && !patterns.Any(p => p.IsMatch(s.Namespace))) continue;
                    WriteObject(s);
                }
                break;
        }
    }
}
