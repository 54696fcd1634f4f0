namespace KtConnect.Engine.Ssh;

/// <summary>
/// A remote forward (<c>ssh -R</c>, RFC 4254 §7.1): sshd listens on <see cref="BindAddress"/>:<see cref="BoundPort"/>
/// and each connection arrives as a <c>forwarded-tcpip</c> channel handed to the handler. DisposeAsync
/// sends <c>cancel-tcpip-forward</c> and waits for running handlers.
/// </summary>
public sealed class SshRemoteForward : IAsyncDisposable
{
    private readonly SshClient _client;
    private readonly Func<SshChannelStream, CancellationToken, Task> _handler;
    private readonly CancellationTokenSource _cts = new();
    private readonly object _lock = new();
    private readonly HashSet<Task> _running = [];
    private int _disposed;

    internal SshRemoteForward(SshClient client, string bindAddress, int boundPort, Func<SshChannelStream, CancellationToken, Task> handler)
    {
        _client = client;
        BindAddress = bindAddress;
        BoundPort = boundPort;
        _handler = handler;
    }

    public string BindAddress { get; }

    /// <summary>The port sshd listens on (the one it chose when 0 was requested).</summary>
    public int BoundPort { get; }

    /// <summary>Connections accepted so far.</summary>
    public long ConnectionCount => Interlocked.Read(ref _connections);

    private long _connections;

    /// <summary>The last exception a handler threw, if any (handlers' failures never break the connection).</summary>
    public Exception? LastHandlerError { get; private set; }

    internal void Dispatch(SshChannelStream stream)
    {
        Interlocked.Increment(ref _connections);
        lock (_lock)
        {
            if (_disposed != 0)
            {
                _ = stream.DisposeAsync().AsTask();
                return;
            }
            var t = Task.Run(() => RunHandlerAsync(stream));
            _running.Add(t);
            _ = t.ContinueWith(done =>
            {
                lock (_lock) _running.Remove(done);
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task RunHandlerAsync(SshChannelStream stream)
    {
        try
        {
            await using (stream.ConfigureAwait(false))
            {
                await _handler(stream, _cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Owned here: a failing handler closes its own channel and is recorded, nothing else.
            LastHandlerError = e;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            await _client.CancelRemoteForwardAsync(this).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SshException or OperationCanceledException or ObjectDisposedException)
        {
            // The connection is gone, and with it the listener; or it did not answer in time. Either way the handlers
            // below are still cancelled and awaited.
        }
        await _cts.CancelAsync().ConfigureAwait(false);
        Task[] running;
        lock (_lock) running = [.. _running];
        await Task.WhenAll(running).ConfigureAwait(false);
        _cts.Dispose();
    }
}
