namespace KtConnect.Engine.Sessions;

/// <summary>
/// The kind-specific part of a session (Connect, Exchange, …). The session owns lifecycle, state and
/// cleanup; the worker does the work and registers an undo for everything it changes.
/// </summary>
public interface ISessionWorker
{
    /// <summary>
    /// Brings the session up. Returns when it is usable (the session becomes Running). Every change made
    /// must be registered with <see cref="SessionContext.Defer"/> before or right after it is made, so that a
    /// failure halfway, a stop or a process exit undoes exactly what was done. Background loops started here
    /// must stop when <see cref="SessionContext.Stopping"/> is cancelled.
    /// </summary>
    Task StartAsync(SessionContext context, CancellationToken cancellationToken);
}

/// <summary>Receives progress and messages from engine work, from any thread (see <see cref="OutputQueue"/>).</summary>
public interface IKtOutput
{
    void Verbose(string message);

    void Warning(string message);

    void Debug(string message);

    /// <summary>Progress of a long wait; <paramref name="percent"/> is -1 when unknown; completed ends the bar.</summary>
    void Progress(string activity, string status, int percent = -1, bool completed = false);
}

/// <summary>Discards everything.</summary>
public sealed class NullOutput : IKtOutput
{
    public static NullOutput Instance { get; } = new();

    public void Verbose(string message) { }

    public void Warning(string message) { }

    public void Debug(string message) { }

    public void Progress(string activity, string status, int percent = -1, bool completed = false) { }
}
