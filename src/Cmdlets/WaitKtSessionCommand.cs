using System.Management.Automation;
using KtConnect.Engine.Sessions;
using EngineState = KtConnect.Engine.Sessions.SessionState;

namespace KtConnect.Cmdlets;

/// <summary>Waits until sessions stop (or reach another state), like Wait-Job.</summary>
[Cmdlet(VerbsLifecycle.Wait, "KtSession", DefaultParameterSetName = InputObjectSet)]
[OutputType(typeof(KtSession))]
public sealed class WaitKtSessionCommand : KtSessionTargetCmdlet
{
    private readonly List<Session> _sessions = [];

    /// <summary>The state to wait for; by default the session has finished (Stopped or Failed).</summary>
    [Parameter]
    public KtSessionState? State { get; set; }

    /// <summary>Return as soon as one session reaches the state.</summary>
    [Parameter]
    public SwitchParameter Any { get; set; }

    /// <summary>Seconds to wait; -1 (the default) waits without limit.</summary>
    [Parameter]
    [ValidateRange(-1, int.MaxValue)]
    public int Timeout { get; set; } = -1;

    protected override void ProcessRecord()
    {
        _sessions.AddRange(SelectedSessions());
    }

    protected override void EndProcessing()
    {
        Func<EngineState, bool> reached = State is { } target
            ? s => s.ToString() == target.ToString()
            : SessionWaiter.IsFinished;
        TimeSpan? timeout = Timeout < 0 ? null : TimeSpan.FromSeconds(Timeout);
        var done = Run((_, ct) => SessionWaiter.WaitAsync(_sessions, reached, Any, timeout, ct));
        foreach (var s in done) WriteObject(new KtSession(s.Snapshot()));
        base.EndProcessing();
    }
}
