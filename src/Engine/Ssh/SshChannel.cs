using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// One channel (RFC 4254 §5): open handshake, flow control in both directions, EOF, the CLOSE handshake,
/// channel requests and their replies. Received data goes into a ring buffer bounded by the window we
/// granted (or, for exec, into stdout/stderr collectors). The reader loop calls the On* methods; the
/// application calls Read/Write/Close.
/// </summary>
internal sealed class SshChannel : ISendGuard
{
    private readonly SshClient _client;
    private readonly object _lock = new();
    private readonly AsyncSignal _dataSignal = new();
    private readonly AsyncSignal _windowSignal = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _dataHeader = new byte[9];
    private readonly byte[] _adjustMsg = new byte[9];
    private readonly uint _windowSize;
    private readonly uint _maxPacket;
    private readonly Queue<TaskCompletionSource<bool>> _requests = new();
    private readonly TaskCompletionSource _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private long _remoteWindow;
    private uint _remoteMaxPacket;
    private byte[] _ring = [];
    private int _head;
    private int _count;
    private uint _localWindow;
    private uint _unacked;
    private bool _eofReceived;
    private bool _closeReceived;
    private bool _eofSent;
    private bool _closeSent;
    private bool _abandoned;
    private int _wakePending;
    private Exception? _error;
    private readonly MemoryStream? _stdout;
    private readonly MemoryStream? _stderr;

    public SshChannel(SshClient client, uint localId, uint windowSize, uint maxPacket, bool collect)
    {
        _client = client;
        LocalId = localId;
        _windowSize = windowSize;
        _maxPacket = maxPacket;
        _localWindow = windowSize;
        if (collect)
        {
            _stdout = new MemoryStream();
            _stderr = new MemoryStream();
        }
    }

    public uint LocalId { get; }

    public uint RemoteId { get; private set; }

    public uint WindowSize => _windowSize;

    public uint MaxPacket => _maxPacket;

    public int? ExitStatus { get; private set; }

    public string? ExitSignal { get; private set; }

    public string? ExitSignalMessage { get; private set; }

    public Task Opened => _opened.Task;

    /// <summary>Completes when both CLOSEs have been exchanged or the connection failed.</summary>
    public Task Closed => _closed.Task;

    public bool IsCloseSent
    {
        get
        {
            lock (_lock) return _closeSent;
        }
    }

    public byte[] TakeStdout() => _stdout?.ToArray() ?? [];

    public byte[] TakeStderr() => _stderr?.ToArray() ?? [];

    // ------------------------------------------------------------ reader-loop side

    public void OnOpenConfirmation(uint remoteId, uint window, uint maxPacket)
    {
        lock (_lock)
        {
            RemoteId = remoteId;
            _remoteWindow = window;
            _remoteMaxPacket = Math.Max(1u, maxPacket);
            BinaryPrimitives.WriteUInt32BigEndian(_dataHeader.AsSpan(1), remoteId);
            _dataHeader[0] = SshMsg.ChannelData;
            _adjustMsg[0] = SshMsg.ChannelWindowAdjust;
            BinaryPrimitives.WriteUInt32BigEndian(_adjustMsg.AsSpan(1), remoteId);
        }
        _opened.TrySetResult();
    }

    public void OnOpenFailure(Exception error)
    {
        lock (_lock) _error = error;
        _opened.TrySetException(error);
        _closed.TrySetResult();
    }

    /// <summary>True when the caller gave up waiting for the open reply; the channel is closed as soon as it opens.</summary>
    public bool Abandon()
    {
        lock (_lock)
        {
            if (_opened.Task.IsCompleted) return false;
            _abandoned = true;
            return true;
        }
    }

    public bool IsAbandoned
    {
        get
        {
            lock (_lock) return _abandoned;
        }
    }

    public void OnWindowAdjust(uint n)
    {
        lock (_lock)
        {
            _remoteWindow += n;
            if (_remoteWindow > uint.MaxValue)
                throw SshException.Protocol(SshErrorIds.ProtocolViolation, "The server overflowed a channel window.");
        }
        _windowSignal.Set();
    }

