namespace KtConnect.Engine.Sessions;

/// <summary>Waits for sessions to reach a state (what Wait-KtSession and `kt` in the foreground do).</summary>
public static class SessionWaiter
{
    /// <summary>
    /// Waits until every session (or, with <paramref name="any"/>, the first one) satisfies
    /// <paramref name="reached"/>, or the timeout passes. Returns the sessions that reached it, in input order.
    /// A session that finishes (Stopped/Failed) without reaching the state no longer counts as waiting.
    /// </summary>
    public static async Task<IReadOnlyList<Session>> WaitAsync(IReadOnlyList<Session> sessions, Func<SessionState, bool> reached,
        bool any = false, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(reached);
        if (sessions.Count == 0) return [];
        var changed = new SemaphoreSlim(0);
        void OnChange(object? sender, SessionStateChangedEventArgs e) => changed.Release();
        foreach (var s in sessions) s.StateChanged += OnChange;
        using var deadline = timeout is { } t ? new CancellationTokenSource(t) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        try
        {
            while (true)
            {
                // One reading of each state: read twice, a session finishing in between was neither done nor pending.
                var states = sessions.Select(s => s.State).ToList();
                var done = sessions.Where((_, i) => reached(states[i])).ToList();
                var pending = states.Count(state => !reached(state) && state is not (SessionState.Stopped or SessionState.Failed));
                if ((any && done.Count > 0) || pending == 0) return done;
                try
                {
                    await changed.WaitAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    return sessions.Where(s => reached(s.State)).ToList();
                }
            }
        }
        finally
        {
            foreach (var s in sessions) s.StateChanged -= OnChange;
            changed.Dispose();
        }
    }

    public static bool IsFinished(SessionState state) => state is SessionState.Stopped or SessionState.Failed;
}
