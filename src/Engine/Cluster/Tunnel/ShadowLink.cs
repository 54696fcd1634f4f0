using System.Threading.Channels;
using KtConnect.Engine.Common;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Ssh;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KtConnect.Engine.Cluster.Tunnel;

public enum ShadowLinkState
{
    /// <summary>At least one SSH connection is up: new channels open at once.</summary>
    Connected,

    /// <summary>Every connection dropped; reconnecting with backoff. Opens wait (bounded) for recovery.</summary>
    Reconnecting,

    /// <summary>Gave up for good; see <see cref="ShadowLink.Completion"/>.</summary>
    Failed,

    Closed,
}

/// <summary>Why the link went to <see cref="ShadowLinkState.Reconnecting"/>.</summary>
public sealed class ShadowLinkReconnectingEventArgs(Exception cause) : EventArgs
{
    public Exception Cause { get; } = cause;
}

/// <summary>
/// The data-path link to the shadow pod: <see cref="ShadowLinkOptions.Connections"/> SSH connections, each over its
/// own Kubernetes port-forward to the pod's sshd, kept alive for the session. Each connection has a loop that
/// waits for its end (sshd gone, port-forward broken, keepalive timeout) and reconnects with backoff
/// (0.5 s doubling to 5 s). The link is <see cref="ShadowLinkState.Reconnecting"/> while no connection is up and
/// <see cref="ShadowLinkState.Connected"/> again as soon as one is; the two events are raised in order from one
/// dispatcher. Errors that retrying cannot fix (host key, authentication, pod gone, RBAC) end the link:
/// <see cref="ShadowLinkState.Failed"/>, <see cref="Failed"/>, <see cref="Completion"/>.
/// </summary>
public sealed class ShadowLink : IAsyncDisposable
{
    private readonly Func<CancellationToken, Task<Stream>> _openTransport;
    private readonly ShadowLinkOptions _options;
    private readonly SshClientOptions _sshOptions;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _cts = new();
    private readonly object _lock = new();
    private readonly Slot[] _slots;
    private readonly Task[] _loops;
    private readonly Channel<Action> _events = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _dispatcher;
    private readonly TaskCompletionSource<Exception?> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _healthy = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ShadowLinkState _state = ShadowLinkState.Connected;
    private Exception? _lastError;
    private Exception? _failure;
    private long _downSince;
    private int _next;
    private long _reconnects;
    private int _disposed;

    private ShadowLink(Func<CancellationToken, Task<Stream>> openTransport, ShadowLinkOptions options, ILogger? logger)
    {
        _openTransport = openTransport;
        _options = options;
        _sshOptions = options.ToSshOptions();
        _logger = logger ?? NullLogger.Instance;
        _slots = new Slot[options.Connections];
        for (var i = 0; i < _slots.Length; i++) _slots[i] = new Slot(i);
        _loops = new Task[options.Connections];
        _dispatcher = Task.Run(DispatchAsync);
    }

    /// <summary>Now: Connected, Reconnecting, Failed or Closed.</summary>
    public ShadowLinkState State
    {
        get
        {
            lock (_lock) return _state;
        }
    }

    /// <summary>SSH connections up right now.</summary>
    public int HealthyConnections
    {
        get
        {
            lock (_lock) return _slots.Count(s => s.Client is { IsConnected: true });
        }
    }

    /// <summary>Connections re-established after a loss (all slots together).</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>The last error of any connection or attempt (diagnostics).</summary>
    public Exception? LastError
    {
        get
        {
            lock (_lock) return _lastError;
        }
    }

    /// <summary>Completes (never faults) when the link ends: null when disposed, else the error it gave up on.</summary>
    public Task<Exception?> Completion => _completion.Task;

    /// <summary>Every connection is down; raised once per outage, before any <see cref="Recovered"/>.</summary>
    public event EventHandler<ShadowLinkReconnectingEventArgs>? Reconnecting;