    /// <summary>
    /// Stores received data; returns a window adjustment to send now (collectors only), else 0. The reader is not
    /// woken here: the client wakes it with <see cref="WakeReader"/> once it has handled every packet it has read.
    /// </summary>
    public uint OnData(ReadOnlySpan<byte> data, bool extended)
    {
        uint adjust = 0;
        lock (_lock)
        {
            if (data.Length > _localWindow || data.Length > _maxPacket)
                throw SshException.Protocol(SshErrorIds.ProtocolViolation, $"The server sent {data.Length} bytes on channel {LocalId}, beyond its window or packet size.");
            if (_eofReceived) throw SshException.Protocol(SshErrorIds.ProtocolViolation, $"The server sent data on channel {LocalId} after EOF.");
            _localWindow -= (uint)data.Length;
            if (_stdout is not null)
            {
                (extended ? _stderr! : _stdout).Write(data);
                _unacked += (uint)data.Length;
                adjust = TakeAdjustLocked();
            }
            else if (extended)
            {
                // Streams have no stderr; count it consumed so the window keeps moving.
                _unacked += (uint)data.Length;
                adjust = TakeAdjustLocked();
            }
            else
            {
                AppendLocked(data);
            }
        }
        return adjust;
    }

    /// <summary>
    /// True the first time this channel receives data after its reader was last woken, so the client lists it once
    /// in the batch it wakes with <see cref="WakeReader"/>. The reader loop may be dispatching on one thread while
    /// another still wakes the batch it queued before its read.
    /// </summary>
    public bool TakeWakeSlot() => Interlocked.Exchange(ref _wakePending, 1) == 0;

    /// <summary>
    /// Between socket reads: wakes the application's reader for the data <see cref="OnData"/> stored.
    /// It continues on this thread until it next waits: it moves a whole batch of packets on at once, with no
    /// thread hop. No lock is held here.
    /// </summary>
    public void WakeReader()
    {
        Volatile.Write(ref _wakePending, 0);
        _dataSignal.Set(inline: true);
    }

    // Top the window up once three packets are consumed (OpenSSH's rule), or half a small window: waiting for half of
    // a 2 MiB window let the server stall while we worked through what the socket buffers held.
    private uint TakeAdjustLocked()
    {
        if (_unacked < Math.Min(_windowSize / 2, 3 * _maxPacket) || _closeReceived) return 0;
        var a = _unacked;
        _unacked = 0;
        _localWindow += a;
        return a;
    }

    private void AppendLocked(ReadOnlySpan<byte> data)
    {
        if (_count + data.Length > _ring.Length)
        {
            var size = Math.Max(_ring.Length * 2, 16 * 1024);
            while (size < _count + data.Length) size *= 2;
            var nr = ArrayPool<byte>.Shared.Rent(size);
            var first = Math.Min(_count, _ring.Length - _head);
            _ring.AsSpan(_head, first).CopyTo(nr);
            _ring.AsSpan(0, _count - first).CopyTo(nr.AsSpan(first));
            if (_ring.Length > 0) ArrayPool<byte>.Shared.Return(_ring);
            _ring = nr;
            _head = 0;
        }
        var tail = (_head + _count) % _ring.Length;
        var n1 = Math.Min(data.Length, _ring.Length - tail);
        data[..n1].CopyTo(_ring.AsSpan(tail));
        data[n1..].CopyTo(_ring);
        _count += data.Length;
    }

    public void OnEof()
    {
        lock (_lock) _eofReceived = true;
        _dataSignal.Set();
    }

    /// <summary>Peer's CLOSE: nothing more will be received and nothing more may be sent after our CLOSE.</summary>
    public void OnClose()
    {
        lock (_lock)
        {
            _closeReceived = true;
            _eofReceived = true;
            _error ??= new SshException(SshErrorIds.ChannelClosed, KtErrorCategory.ConnectionError, "The SSH channel was closed by the server.");
            while (_requests.Count > 0) _requests.Dequeue().TrySetResult(false);
        }
        _dataSignal.Set();
        _windowSignal.Set();
    }

