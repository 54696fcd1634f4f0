using System.Collections.Concurrent;

namespace KtConnect.Engine.Sessions;

public enum OutputKind
{
    Verbose,
    Warning,
    Debug,
    Progress,
}

/// <summary>One message from engine work, delivered later on the caller's thread.</summary>
public sealed record OutputMessage(OutputKind Kind, string Text, string? Activity = null, int Percent = -1, bool Completed = false);

/// <summary>
/// An <see cref="IKtOutput"/> that queues messages from any thread, for a caller that may only write from
/// its own thread (a PowerShell pipeline). <see cref="Pump{T}"/> blocks that thread until the work is done,
/// delivering each message on it as it arrives.
/// </summary>
public sealed class OutputQueue : IKtOutput, IDisposable
{
    private readonly ConcurrentQueue<OutputMessage> _queue = new();
    private readonly AutoResetEvent _signal = new(false);
    private bool _disposed;

    public void Verbose(string message) => Enqueue(new OutputMessage(OutputKind.Verbose, message));

    public void Warning(string message) => Enqueue(new OutputMessage(OutputKind.Warning, message));

    public void Debug(string message) => Enqueue(new OutputMessage(OutputKind.Debug, message));

    public void Progress(string activity, string status, int percent = -1, bool completed = false) =>
        Enqueue(new OutputMessage(OutputKind.Progress, status, activity, percent, completed));

    /// <summary>Delivers queued messages until <paramref name="work"/> completes, then returns its result or throws its exception.</summary>
    public T Pump<T>(Task<T> work, Action<OutputMessage> deliver)
    {
        ArgumentNullException.ThrowIfNull(work);
        WaitDelivering(work, deliver);
        return work.GetAwaiter().GetResult();
    }

    /// <inheritdoc cref="Pump{T}(Task{T}, Action{OutputMessage})"/>
    public void Pump(Task work, Action<OutputMessage> deliver)
    {
        ArgumentNullException.ThrowIfNull(work);
        WaitDelivering(work, deliver);
        work.GetAwaiter().GetResult();
    }

    /// <summary>Delivers whatever is queued now.</summary>
    public void Drain(Action<OutputMessage> deliver)
    {
        ArgumentNullException.ThrowIfNull(deliver);
        while (_queue.TryDequeue(out var m)) deliver(m);
    }

    /// <summary>After this, messages are dropped: a background loop that still holds the queue never fails for it.</summary>
    public void Dispose()
    {
        lock (_queue)
        {
            _disposed = true;
            _signal.Dispose();
        }
    }

    private void WaitDelivering(Task work, Action<OutputMessage> deliver)
    {
        var done = ((IAsyncResult)work).AsyncWaitHandle;
        while (!work.IsCompleted)
        {
            WaitHandle.WaitAny([_signal, done]);
            Drain(deliver);
        }
        Drain(deliver);
    }

    private void Enqueue(OutputMessage message)
    {
        lock (_queue)
        {
            if (_disposed) return;
            _queue.Enqueue(message);
            _signal.Set();
        }
    }
}
