using System.Threading.Tasks.Sources;

namespace KtConnect.Engine;

/// <summary>
/// An auto-reset, sticky wake-up for a single waiter: a <see cref="Set()"/> before <see cref="WaitAsync"/> is not
/// lost (however many Sets, the next wait returns at once, and only that one), so a check-then-wait loop never
/// misses a wake-up. Waiters re-check their condition after waking: a wake-up may be spurious.
/// <para>
/// Backed by one reusable <see cref="IValueTaskSource"/>, so waiting allocates nothing (the SSH channel and
/// the user-space TCP stack wait once per packet in the worst case). A cancelled wait ends with
/// <see cref="OperationCanceledException"/> and leaves the signal as it was: a later Set is kept for the next
/// wait. One wait at a time: a second concurrent wait is a caller's bug and throws.
/// </para>
/// <para>
/// Used by <c>Ssh/SshChannel</c> (data arrived, window opened), <c>Net/TcpConnection</c> (readable, writable) and
/// <c>Net/UserSpaceStack</c> (its stopped timer is needed again).
/// </para>
/// </summary>
internal sealed class AsyncSignal : IValueTaskSource
{
    private readonly object _lock = new();
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private bool _set;
    private bool _waiting;
    private CancellationToken _waitToken;
    private CancellationTokenRegistration _registration;

    /// <summary>Wakes the pending wait, or, with none pending, makes the next wait return at once.</summary>
    public void Set() => Set(inline: false);

    /// <summary>
    /// <see cref="Set()"/>; with <paramref name="inline"/> a pending waiter continues on this thread before Set returns
    /// (never call it so while holding a lock the waiter's code takes, or with state half-updated).
    /// </summary>
    public void Set(bool inline)
    {
        CancellationTokenRegistration registration;
        lock (_lock)
        {
            if (!_waiting)
            {
                _set = true;
                return;
            }
            _waiting = false;
            registration = _registration;
            _registration = default;
        }
        registration.Unregister();
        _core.RunContinuationsAsynchronously = !inline;
        _core.SetResult(true);
    }

    /// <summary>
    /// Completes at the next <see cref="Set()"/> (at once if one is pending). One waiter at a time; the returned
    /// <see cref="ValueTask"/> is awaited once.
    /// </summary>
    public ValueTask WaitAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_set)
            {
                _set = false;
                return ValueTask.CompletedTask;
            }
            if (_waiting)
            {
                throw new InvalidOperationException(
                    "Only one wait may be pending on a signal at a time (one read and one write on an SSH channel or a TCP flow).");
            }
            if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
            _core.Reset();
            _waiting = true;
            _waitToken = ct;
            // Registered under the lock so Set always unregisters the registration of the wait it completes.
            // A token cancelled meanwhile runs Cancel inline; the lock is re-entrant.
            if (ct.CanBeCanceled) _registration = ct.UnsafeRegister(static (s, token) => ((AsyncSignal)s!).Cancel(token), this);
            return new ValueTask(this, _core.Version);
        }
    }

    /// <summary>
    /// The registration's callback. Set unregisters without waiting for a callback already running, so a late one
    /// may find the next wait pending: it cancels only a wait on the token that fired.
    /// </summary>
    private void Cancel(CancellationToken fired)
    {
        lock (_lock)
        {
            if (!_waiting || fired != _waitToken) return;
            _waiting = false;
            _registration = default;
        }
        _core.SetException(new OperationCanceledException(fired));
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