    /// <summary>Both CLOSEs exchanged: the channel id is free again.</summary>
    public void OnFinished()
    {
        ReleaseBuffers();
        _closed.TrySetResult();
    }

    /// <summary>The connection died: every waiter sees the connection's typed error.</summary>
    public void Fail(Exception error)
    {
        lock (_lock)
        {
            _error = error;
            _closeReceived = true;
            while (_requests.Count > 0) _requests.Dequeue().TrySetException(error);
        }
        _opened.TrySetException(error);
        _ = _opened.Task.Exception;
        _dataSignal.Set();
        _windowSignal.Set();
        _closed.TrySetResult();
    }

    public void OnRequestReply(bool success)
    {
        TaskCompletionSource<bool>? t = null;
        lock (_lock)
        {
            if (_requests.Count > 0) t = _requests.Dequeue();
        }
        if (t is null) throw SshException.Protocol(SshErrorIds.ProtocolViolation, $"The server replied to a request never made on channel {LocalId}.");
        t.TrySetResult(success);
    }

    public void OnExitStatus(uint code) => ExitStatus = unchecked((int)code);

    public void OnExitSignal(string signal, string message)
    {
        ExitSignal = signal;
        ExitSignalMessage = message;
    }

    // ------------------------------------------------------------ ISendGuard

    public bool OnSending(byte msg)
    {
        lock (_lock)
        {
            if (msg == SshMsg.ChannelClose)
            {
                if (_closeSent) return false;
                _closeSent = true;
                return true;
            }
            if (_closeSent)
            {
                // Nothing more is owed after our CLOSE. A reply to a request that crossed it (sshd's keepalive picks
                // any open channel) is dropped too: failing it would fail the reader loop, and every other channel.
                if (msg is SshMsg.ChannelWindowAdjust or SshMsg.ChannelEof or SshMsg.ChannelSuccess or SshMsg.ChannelFailure) return false;
                throw ClosedError();
            }
            if (msg == SshMsg.ChannelEof)
            {
                if (_eofSent) return false;
                _eofSent = true;
            }
            else if (msg == SshMsg.ChannelData && _eofSent)
            {
                throw new InvalidOperationException("Cannot write to an SSH channel after its write side was completed.");
            }
            return true;
        }
    }

    private Exception ClosedError() =>
        _error is SshException { ErrorId: not SshErrorIds.ChannelClosed } e ? e
        : new SshException(SshErrorIds.ChannelClosed, KtErrorCategory.ConnectionError, "The SSH channel is closed.");

