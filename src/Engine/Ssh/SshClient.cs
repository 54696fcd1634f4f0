using System.Collections.Concurrent;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace KtConnect.Engine.Ssh;

/// <summary>Raised once when the connection ends, for any reason.</summary>
public sealed class SshDisconnectedEventArgs(Exception error) : EventArgs
{
    /// <summary>Why: an <see cref="SshException"/> (ConnectionClosed when we closed it).</summary>
    public Exception Error { get; } = error;
}

/// <summary>
/// An SSH client connection over any duplex <see cref="Stream"/> (a socket, a Kubernetes port-forward):
/// transport, publickey authentication, then channels. One background loop reads and dispatches; a
/// timer sends keepalives and re-keys by time. When the connection dies every open channel and every
/// waiter gets the same typed <see cref="SshException"/>.
/// </summary>
public sealed class SshClient : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly SshClientOptions _options;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly object _lock = new();
    private readonly Dictionary<uint, SshChannel> _channels = [];
    private readonly Queue<TaskCompletionSource<byte[]?>> _globalReplies = new();
    private readonly Dictionary<(string Address, int Port), SshRemoteForward> _forwards = [];
    private readonly TaskCompletionSource<Exception> _terminated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _ownsIdentity;
    private uint _nextChannelId;
    // Filled by dispatch and emptied by WakeReceivers, which can run on two threads at once: a read started before
    // WakeReceivers can complete on another thread, whose dispatch queues more while this one still wakes.
    private readonly ConcurrentQueue<SshChannel> _received = new();
    private Task? _readLoop;
    private Task? _timerLoop;
    private Task _keepaliveSend = Task.CompletedTask;
    private long _lastKeepaliveTicks;
    private int _disposed;

    private SshClient(Stream stream, SshClientOptions options, SshKeyPair identity, bool ownsIdentity)
    {
        _stream = stream;
        _options = options;
        Identity = identity;
        _ownsIdentity = ownsIdentity;
        Transport = new SshTransport(stream, options, _lifetime.Token) { BeforeRead = WakeReceivers };
    }

    internal SshTransport Transport { get; }

    /// <summary>The identity used to log in (the generated one when the options had none).</summary>
    public SshKeyPair Identity { get; }

    public string ServerVersion => Transport.ServerVersion;

    /// <summary>The algorithms of the last key exchange: kex, host key, cipher, MAC.</summary>
    public string NegotiatedAlgorithms => Transport.NegotiatedSummary ?? "";

    /// <summary>Key exchanges completed, the first one included (so re-keys = this - 1).</summary>
    public int KeyExchangeCount => Transport.KeyExchangeCount;

    public bool IsConnected => !_terminated.Task.IsCompleted;

    /// <summary>Completes (never faults) with the reason once the connection has ended.</summary>
    public Task<Exception> Completion => _terminated.Task;

    public event EventHandler<SshDisconnectedEventArgs>? Disconnected;

    /// <summary>
    /// Connects over <paramref name="transport"/> (which the client then owns and disposes): version
    /// exchange, key exchange with host-key pinning, and publickey authentication.
    /// </summary>
    public static async Task<SshClient> ConnectAsync(Stream transport, SshClientOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var identity = options.Identity ?? SshKeyPair.GenerateEcdsa();
        var client = new SshClient(transport, options, identity, options.Identity is null);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, client._lifetime.Token);
        timeout.CancelAfter(options.HandshakeTimeout);
        // Not every Stream honours cancellation while reading; closing it unblocks the handshake on timeout.
        var reg = timeout.Token.Register(static s => ((Stream)s!).Dispose(), transport);
        try
        {
            await client.Transport.ExchangeVersionsAsync(timeout.Token).ConfigureAwait(false);
            await client.Transport.RunInitialKeyExchangeAsync(timeout.Token).ConfigureAwait(false);
            await client.AuthenticateAsync(timeout.Token).ConfigureAwait(false);
            // A timeout that fired as the handshake finished may have closed the transport already: then it failed.
            await reg.DisposeAsync().ConfigureAwait(false);
            if (timeout.IsCancellationRequested) throw new OperationCanceledException(timeout.Token);
        }
        catch (Exception e)
        {
            await reg.DisposeAsync().ConfigureAwait(false);
            var error = e;
            if (cancellationToken.IsCancellationRequested) error = new OperationCanceledException("SSH connect was cancelled.", e, cancellationToken);
            else if (timeout.IsCancellationRequested && e is not SshException)
                error = new SshException(SshErrorIds.HandshakeTimeout, KtErrorCategory.OperationTimeout,
                    $"The SSH handshake did not finish within {options.HandshakeTimeout.TotalSeconds:0.#} s.", e);
            else if (e is not SshException && e is IOException or ObjectDisposedException)
                error = new SshException(SshErrorIds.ConnectionLost, KtErrorCategory.ConnectionError, "The SSH connection was lost during the handshake: " + e.Message, e);
            await client.AbortAsync(error).ConfigureAwait(false);
            client.Transport.Dispose();
            if (client._ownsIdentity) identity.Dispose();
            client._lifetime.Dispose();
            if (error == e) throw;
            throw error;
        }
        client._readLoop = Task.Run(client.ReadLoopAsync);
        client._timerLoop = Task.Run(client.TimerLoopAsync);
        return client;
    }

    // ------------------------------------------------------------------ authentication

    private async Task AuthenticateAsync(CancellationToken ct)
    {
        using (var w = new SshWriter())
        {
            w.Byte(SshMsg.ServiceRequest).String("ssh-userauth");
            await Transport.SendAsync(w.ToArray(), default, null, fromReader: false, ct).ConfigureAwait(false);
        }
        var accept = await Transport.ReadPacketAsync(ct).ConfigureAwait(false);
        if (accept.Span[0] != SshMsg.ServiceAccept)
            throw SshException.Protocol(SshErrorIds.UnexpectedMessage, $"Expected SERVICE_ACCEPT, got message {accept.Span[0]}.");

        // Some servers accept fewer RSA hashes than server-sig-algs claims (OpenSSH's list ignores
        // PubkeyAcceptedAlgorithms), so an RSA key is retried with the next SHA-2 form on failure.
        string[] methods = [];
        var tried = new List<string>();
        foreach (var algo in Identity.SignatureAlgorithms(Transport.ServerSigAlgs))
        {
            tried.Add(algo);
            if (await TryPublicKeyAsync(algo, ct).ConfigureAwait(false) is not { } refused) return;
            methods = refused;
            if (Array.IndexOf(methods, "publickey") < 0) break;
        }
        throw new SshException(SshErrorIds.AuthenticationFailed, KtErrorCategory.AuthenticationError,
            $"The SSH server refused public key {Identity.PublicKey.Fingerprint} ({string.Join(", ", tried)}) for user '{_options.User}'; it accepts: {string.Join(",", methods)}.");
    }

    /// <summary>One signed publickey attempt; null on success, else the methods the server still accepts.</summary>
    private async Task<string[]?> TryPublicKeyAsync(string algo, CancellationToken ct)
    {
        var blob = Identity.PublicKey.Blob;
        byte[] request;
        using (var signed = new SshWriter(512))
        {
            signed.String(Transport.SessionId!).Byte(SshMsg.UserauthRequest).String(_options.User).String("ssh-connection")
                .String("publickey").Boolean(true).String(algo).String(blob.Span);
            var sig = Identity.Sign(algo, signed.Span);
            using var w = new SshWriter(512);
            w.Byte(SshMsg.UserauthRequest).String(_options.User).String("ssh-connection").String("publickey").Boolean(true)
                .String(algo).String(blob.Span).String(sig);
            request = w.ToArray();
        }
        await Transport.SendAsync(request, default, null, fromReader: false, ct).ConfigureAwait(false);
        while (true)
        {
            var p = await Transport.ReadPacketAsync(ct).ConfigureAwait(false);
            switch (p.Span[0])
            {
                case SshMsg.UserauthSuccess:
                    return null;
                case SshMsg.UserauthBanner or SshMsg.GlobalRequest:
                    continue;
                case SshMsg.UserauthFailure:
                    return SshMessages.ParseUserauthFailure(p.Span);
                default:
                    throw SshException.Protocol(SshErrorIds.UnexpectedMessage, $"Unexpected message {p.Span[0]} during authentication.");
            }
        }
    }

    // ------------------------------------------------------------------ reader loop

    private async Task ReadLoopAsync()
    {
        Exception? error = null;
        try
        {
            var ct = _lifetime.Token;
            while (true)
            {
                // Channel readers are woken before the transport reads the socket; and whenever handling a message
                // has to wait (a reply send held up by a writer, a key exchange), so received data never waits on it.
                var read = Transport.ReadPacketAsync(ct);
                if (!read.IsCompleted) WakeReceivers();
                var p = await read.ConfigureAwait(false);
                var dispatch = DispatchAsync(p, ct);
                if (!dispatch.IsCompleted) WakeReceivers();
                await dispatch.ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
        {
            error = null;
        }
        catch (SshException e)
        {
            error = e;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Whatever the transport throws (an aborted WebSocket throws OperationCanceledException) ends the
            // connection here, so every channel and waiter hears of it; a loop that just died would leave them parked.
            error = new SshException(SshErrorIds.ConnectionLost, KtErrorCategory.ConnectionError, "The SSH connection failed: " + e.Message, e);
        }
        // Once we are disposing, the end is ours: the peer closing after our DISCONNECT is not a lost connection.
        await AbortAsync(Volatile.Read(ref _disposed) != 0 ? SshException.Closed() : error ?? SshException.Closed()).ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask DispatchAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var msg = payload.Span[0];
        switch (msg)
        {
            case SshMsg.ChannelData or SshMsg.ChannelExtendedData:
            {
                var (ch, adjust) = OnData(payload.Span, msg == SshMsg.ChannelExtendedData);
                if (adjust > 0) await ch!.SendWindowAdjustAsync(adjust, fromReader: true, ct).ConfigureAwait(false);
                return;
            }
            case SshMsg.ChannelWindowAdjust:
            {
                var (id, n) = SshMessages.ParseChannelSimple(payload.Span);
                Lookup(id)?.OnWindowAdjust(n);
                return;
            }
            case SshMsg.ChannelEof:
                Lookup(SshMessages.ParseChannelSimple(payload.Span).Recipient)?.OnEof();
                return;
            case SshMsg.ChannelClose:
            {
                var ch = Lookup(SshMessages.ParseChannelSimple(payload.Span).Recipient);
                if (ch is null) return;
                ch.OnClose();
                await ch.SendCloseAsync(fromReader: true, ct).ConfigureAwait(false);
                lock (_lock) _channels.Remove(ch.LocalId);
                ch.OnFinished();
                return;
            }
            case SshMsg.ChannelOpenConfirmation:
            {
                var (id, remote, window, max) = SshMessages.ParseOpenConfirmation(payload.Span);
                var ch = Lookup(id);
                if (ch is null) return;
                ch.OnOpenConfirmation(remote, window, max);
                if (ch.IsAbandoned) await ch.SendCloseAsync(fromReader: true, ct).ConfigureAwait(false);
                return;
            }
            case SshMsg.ChannelOpenFailure:
            {
                var (id, reason, desc) = SshMessages.ParseOpenFailure(payload.Span);
                var ch = Lookup(id);
                if (ch is null) return;
                lock (_lock) _channels.Remove(id);
                ch.OnOpenFailure(new SshException(SshErrorIds.ChannelOpenFailed, KtErrorCategory.ConnectionError,
                    $"The SSH server refused to open the channel (reason {reason}: {ReasonText(reason)}): {desc}"));
                return;
            }
            case SshMsg.ChannelRequest:
                await OnChannelRequestAsync(payload, ct).ConfigureAwait(false);
                return;
            case SshMsg.ChannelSuccess or SshMsg.ChannelFailure:
                Lookup(SshMessages.ParseChannelSimple(payload.Span).Recipient)?.OnRequestReply(msg == SshMsg.ChannelSuccess);
                return;
            case SshMsg.GlobalRequest:
            {
                var (_, wantReply) = SshMessages.ParseGlobalRequest(payload.Span);
                // hostkeys-00@openssh.com, keepalive@openssh.com and anything else: we implement none of them.
                if (wantReply) await Transport.SendAsync(new[] { SshMsg.RequestFailure }, default, null, fromReader: true, ct).ConfigureAwait(false);
                return;
            }
            case SshMsg.RequestSuccess or SshMsg.RequestFailure:
            {
                TaskCompletionSource<byte[]?>? t = null;
                lock (_lock)
                {
                    if (_globalReplies.Count > 0) t = _globalReplies.Dequeue();
                }
                if (t is null) throw SshException.Protocol(SshErrorIds.ProtocolViolation, "The server replied to a global request never made.");
                t.TrySetResult(msg == SshMsg.RequestSuccess ? payload[1..].ToArray() : null);
                return;
            }
            case SshMsg.ChannelOpen:
                await OnChannelOpenAsync(payload, ct).ConfigureAwait(false);
                return;
            case SshMsg.UserauthSuccess or SshMsg.UserauthBanner or SshMsg.UserauthFailure or SshMsg.UserauthPkOk:
                return;
            default:
            {
                var m = new byte[5];
                m[0] = SshMsg.Unimplemented;
                await Transport.SendAsync(m, default, null, fromReader: true, ct).ConfigureAwait(false);
                return;
            }
        }
    }

    private static string ReasonText(uint reason) => reason switch
    {
        1 => "administratively prohibited",
        2 => "connect failed",
        3 => "unknown channel type",
        4 => "resource shortage",
        _ => "unknown",
    };

    private (SshChannel? Channel, uint Adjust) OnData(ReadOnlySpan<byte> payload, bool extended)
    {
        var (id, offset, length) = SshMessages.ParseData(payload);
        var ch = Lookup(id);
        if (ch is null) return (null, 0);
        var adjust = ch.OnData(payload.Slice(offset, length), extended);
        if (ch.TakeWakeSlot()) _received.Enqueue(ch);
        return (ch, adjust);
    }

    /// <summary>
    /// Called by the transport before each socket read: wakes the readers of the channels that received data since
    /// the last one. A burst of packets then reaches each reader as one read, and moves on in one write, as OpenSSH
    /// handles all it has read before it writes.
    /// </summary>
    private void WakeReceivers()
    {
        // A woken reader runs inline here. What it does may complete a wait of this loop's transport (a send during a
        // key exchange), which then goes on reading on this thread and comes back here: take one channel at a time.
        while (_received.TryDequeue(out var ch)) ch.WakeReader();
    }

    private SshChannel? Lookup(uint id)
    {
        lock (_lock)
        {
            if (_channels.TryGetValue(id, out var ch)) return ch;
        }
        throw SshException.Protocol(SshErrorIds.ProtocolViolation, $"The server sent a message for unknown channel {id}.");
    }

    private async ValueTask OnChannelRequestAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var req = SshMessages.ParseChannelRequest(payload.Span);
        var ch = Lookup(req.Recipient);
        if (ch is null) return;
        switch (req.Type)
        {
            case "exit-status":
                ch.OnExitStatus(req.ExitStatus);
                break;
            case "exit-signal":
                ch.OnExitSignal(req.Signal ?? "", req.SignalMessage ?? "");
                break;
        }
        if (req.WantReply)
        {
            // keepalive@openssh.com from ClientAliveInterval lands here; any reply proves we are alive.
            var m = new byte[5];
            m[0] = SshMsg.ChannelFailure;
            BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(1), ch.RemoteId);
            await Transport.SendAsync(m, default, ch, fromReader: true, ct).ConfigureAwait(false);
        }
    }

    private async ValueTask OnChannelOpenAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var open = SshMessages.ParseChannelOpen(payload.Span);
        var (type, sender, window, maxPacket, addr, port, origin, originPort) =
            (open.Type, open.Sender, open.Window, open.MaxPacket, open.Address, open.Port, open.Originator, open.OriginatorPort);
        SshRemoteForward? forward = null;
        if (type == "forwarded-tcpip")
        {
            lock (_lock)
            {
                if (!_forwards.TryGetValue((addr, (int)port), out forward))
                    forward = _forwards.Values.FirstOrDefault(f => f.BoundPort == (int)port);
            }
        }
        if (forward is null)
        {
            using var w = new SshWriter();
            w.Byte(SshMsg.ChannelOpenFailure).UInt32(sender).UInt32(type == "forwarded-tcpip" ? 1u : 3u)
                .String(type == "forwarded-tcpip" ? "no such forward" : "unsupported channel type").String("");
            await Transport.SendAsync(w.ToArray(), default, null, fromReader: true, ct).ConfigureAwait(false);
            return;
        }
        var ch = NewChannel(collect: false);
        ch.OnOpenConfirmation(sender, window, maxPacket);
        using (var w = new SshWriter())
        {
            w.Byte(SshMsg.ChannelOpenConfirmation).UInt32(sender).UInt32(ch.LocalId).UInt32(ch.WindowSize).UInt32(ch.MaxPacket);
            await Transport.SendAsync(w.ToArray(), default, null, fromReader: true, ct).ConfigureAwait(false);
        }
        forward.Dispatch(new SshChannelStream(ch, origin, (int)originPort));
    }

    // ------------------------------------------------------------------ timer: keepalive and time-based re-key

    private async Task TimerLoopAsync()
    {
        var interval = _options.KeepaliveInterval;
        var tick = interval > TimeSpan.Zero
            ? TimeSpan.FromMilliseconds(Math.Clamp(interval.TotalMilliseconds / 4, 50, 1000))
            : TimeSpan.FromSeconds(1);
        using var timer = new PeriodicTimer(tick);
        try
        {
            while (await timer.WaitForNextTickAsync(_lifetime.Token).ConfigureAwait(false))
            {
                var now = Environment.TickCount64;
                if (_keepaliveSend.IsCompleted)
                    _keepaliveSend = RunQuietlyAsync(Transport.RekeyIfDueAsync(_lifetime.Token).AsTask());
                if (interval <= TimeSpan.Zero) continue;
                var silence = now - Transport.LastReceiveTicks;
                var ms = (long)interval.TotalMilliseconds;
                if (silence >= ms * (_options.KeepaliveCountMax + 1))
                {
                    await AbortAsync(new SshException(SshErrorIds.KeepaliveTimeout, KtErrorCategory.OperationTimeout,
                        $"The SSH server did not answer for {silence / 1000.0:0.#} s ({_options.KeepaliveCountMax} keepalives unanswered).")).ConfigureAwait(false);
                    return;
                }
                if (silence >= ms && now - _lastKeepaliveTicks >= ms && _keepaliveSend.IsCompleted)
                {
                    _lastKeepaliveTicks = now;
                    // Sent without waiting: a stalled peer may block the write, and the silence check above must keep running.
                    _keepaliveSend = RunQuietlyAsync(GlobalRequestAsync("keepalive@openssh.com", default, wantReply: true, _lifetime.Token));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static async Task RunQuietlyAsync(Task t)
    {
        try
        {
            await t.ConfigureAwait(false);
        }
        catch (Exception e) when (e is SshException or OperationCanceledException or ObjectDisposedException)
        {
            // The connection's failure is reported through AbortAsync; this send only probes liveness.
        }
    }

    // ------------------------------------------------------------------ global requests

    /// <summary>
    /// Sends a global request and, with <paramref name="wantReply"/>, waits for its reply: the REQUEST_SUCCESS data, or
    /// null when refused. A cancel that lands after the request went out hands the reply still to come to
    /// <paramref name="abandoned"/>: the server acts on the request all the same.
    /// </summary>
    internal async Task<byte[]?> GlobalRequestAsync(string name, ReadOnlyMemory<byte> data, bool wantReply, CancellationToken ct,
        Action<Task<byte[]?>>? abandoned = null)
    {
        using var w = new SshWriter();
        w.Byte(SshMsg.GlobalRequest).String(name).Boolean(wantReply);
        var guard = new GlobalGuard(this, wantReply);
        try
        {
            await Transport.SendAsync(w.ToArray(), data, guard, fromReader: false, ct).ConfigureAwait(false);
            return wantReply ? await guard.Reply.Task.WaitAsync(ct).ConfigureAwait(false) : null;
        }
        catch (OperationCanceledException) when (guard.Sent && abandoned is not null)
        {
            abandoned(guard.Reply.Task);
            throw;
        }
    }

    /// <summary>Replies to global requests come in request order; the slot is queued under the write lock.</summary>
    private sealed class GlobalGuard(SshClient client, bool wantReply) : ISendGuard
    {
        public TaskCompletionSource<byte[]?> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The request went out with its reply slot queued.</summary>
        public volatile bool Sent;

        public bool OnSending(byte msg)
        {
            if (!wantReply) return true;
            lock (client._lock)
            {
                if (client._terminated.Task.IsCompleted) throw client._terminated.Task.Result;
                client._globalReplies.Enqueue(Reply);
            }
            Sent = true;
            return true;
        }
    }

    // ------------------------------------------------------------------ channels

    private SshChannel NewChannel(bool collect)
    {
        lock (_lock)
        {
            if (_terminated.Task.IsCompleted) throw _terminated.Task.Result;
            while (_channels.ContainsKey(_nextChannelId)) _nextChannelId++;
            var ch = new SshChannel(this, _nextChannelId++, _options.WindowSize, _options.MaxPacketSize, collect);
            _channels.Add(ch.LocalId, ch);
            return ch;
        }
    }

    private async Task<SshChannel> OpenChannelAsync(string type, ReadOnlyMemory<byte> extra, bool collect, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var ch = NewChannel(collect);
        using (var w = new SshWriter())
        {
            w.Byte(SshMsg.ChannelOpen).String(type).UInt32(ch.LocalId).UInt32(ch.WindowSize).UInt32(ch.MaxPacket).Raw(extra.Span);
            try
            {
                await Transport.SendAsync(w.ToArray(), default, null, fromReader: false, ct).ConfigureAwait(false);
            }
            catch
            {
                // Never sent (cancelled, or the connection failed): the server knows nothing of this channel id.
                lock (_lock) _channels.Remove(ch.LocalId);
                throw;
            }
        }
        try
        {
            await ch.Opened.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The reply may still come: an abandoned channel is closed as soon as it is confirmed.
            if (!ch.Abandon()) await ch.SendCloseAsync(fromReader: false, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        return ch;
    }

    /// <summary>Opens a <c>direct-tcpip</c> channel (<c>ssh -L</c>/<c>-W</c>): sshd connects to host:port for us.</summary>
    public async Task<SshChannelStream> OpenDirectTcpIpAsync(string host, int port, string originatorAddress = "127.0.0.1", int originatorPort = 0, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        using var w = new SshWriter();
        w.String(host).UInt32((uint)port).String(originatorAddress).UInt32((uint)originatorPort);
        var ch = await OpenChannelAsync("direct-tcpip", w.ToArray(), collect: false, cancellationToken).ConfigureAwait(false);
        return new SshChannelStream(ch, originatorAddress, originatorPort);
    }

    /// <summary>Runs <paramref name="command"/> in a <c>session</c> channel and collects its output and exit.</summary>
    public async Task<SshExecResult> ExecAsync(string command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var ch = await OpenChannelAsync("session", default, collect: true, cancellationToken).ConfigureAwait(false);
        try
        {
            using var w = new SshWriter();
            w.String(command);
            if (!await ch.RequestAsync("exec", wantReply: true, w.ToArray(), cancellationToken).ConfigureAwait(false))
                throw new SshException(SshErrorIds.ChannelRequestFailed, KtErrorCategory.InvalidOperation, "The SSH server refused to run the command.", null, command);
            await ch.SendEofAsync(cancellationToken).ConfigureAwait(false);
            await ch.Closed.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (_terminated.Task.IsCompleted && ch.ExitStatus is null && ch.ExitSignal is null) throw _terminated.Task.Result;
            return new SshExecResult(ch.ExitStatus, ch.ExitSignal, ch.TakeStdout(), ch.TakeStderr());
        }
        finally
        {
            try
            {
                await ch.SendCloseAsync(fromReader: false, CancellationToken.None).ConfigureAwait(false);
            }
            catch (SshException)
            {
                // Already reported by the await above.
            }
        }
    }

    /// <summary>
    /// Asks sshd to listen on <paramref name="bindAddress"/>:<paramref name="port"/> (0 = any free port) and hands
    /// each incoming connection to <paramref name="handler"/>, which owns the stream until it returns.
    /// </summary>
    public async Task<SshRemoteForward> ForwardRemoteAsync(string bindAddress, int port, Func<SshChannelStream, CancellationToken, Task> handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(bindAddress);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        using var w = new SshWriter();
        w.String(bindAddress).UInt32((uint)port);
        // Cancelled once sent: if sshd then listens, nothing of ours would ever cancel it, so its reply takes it back.
        var reply = await GlobalRequestAsync("tcpip-forward", w.ToArray(), wantReply: true, cancellationToken,
                abandoned: late => late.ContinueWith(t =>
                {
                    // A connection that failed first took the listener with it (and the fault is seen here, not left unobserved).
                    if (t.Exception is not null || t.Result is not { } granted) return;
                    try
                    {
                        _ = CancelListeningAsync(bindAddress, BoundPort(port, granted));
                    }
                    catch (SshException)
                    {
                        // A grant without its port: nothing to name in a cancel.
                    }
                }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)).ConfigureAwait(false)
            ?? throw new SshException(SshErrorIds.ForwardRejected, KtErrorCategory.PermissionDenied,
                $"The SSH server refused to listen on {bindAddress}:{port} (port in use, or forwarding disabled).", null, $"{bindAddress}:{port}");
        var bound = BoundPort(port, reply);
        var forward = new SshRemoteForward(this, bindAddress, bound, handler);
        lock (_lock) _forwards[(bindAddress, bound)] = forward;
        return forward;
    }

    /// <summary>The port a granted <c>tcpip-forward</c> listens on: the one asked for, or for 0 the one sshd's reply names.</summary>
    private static int BoundPort(int asked, byte[] grant) => asked == 0 ? (int)new SshReader(grant).ReadUInt32() : asked;

    internal async Task CancelRemoteForwardAsync(SshRemoteForward forward)
    {
        try
        {
            await CancelListeningAsync(forward.BindAddress, forward.BoundPort, throwOnFailure: true).ConfigureAwait(false);
        }
        finally
        {
            // Opens that race the reply are still dispatched until here (RFC 4254 §7.1).
            lock (_lock) _forwards.Remove((forward.BindAddress, forward.BoundPort));
        }
    }

    /// <summary><c>cancel-tcpip-forward</c>, bounded by 10 s; without <paramref name="throwOnFailure"/> a failure is dropped.</summary>
    private async Task CancelListeningAsync(string bindAddress, int port, bool throwOnFailure = false)
    {
        using var w = new SshWriter();
        w.String(bindAddress).UInt32((uint)port);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await GlobalRequestAsync("cancel-tcpip-forward", w.ToArray(), wantReply: true, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (!throwOnFailure && e is SshException or OperationCanceledException or ObjectDisposedException)
        {
            // The connection is gone, and the listener with it.
        }
    }

    // ------------------------------------------------------------------ teardown

    /// <summary>Ends the connection with <paramref name="error"/>: every channel and waiter sees it, once.</summary>
    private async Task AbortAsync(Exception error)
    {
        List<SshChannel> channels;
        List<TaskCompletionSource<byte[]?>> replies;
        lock (_lock)
        {
            if (_terminated.Task.IsCompleted) return;
            _terminated.TrySetResult(error);
            channels = [.. _channels.Values];
            _channels.Clear();
            replies = [.. _globalReplies];
            _globalReplies.Clear();
        }
        Transport.Fail(error);
        await _lifetime.CancelAsync().ConfigureAwait(false);
        try
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A stream that fails to close is closed as far as we are concerned; the channels must still hear of the end.
        }
        foreach (var c in channels) c.Fail(error);
        foreach (var r in replies) r.TrySetException(error);
        try
        {
            Disconnected?.Invoke(this, new SshDisconnectedEventArgs(error));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A subscriber's bug must not stop the teardown.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (IsConnected)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                using var w = new SshWriter();
                w.Byte(SshMsg.Disconnect).UInt32(11).String("closed by KtConnect").String("");
                await Transport.SendAsync(w.ToArray(), default, null, fromReader: false, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SshException or OperationCanceledException)
            {
                // Best effort: the peer may be gone already.
            }
        }
        // Before the peer's answer to our DISCONNECT (it closes) can fail a send as a lost connection.
        Transport.Fail(SshException.Closed());
        await AbortAsync(SshException.Closed()).ConfigureAwait(false);
        if (_readLoop is not null) await _readLoop.ConfigureAwait(false);
        if (_timerLoop is not null) await _timerLoop.ConfigureAwait(false);
        await _keepaliveSend.ConfigureAwait(false);
        Transport.Dispose();
        if (_ownsIdentity) Identity.Dispose();
        _lifetime.Dispose();
    }
}
