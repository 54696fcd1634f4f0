namespace KtConnect.Engine.Sessions;

/// <summary>
/// The kind-specific part of a session (Connect, Exchange, …). The session owns lifecycle, state and
/// cleanup; the worker does the work and registers an undo for everything it changes.
/// </summary>
public interface ISessionWorker
{
    /// <summary>
    /// Brings the session up. Returns when it is usable (the session becomes Running). Every change made
    /// must be registered with <see cref="SessionContext.Defer(string, Func{CancellationToken, Task})"/> before or right after it is made, so that a
    /// failure halfway, a stop or a process exit undoes exactly what was done. Background loops started here
    /// must stop when <see cref="SessionContext.Stopping"/> is cancelled.
    /// </summary>
    Task StartAsync(SessionContext context, CancellationToken cancellationToken);
}