    // ------------------------------------------------------------ application side

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct)
    {
        if (buffer.IsEmpty)
        {
            await WaitReadableAsync(ct).ConfigureAwait(false);
            return 0;
        }
        while (true)
        {
            int n;
            uint adjust;
            lock (_lock)
            {
                if (_count > 0)
                {
                    n = Math.Min(buffer.Length, _count);
                    var first = Math.Min(n, _ring.Length - _head);
                    _ring.AsSpan(_head, first).CopyTo(buffer.Span);
                    _ring.AsSpan(0, n - first).CopyTo(buffer.Span[first..]);
                    _head = (_head + n) % _ring.Length;
                    _count -= n;
                    _unacked += (uint)n;
                    adjust = TakeAdjustLocked();
                }
                else if (_eofReceived)
                {
                    // The peer's EOF or CLOSE: all it sent has been read, so the end is clean even if the connection
                    // failed after it.
                    return 0;
                }
                else if (_error is not null)
                {
                    throw _error;
                }
                else
                {
                    n = 0;
                    adjust = 0;
                }
            }
            if (n > 0)
            {
                if (adjust > 0)
                {
                    try
                    {
                        await SendWindowAdjustAsync(adjust, fromReader: false, ct).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SshException)
                    {
                        // The bytes are the reader's already: they are returned, and the window still owed goes with
                        // the next read's (a failed connection fails that read).
                        lock (_lock)
                        {
                            _localWindow -= adjust;
                            _unacked += adjust;
                        }
                    }
                }
                return n;
            }
            await _dataSignal.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A zero-byte read, as sockets do it: completes once a read would not wait (data, EOF or a failure), so relays
    /// can wait for data without holding a buffer (an idle tun or SOCKS flow over SSH pins none).
    /// </summary>
    private async ValueTask WaitReadableAsync(CancellationToken ct)
    {
        while (true)
        {
            lock (_lock)
            {
                if (_count > 0 || _eofReceived || _error is not null) return;
            }
            await _dataSignal.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    public ValueTask SendWindowAdjustAsync(uint amount, bool fromReader, CancellationToken ct)
    {
        // The message buffer is reused: adjusts come from the single application reader, or (collectors) from the reader loop.
        var msg = fromReader ? new byte[9] : _adjustMsg;
        msg[0] = SshMsg.ChannelWindowAdjust;
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(1), RemoteId);
        BinaryPrimitives.WriteUInt32BigEndian(msg.AsSpan(5), amount);
        return _client.Transport.SendAsync(msg, default, this, fromReader, ct);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var limit = Math.Min((long)_client.Transport.MaxPayload - 9, SshClientOptions.MaxChannelPacketSize);
            while (!data.IsEmpty)
            {
                int n;
                while (true)
                {
                    lock (_lock)
                    {
                        if (_closeSent || _closeReceived) throw ClosedError();
                        if (_remoteWindow > 0)
                        {
                            n = (int)Math.Min(Math.Min(data.Length, _remoteWindow), Math.Min(_remoteMaxPacket, limit));
                            _remoteWindow -= n;
                            break;
                        }
                    }
                    await _windowSignal.WaitAsync(ct).ConfigureAwait(false);
                }
                BinaryPrimitives.WriteUInt32BigEndian(_dataHeader.AsSpan(5), (uint)n);
                try
                {
                    await _client.Transport.SendAsync(_dataHeader, data[..n], this, fromReader: false, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Cancelled before it was written: the window it took is the server's still.
                    lock (_lock) _remoteWindow += n;
                    throw;
                }
                data = data[n..];
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Half-close: the server sees EOF; reading goes on.</summary>
    public async ValueTask SendEofAsync(CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var m = new byte[5];
            m[0] = SshMsg.ChannelEof;
            BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(1), RemoteId);
            await _client.Transport.SendAsync(m, default, this, fromReader: false, ct).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public ValueTask SendCloseAsync(bool fromReader, CancellationToken ct)
    {
        var m = new byte[5];
        m[0] = SshMsg.ChannelClose;
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(1), RemoteId);
        return _client.Transport.SendAsync(m, default, this, fromReader, ct);
    }

    /// <summary>Sends a channel request; with <paramref name="wantReply"/> returns whether the server accepted it.</summary>
    public async Task<bool> RequestAsync(string type, bool wantReply, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        using var w = new SshWriter();
        w.Byte(SshMsg.ChannelRequest).UInt32(RemoteId).String(type).Boolean(wantReply);
        var head = w.ToArray();
        var reply = new RequestGuard(this, wantReply);
        await _client.Transport.SendAsync(head, data, reply, fromReader: false, ct).ConfigureAwait(false);
        return !wantReply || await reply.Completion.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Queues the reply slot under the transport lock so replies match requests in wire order.</summary>
    private sealed class RequestGuard(SshChannel channel, bool wantReply) : ISendGuard
    {
        public TaskCompletionSource<bool> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool OnSending(byte msg)
        {
            if (!channel.OnSending(msg)) return false;
            if (wantReply)
            {
                lock (channel._lock) channel._requests.Enqueue(Completion);
            }
            return true;
        }
    }

    private void ReleaseBuffers()
    {
        lock (_lock)
        {
            if (_count == 0 && _ring.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_ring);
                _ring = [];
                _head = 0;
            }
        }
    }
}
