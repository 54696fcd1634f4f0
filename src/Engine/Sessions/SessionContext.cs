namespace KtConnect.Engine.Sessions;

/// <summary>What a <see cref="ISessionWorker"/> sees of its session: where to report, and how to register undo.</summary>
public sealed class SessionContext
{
    private readonly Session _session;
    private readonly UndoScope? _scope;

    internal SessionContext(Session session, UndoScope? scope = null)
    {
        _session = session;
        _scope = scope;
    }

    /// <summary>
    /// The same session, but undo steps go to <paramref name="scope"/> (undone when the scope is, or by whoever owns it)
    /// and link events go through the scope's handlers.
    /// </summary>
    public SessionContext WithScope(UndoScope scope) => new(_session, scope ?? throw new ArgumentNullException(nameof(scope)));

    public int SessionId => _session.Id;

    public Guid InstanceId => _session.InstanceId;

    /// <summary>The session id to give the journal for this session's changes.</summary>
    public string JournalId => _session.JournalId;

    public SessionRequest Request => _session.Request;

    public IKtOutput Output => _session.Output;

    /// <summary>Cancelled when the session stops: background loops end on it.</summary>
    public CancellationToken Stopping => _session.Stopping;

    /// <summary>
    /// Cancelled when the process exits (or the module is removed, or `kt` gets SIGTERM or a second Ctrl+C): the undo
    /// then has only a few seconds, so a step that would only wait (for pods to be ready) stops waiting and leaves the
    /// time to the steps that undo.
    /// </summary>
    public CancellationToken Exiting => _session.Exiting;

    /// <summary>
    /// Registers how to undo a change. Undo runs last-registered first, on stop, on a failed start and at
    /// process exit, each with its own timeout (60 s); it must be idempotent.
    /// </summary>
    public void Defer(string description, Func<CancellationToken, Task> undo) => Defer(description, undo, null);

    /// <summary>As <see cref="Defer(string, Func{CancellationToken, Task})"/>, for a step that may take <paramref name="timeout"/>.</summary>
    public void Defer(string description, Func<CancellationToken, Task> undo, TimeSpan? timeout)
    {
        if (_scope is not null) _scope.Defer(description, undo, timeout);
        else _session.Defer(description, undo, timeout);
    }

    public void AddResource(string kind, string name, string action) => _session.AddResource(new SessionResource(kind, name, action));

    /// <summary>An object the session no longer holds (e.g. a lost shadow, replaced).</summary>
    public void RemoveResource(string kind, string name) => _session.RemoveResource(kind, name);

    public void AddLocalPort(string port) => _session.AddLocalPort(port);

    /// <summary>One port of the target and what happens to it (see <see cref="SessionSnapshot.Ports"/>).</summary>
    public void AddPort(string port) => _session.AddPort(port);

    public void AddRoute(string route) => _session.AddRoute(route);

    public void AddDnsSuffix(string suffix) => _session.AddDnsSuffix(suffix);

    public void SetMesh(string header, string version) => _session.SetMesh(header, version);

    public void SetMode(string mode) => _session.SetMode(mode);

    /// <summary>The link dropped; the session shows Reconnecting until <see cref="ReportRecovered"/>.</summary>
    public void ReportReconnecting(Exception cause)
    {
        if (_scope?.OnReconnecting is { } handler) handler(cause);
        else _session.ReportReconnecting(cause);
    }

    public void ReportRecovered()
    {
        if (_scope?.OnRecovered is { } handler) handler();
        else _session.ReportRecovered();
    }

    /// <summary>A failure the session cannot survive: it is stopped, undone, and ends Failed.</summary>
    public void Fail(Exception cause)
    {
        if (_scope?.OnFail is { } handler) handler(cause);
        else _session.Fail(cause);
    }

    /// <summary>The session's own state (Running, Reconnecting, …).</summary>
    public SessionState State => _session.State;
}
