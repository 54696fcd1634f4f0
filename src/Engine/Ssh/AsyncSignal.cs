using System.Threading.Tasks.Sources;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// An auto-reset, sticky wake-up for a single waiter: <see cref="Set"/> before <see cref="WaitAsync"/> is
/// not lost. Backed by one reusable <see cref="IValueTaskSource"/>, so waiting allocates nothing (the data
/// path waits once per packet in the worst case). Waiters re-check their condition after waking.
/// </summary>
internal sealed class AsyncSignal : IValueTaskSource
{
    private readonly object _lock = new();
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private bool _set;
    private bool _waiting;
    private CancellationToken _waitToken;
    private CancellationTokenRegistration _registration;

    public void Set()
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
        _core.SetResult(true);
    }

    /// <summary>Completes at the next <see cref="Set"/> (or at once if one is pending). One waiter at a time.</summary>
    public ValueTask WaitAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_set)
            {
                _set = false;
                return ValueTask.CompletedTask;
            }
            if (_waiting) throw new InvalidOperationException("Only one read and one write may be pending on an SSH channel at a time.");
            if (ct.IsCancellationRequested) return ValueTask.FromCanceled(ct);
            _core.Reset();
            _waiting = true;
            _waitToken = ct;
            // Registered under the lock so Set always unregisters the registration of the wait it completes.
            // A token cancelled meanwhile runs Cancel inline; the lock is re-entrant.
            if (ct.CanBeCanceled) _registration = ct.UnsafeRegister(static s => ((AsyncSignal)s!).Cancel(), this);
            return new ValueTask(this, _core.Version);
        }
    }

    private void Cancel()
    {
        CancellationToken token;
        lock (_lock)
        {
            if (!_waiting) return;
            _waiting = false;
            token = _waitToken;
            _registration = default;
        }
        _core.SetException(new OperationCanceledException(token));
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
