namespace KtConnect.Engine.Ssh;

/// <summary>
/// An auto-reset, sticky wake-up: <see cref="Set"/> before <see cref="WaitAsync"/> is not lost. Waiters
/// re-check their condition under their own lock after waking, so spurious wake-ups are harmless.
/// </summary>
internal sealed class AsyncSignal : IDisposable
{
    private readonly SemaphoreSlim _sem = new(0, 1);

    public void Set()
    {
        if (_sem.CurrentCount != 0) return;
        try
        {
            _sem.Release();
        }
        catch (SemaphoreFullException)
        {
            // Another thread set it at the same moment; one wake-up is enough.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public Task WaitAsync(CancellationToken ct) => _sem.WaitAsync(ct);

    public void Dispose() => _sem.Dispose();
}