    /// <summary>A connection is up again after <see cref="Reconnecting"/>.</summary>
    public event EventHandler? Recovered;

    /// <summary>The link gave up for good (also <see cref="Completion"/>).</summary>
    public event EventHandler<ShadowLinkReconnectingEventArgs>? Failed;

    /// <summary>
    /// Port-forwards to <see cref="ShadowLinkOptions.PodName"/>:<see cref="ShadowLinkOptions.Port"/> through
    /// <paramref name="kube"/> and logs in. Returns once the first connection is up (the others follow in the
    /// background). Transient failures are retried for <see cref="ShadowLinkOptions.StartTimeout"/>; a wrong host key
    /// or a refused key throws its typed <see cref="SshException"/> at once.
    /// </summary>
    public static Task<ShadowLink> StartAsync(KubeClient kube, ShadowLinkOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(kube);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.PodName);
        // Read ahead: the port-forward's TLS and WebSocket decoding then runs beside SSH's decryption, not before it
        // on the same thread (connect download 1 flow vs ssh -D, whose port-forward is another process: 0.82-0.91
        // without, 0.92-1.00 with, in alternating runs; bench/README.md).
        return StartAsync(
            async ct => new ReadAheadStream(await kube.PortForwardAsync(options.PodName, options.Port, options.Namespace, ct).ConfigureAwait(false)),
            options, logger, cancellationToken);
    }

    /// <summary>As above over any transport: <paramref name="openTransport"/> opens one duplex stream to sshd per call.</summary>
    public static async Task<ShadowLink> StartAsync(Func<CancellationToken, Task<Stream>> openTransport, ShadowLinkOptions options, ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(openTransport);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var link = new ShadowLink(openTransport, options, logger);
        try
        {
            var first = await link.ConnectFirstAsync(cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < link._slots.Length; i++)
            {
                var slot = link._slots[i];
                var initial = i == 0 ? first : null;
                link._loops[i] = Task.Run(() => link.RunSlotAsync(slot, initial));
            }
            return link;
        }
        catch
        {
            await link.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Opens a <c>direct-tcpip</c> channel to <paramref name="host"/>:<paramref name="port"/> (resolved by sshd in the
    /// pod) on the least busy healthy connection. While the link is reconnecting it waits up to
    /// <see cref="ShadowLinkOptions.OpenWaitTimeout"/>, then throws <see cref="ShadowLinkException"/>
    /// (<see cref="TunnelErrorIds.LinkUnavailable"/>). sshd's refusal is the <see cref="SshException"/>
    /// <c>SshChannelOpenFailed</c> (the destination's answer; not retried).
    /// </summary>
    public async Task<SshChannelStream> OpenAsync(string host, int port, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, LifetimeToken());
        wait.CancelAfter(_options.OpenWaitTimeout);
        Exception? last = null;
        while (true)
        {
            var (slot, client) = await WaitForConnectionAsync(last, cancellationToken, wait.Token).ConfigureAwait(false);
            try
            {
                var stream = await client.OpenDirectTcpIpAsync(host, port, cancellationToken: wait.Token).ConfigureAwait(false);
                Interlocked.Increment(ref slot.Active);
                _ = stream.Closed.ContinueWith(static (_, s) => Interlocked.Decrement(ref ((Slot)s!).Active), slot,
                    CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                return stream;
            }
            catch (SshException e) when (e.ErrorId == SshErrorIds.ChannelOpenFailed)
            {
                throw;
            }
            catch (SshException e)
            {
                // The connection died under us; its loop reconnects. Try another one (or wait for recovery).
                last = e;
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw Unavailable(last ?? e);
            }
        }
    }

    /// <summary>
    /// <c>tcpip-forward</c> on one healthy connection (for Exchange/Mesh), requested again on the same address and port
    /// whenever its connection is lost (see <see cref="ShadowRemoteForward"/>). Each incoming connection goes to
    /// <paramref name="handler"/>, which owns the stream until it returns.
    /// </summary>
    public Task<ShadowRemoteForward> ForwardRemoteAsync(string bindAddress, int port, Func<SshChannelStream, CancellationToken, Task> handler,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bindAddress);
        ArgumentNullException.ThrowIfNull(handler);
        return ShadowRemoteForward.StartAsync(this, bindAddress, port, handler, _logger, cancellationToken);
    }

    internal async Task<(SshClient Client, SshRemoteForward Forward)> RequestForwardAsync(string bindAddress, int port,
        Func<SshChannelStream, CancellationToken, Task> handler, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, LifetimeToken());
        wait.CancelAfter(_options.OpenWaitTimeout);
        var (_, client) = await WaitForConnectionAsync(null, cancellationToken, wait.Token).ConfigureAwait(false);
        return (client, await client.ForwardRemoteAsync(bindAddress, port, handler, cancellationToken).ConfigureAwait(false));
    }

    // ------------------------------------------------------------------ connections

    private async Task<(Slot Slot, SshClient Client)> WaitForConnectionAsync(Exception? last, CancellationToken callerToken, CancellationToken waitToken)
    {
        while (true)
        {
            Task healthy;
            lock (_lock)
            {
                if (_failure is not null)
                    throw new ShadowLinkException(TunnelErrorIds.LinkFailed, KtErrorCategory.ConnectionError,
                        $"The link to shadow pod {Target} has failed: {_failure.Message}", _failure, Target);
                if (_disposed != 0) throw Closed();
                if (Pick() is { } picked) return picked;
                healthy = _healthy.Task;
            }
            try
            {
                await healthy.WaitAsync(waitToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (!callerToken.IsCancellationRequested)
            {
                if (_disposed != 0) continue;
                throw Unavailable(last ?? e);
            }
        }
    }

    /// <summary>The healthy connection with the fewest open channels (ties: round robin). Under the lock.</summary>
    private (Slot, SshClient)? Pick()
    {
        (Slot, SshClient)? best = null;
        var bestActive = long.MaxValue;
        var start = _next++ & int.MaxValue;
        for (var i = 0; i < _slots.Length; i++)
        {
            var s = _slots[(start + i) % _slots.Length];
            if (s.Client is not { IsConnected: true } c) continue;
            var active = Interlocked.Read(ref s.Active);
            if (active < bestActive)
            {
                best = (s, c);
                bestActive = active;
            }
        }
        return best;
    }

    /// <summary>The link's own token; a link already disposed (its source with it) throws <see cref="Closed"/>.</summary>
    private CancellationToken LifetimeToken()
    {
        lock (_lock)
        {
            if (_disposed != 0) throw Closed();
            return _cts.Token;
        }
    }

    private ShadowLinkException Closed() =>
        new(TunnelErrorIds.LinkClosed, KtErrorCategory.OperationStopped, "The link to the shadow pod is closed.", null, Target);

    private ShadowLinkException Unavailable(Exception inner)
    {
        Exception? why;
        lock (_lock) why = _lastError ?? inner;
        return new ShadowLinkException(TunnelErrorIds.LinkUnavailable, KtErrorCategory.ConnectionError,
            $"No SSH connection to shadow pod {Target} became available within {_options.OpenWaitTimeout.TotalSeconds:0.#} s (reconnecting): {why.Message}", why, Target);
    }

    private string Target => string.IsNullOrEmpty(_options.PodName) ? "(shadow)" : $"{_options.Namespace ?? "<default>"}/{_options.PodName}";

    private async Task<SshClient> ConnectOnceAsync(CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(_options.ConnectTimeout);
        try
        {
            var stream = await _openTransport(attempt.Token).ConfigureAwait(false);
            // The client owns the stream from here, also when the handshake fails.
            return await SshClient.ConnectAsync(stream, _sshOptions, attempt.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ShadowLinkException(TunnelErrorIds.LinkUnavailable, KtErrorCategory.OperationTimeout,
                $"Connecting to shadow pod {Target} did not finish within {_options.ConnectTimeout.TotalSeconds:0.#} s.", e, Target);
        }
    }

    private async Task<SshClient> ConnectFirstAsync(CancellationToken cancellationToken)
    {
        using var start = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
        var deadline = DateTime.UtcNow + _options.StartTimeout;
        for (var failures = 0; ; failures++)
        {
            try
            {
                var client = await ConnectOnceAsync(start.Token).ConfigureAwait(false);
                _logger.LogDebug("shadow link {Target}: connected ({Algorithms})", Target, client.NegotiatedAlgorithms);
                lock (_lock)
                {
                    _slots[0].Client = client;
                    _slots[0].HasBeenUp = true;
                    _healthy.TrySetResult();
                }
                return client;
            }
            catch (Exception e) when (!IsFatal(e) && e is not OperationCanceledException && DateTime.UtcNow + _options.BackoffAfter(failures) < deadline)
            {
                _logger.LogDebug(e, "shadow link {Target}: attempt {Attempt} failed, retrying", Target, failures + 1);
                lock (_lock) _lastError = e;
                await Task.Delay(_options.BackoffAfter(failures), start.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (!IsFatal(e) && e is not OperationCanceledException)
            {
                throw new ShadowLinkException(TunnelErrorIds.LinkUnavailable, KtErrorCategory.ConnectionError,
                    $"Could not connect to the sshd of shadow pod {Target} within {_options.StartTimeout.TotalSeconds:0.#} s: {e.Message}", e, Target);
            }
        }
    }

    /// <summary>One connection slot for the link's lifetime: hold a connection, notice its end, reconnect.</summary>
    private async Task RunSlotAsync(Slot slot, SshClient? client)
    {
        var ct = _cts.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                if (client is null)
                {
                    client = await ReconnectAsync(slot, ct).ConfigureAwait(false);
                    if (client is null) return;
                }
                var why = await client.Completion.WaitAsync(ct).ConfigureAwait(false);
                MarkDown(slot, client, why);
                await client.DisposeAsync().ConfigureAwait(false);
                client = null;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            if (client is not null)
            {
                lock (_lock)
                {
                    if (slot.Client == client) slot.Client = null;
                }
                await client.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Attempts with backoff until one succeeds (returned, marked up), the link fails (null) or is disposed (throws).</summary>
    private async Task<SshClient?> ReconnectAsync(Slot slot, CancellationToken ct)
    {
        for (var failures = 0; ; failures++)
        {
            try
            {
                var client = await ConnectOnceAsync(ct).ConfigureAwait(false);
                MarkUp(slot, client);
                return client;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                if (IsFatal(e))
                {
                    Fail(e);
                    return null;
                }
                TimeSpan? downFor;
                lock (_lock)
                {
                    _lastError = e;
                    downFor = _state == ShadowLinkState.Reconnecting ? TimeSpan.FromMilliseconds(Environment.TickCount64 - _downSince) : null;
                }
                if (_options.MaxReconnectDuration is { } max && downFor > max)
                {
                    Fail(new ShadowLinkException(TunnelErrorIds.LinkFailed, KtErrorCategory.ConnectionError,
                        $"The link to shadow pod {Target} could not be re-established within {max.TotalSeconds:0.#} s: {e.Message}", e, Target));
                    return null;
                }
                _logger.LogDebug(e, "shadow link {Target} slot {Slot}: reconnect attempt {Attempt} failed", Target, slot.Index, failures + 1);
                await Task.Delay(_options.BackoffAfter(failures), ct).ConfigureAwait(false);
            }
        }
    }

    private void MarkUp(Slot slot, SshClient client)
    {
        var recovered = false;
        lock (_lock)
        {
            slot.Client = client;
            if (slot.HasBeenUp) Interlocked.Increment(ref _reconnects);
            slot.HasBeenUp = true;
            if (_state == ShadowLinkState.Reconnecting)
            {
                _state = ShadowLinkState.Connected;
                recovered = true;
            }
            _healthy.TrySetResult();
            if (recovered) _events.Writer.TryWrite(() => Recovered?.Invoke(this, EventArgs.Empty));
        }
        if (recovered) _logger.LogInformation("shadow link {Target}: recovered", Target);
        else _logger.LogDebug("shadow link {Target} slot {Slot}: connected", Target, slot.Index);
    }

    private void MarkDown(Slot slot, SshClient client, Exception why)
    {
        var reconnecting = false;
        lock (_lock)
        {
            if (slot.Client == client) slot.Client = null;
            if (_disposed != 0 || _state != ShadowLinkState.Connected) return;
            _lastError = why;
            if (Pick() is null)
            {
                _state = ShadowLinkState.Reconnecting;
                _downSince = Environment.TickCount64;
                if (_healthy.Task.IsCompleted) _healthy = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                reconnecting = true;
                _events.Writer.TryWrite(() => Reconnecting?.Invoke(this, new ShadowLinkReconnectingEventArgs(why)));
            }
        }
        if (reconnecting) _logger.LogWarning(why, "shadow link {Target}: every connection dropped; reconnecting", Target);
        else _logger.LogDebug(why, "shadow link {Target} slot {Slot}: connection dropped", Target, slot.Index);
    }

    private void Fail(Exception error)
    {
        lock (_lock)
        {
            if (_failure is not null || _disposed != 0) return;
            _failure = error;
            _state = ShadowLinkState.Failed;
            // Openers waiting for recovery wake up and see the failure.
            _healthy.TrySetResult();
            _events.Writer.TryWrite(() => Failed?.Invoke(this, new ShadowLinkReconnectingEventArgs(error)));
        }
        _logger.LogError(error, "shadow link {Target}: giving up", Target);
        _completion.TrySetResult(error);
        _cts.Cancel();
    }

    /// <summary>Errors no retry can fix: the pod's identity or our key is wrong, the pod is gone, or we are not allowed.</summary>
    internal static bool IsFatal(Exception e) => e switch
    {
        SshException s => s.ErrorId is SshErrorIds.HostKeyMismatch or SshErrorIds.HostKeySignatureInvalid or SshErrorIds.AuthenticationFailed
            or SshErrorIds.NoCommonAlgorithm or SshErrorIds.KeyFormatInvalid,
        KubeUnauthorizedException or KubeForbiddenException or KubeNotFoundException => true,
        ShadowLinkException { ErrorId: TunnelErrorIds.LinkFailed } => true,
        _ => false,
    };

    private async Task DispatchAsync()
    {
        await foreach (var raise in _events.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                raise();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A subscriber's bug must not stop later notifications.
                _logger.LogError(e, "shadow link {Target}: an event handler failed", Target);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_disposed != 0) return;
            _disposed = 1;
            if (_state != ShadowLinkState.Failed) _state = ShadowLinkState.Closed;
            _healthy.TrySetResult();
        }
        await _cts.CancelAsync().ConfigureAwait(false);
        foreach (var loop in _loops)
        {
            if (loop is not null) await loop.ConfigureAwait(false);
        }
        // A first connection that never got a loop (start failed after it) is closed here.
        SshClient[] leftovers;
        lock (_lock)
        {
            leftovers = _slots.Select(s => s.Client).OfType<SshClient>().ToArray();
            foreach (var s in _slots) s.Client = null;
        }
        foreach (var c in leftovers) await c.DisposeAsync().ConfigureAwait(false);
        _events.Writer.TryComplete();
        await _dispatcher.ConfigureAwait(false);
        _completion.TrySetResult(null);
        _cts.Dispose();
    }

    private sealed class Slot(int index)
    {
        public readonly int Index = index;
        public SshClient? Client;
        public long Active;
        public bool HasBeenUp;
    }
}
