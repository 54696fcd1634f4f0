using System.Collections.Concurrent;

namespace KtConnect.Engine.Sessions;

/// <summary>
/// The sessions of this process. <see cref="Default"/> is what the cmdlets and `kt` use; tests make their
/// own. At process exit every live session is stopped and undone (bounded by <see cref="ExitTimeout"/>).
/// </summary>
public sealed class SessionRegistry
{
    private static readonly Lazy<SessionRegistry> LazyDefault = new(() =>
    {
        var r = new SessionRegistry();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => r.StopAll();
        return r;
    });

    private readonly ConcurrentDictionary<int, Session> _sessions = new();
    private int _nextId;

    public static SessionRegistry Default => LazyDefault.Value;

    public TimeSpan ExitTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Raised for every state change of every session in this registry.</summary>
    public event EventHandler<SessionStateChangedEventArgs>? SessionStateChanged;

    /// <summary>
    /// Starts a session and returns it once Running. If the start fails or is cancelled, what was done is
    /// undone, the session stays in the registry as Failed (so its error can be read), and the exception
    /// propagates.
    /// </summary>
    public async Task<Session> StartAsync(SessionRequest request, ISessionWorker worker, IKtOutput? output = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(worker);
        var session = new Session(Interlocked.Increment(ref _nextId), request, output ?? NullOutput.Instance);
        session.StateChanged += (_, e) => Session.RaiseEach(SessionStateChanged, this, e, session.Output);
        _sessions[session.Id] = session;
        await session.StartAsync(worker, cancellationToken).ConfigureAwait(false);
        return session;
    }

    public IReadOnlyList<Session> List() => _sessions.Values.OrderBy(s => s.Id).ToList();

    public Session? Get(int id) => _sessions.GetValueOrDefault(id);

    public Session? Get(Guid instanceId) => _sessions.Values.FirstOrDefault(s => s.InstanceId == instanceId);

    /// <summary>Forgets finished sessions (they stay listed until removed, like jobs).</summary>
    public int RemoveFinished()
    {
        var n = 0;
        foreach (var s in _sessions.Values)
        {
            if (s.State is SessionState.Stopped or SessionState.Failed && _sessions.TryRemove(s.Id, out _)) n++;
        }
        return n;
    }

    /// <summary>Stops every session concurrently and waits for all of them.</summary>
    public Task StopAllAsync(CancellationToken cancellationToken = default) =>
        Task.WhenAll(_sessions.Values.Select(s => s.StopAsync(cancellationToken)));

    /// <summary>
    /// Stops every session and blocks until all are undone or <see cref="ExitTimeout"/> passes: for process exit (the
    /// process ends when the handler returns) and module removal (the host goes on without the module's code).
    /// </summary>
    public void StopAll()
    {
        foreach (var s in _sessions.Values) s.MarkExiting();
        try
        {
            StopAllAsync().Wait(ExitTimeout);
        }
        catch (AggregateException)
        {
            // Whatever could not be undone now is in the journal and the cluster annotations for next time.
        }
    }
}
