using System.Buffers;

namespace KtConnect.Engine.Net;

public enum TcpState
{
    /// <summary>SYN seen, the dialer is opening the far end; no SYN-ACK yet (a refusal becomes a RST).</summary>
    Dialing,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    Closing,
    TimeWait,
    CloseWait,
    LastAck,
    Closed,
}

/// <summary>Tunables of the TCP endpoint; defaults suit a local tun with a fast peer.</summary>
public sealed record TcpOptions
{
    public int ReceiveBuffer { get; init; } = 256 * 1024;
    /// <summary>
    /// The receive buffer holds at least this many of our full-sized segments: with the big tun MTU (64 KiB
    /// segments) 256 KiB would be a window of only four segments, which stalls a fast sender; with a 1500 MTU the
    /// byte figure decides, and the window stays small enough in segments for loss recovery without SACK.
    /// </summary>
    public int MinReceiveSegments { get; init; } = 16;
    /// <summary>Bytes queued for the client; 1 MiB keeps a 64 KiB-segment flow from the far end busy.</summary>
    public int SendBuffer { get; init; } = 1024 * 1024;
    /// <summary>Our window-scale shift, offered when the peer offers scaling.</summary>
    public int WindowScale { get; init; } = 7;
    public int MinRtoMs { get; init; } = 200;
    public int MaxRtoMs { get; init; } = 60_000;
    public int InitialRtoMs { get; init; } = 1000;
    public int MaxRetransmits { get; init; } = 12;
    public int SynAckRetries { get; init; } = 5;
    public int DelayedAckMs { get; init; } = 20;
    /// <summary>Bounded TIME-WAIT: the client picks fresh ports, so a short one is enough here.</summary>
    public int TimeWaitMs { get; init; } = 2000;
    public int MaxOutOfOrderSegments { get; init; } = 128;
}

/// <summary>
/// One TCP flow seen from the side we impersonate (the destination the local OS connected to). A
/// passive, timer-less state machine: segments come in through <see cref="OnSegment"/>, time moves through
/// <see cref="Tick"/>, the application side reads and writes through <see cref="ReadAsync"/> and
/// <see cref="WriteAsync"/>. All state is guarded by one lock; packets are emitted to an <see cref="IPacketSink"/>.
/// </summary>
public sealed class TcpConnection
{
    private readonly object _gate = new();
    private readonly IPacketSink _sink;
    private readonly bool _partialChecksums;
    private readonly IClock _clock;
    private readonly TcpOptions _options;
    private readonly NetCounters _counters;
    private readonly MemoryBudget _budget;
    private readonly ByteRing _recv;
    private readonly ByteRing _send;
    private readonly List<OutOfOrder> _ooo = [];
    private readonly AsyncSignal _readable = new();
    private readonly AsyncSignal _writable = new();
    private bool _inSegment;
    private bool _readablePending;
    private readonly int _ourMss;

    // Send sequence space.
    private readonly uint _iss;
    private uint _sndUna;
    private uint _sndNxt;
    private uint _sndMax;
    private uint _sndWl1;
    private uint _sndWl2;
    private long _sndWnd;
    private int _sndScale;
    private int _sndMss;
    private bool _finQueued;
    private bool _finSent;

    // Receive sequence space.
    private readonly uint _irs;
    private uint _rcvNxt;
    private int _rcvScale;
    // RFC 7323: scaling is on only when both SYNs carry the option; we answer it whenever the client sent it.
    private readonly bool _windowScaling;
    private uint _rcvAdvertisedEdge;
    private bool _finReceived;
    private int _oooBytes;

    // Retransmission (RFC 6298) and congestion control (RFC 5681 with NewReno recovery, RFC 6582).
    private double _srtt;
    private double _rttvar;
    private int _rto;          // the timer's current value: _rtoBase doubled once per timeout (RFC 6298 5.5)
    private int _rtoBase;      // what the estimator says (2.2/2.3), or the initial RTO before any sample
    private int _backoffs;     // consecutive timeouts since the backoff was last cleared
    private uint _backoffRecover; // SND.MAX at the last timeout: an ACK at or past it ends the loss episode
    private long _rtoDeadline;
    private int _retransmits;
    private bool _rttTiming;
    private uint _rttSeq;
    private long _rttStart;
    private long _cwnd;
    private long _ssthresh = long.MaxValue;
    private int _dupAcks;
    private bool _inRecovery;
    private uint _recover;
    private long _persistDeadline;
    private int _persistBackoff;

    private long _ackDeadline;
    private int _segmentsSinceAck;
    private long _timeWaitDeadline;
    private bool _reset;

    // The stack's timer visits a flow only while it has something to time: a deadline armed, an empty buffer to give back,
    // or an end to be forgotten at. Tick takes a flow with none of these off the stack's list and every entry point puts it
    // back on once it has one again, both under the lock, so a parking never races an arming.
    private readonly Action<TcpConnection, bool>? _timerList;
    private bool _onTimerList = true;

    private struct OutOfOrder
    {
        public uint Seq;
        public byte[] Data;
        public int Length;
        public bool Fin;
    }

    internal TcpConnection(FlowKey key, in TcpSegment syn, uint iss, int ourMss, IPacketSink sink, IClock clock, TcpOptions options,
        NetCounters counters, MemoryBudget budget, Action<TcpConnection, bool>? timerList = null)
    {
        _timerList = timerList;
        Key = key;
        _sink = sink;
        _clock = clock;
        _options = options;
        _counters = counters;
        _budget = budget;
        _ourMss = ourMss;
        _partialChecksums = sink.TakesPartialTcpChecksums;
        _recv = new ByteRing((int)Math.Min(Math.Max(options.ReceiveBuffer, (long)options.MinReceiveSegments * ourMss), 1 << 30), budget);
        _send = new ByteRing(options.SendBuffer, budget);
        _iss = iss;
        _sndUna = iss;
        _sndNxt = iss;
        _sndMax = iss;
        _irs = syn.Sequence;
        _rcvNxt = syn.Sequence + 1;
        _windowScaling = syn.WindowScale >= 0;
        if (_windowScaling)
        {
            _sndScale = syn.WindowScale;
            _rcvScale = options.WindowScale;
        }
        _sndMss = Math.Min(syn.Mss != 0 ? syn.Mss : (key.IsV6 ? 1220 : 536), ourMss);
        _sndWnd = syn.Window; // a SYN's window is never scaled
        _sndWl1 = syn.Sequence;
        _rto = options.InitialRtoMs;
        _rtoBase = options.InitialRtoMs;
        _cwnd = 10L * _sndMss;
        State = TcpState.Dialing;
    }

    /// <summary>The flow as the client sent it: Source is the client, Destination the address it dialed.</summary>
    public FlowKey Key { get; }

    public TcpState State { get; private set; }

    /// <summary>True once the flow has nothing left to do and can be forgotten.</summary>
    public bool IsClosed => State == TcpState.Closed;

    internal int SendMss => _sndMss;

    internal long CongestionWindow
    {
        get
        {
            lock (_gate) return _cwnd;
        }
    }

    internal int RetransmissionTimeoutMs
    {
        get
        {
            lock (_gate) return _rto;
        }
    }

    /// <summary>When TIME-WAIT ends (clock milliseconds); meaningful in that state only.</summary>
    internal long TimeWaitDeadline
    {
        get
        {
            lock (_gate) return _timeWaitDeadline;
        }
    }

    /// <summary>Bytes the client sent that the application has not read yet.</summary>
    public int BufferedReceive
    {
        get
        {
            lock (_gate) return _recv.Count;
        }
    }

    /// <summary>Bytes written by the application and not yet acknowledged by the client.</summary>
    public int BufferedSend
    {
        get
        {
            lock (_gate) return _send.Count;
        }
    }

    // ---------------------------------------------------------------- application side

    /// <summary>The dial succeeded: answer the SYN with a SYN-ACK.</summary>
    public void Accept()
    {
        lock (_gate)
        {
            if (State != TcpState.Dialing) return;
            State = TcpState.SynReceived;
            _sndNxt = _iss + 1;
            _sndMax = _sndNxt;
            SendSynAck();
            _rtoDeadline = Now + _rto;
            RejoinTimerList();
        }
    }

    /// <summary>The dial failed: reset the client's connection attempt.</summary>
    public void Refuse()
    {
        lock (_gate)
        {
            if (State != TcpState.Dialing) return;
            Emit(TcpFlags.Rst | TcpFlags.Ack, 0, _rcvNxt, 0, 0, false);
            Interlocked.Increment(ref _counters.TcpResetsSent);
            CloseLocked(reset: true);
            RejoinTimerList();
        }
    }

    /// <summary>Reads what the client sent. Returns 0 after the client's FIN; throws after a reset.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_gate)
            {
                if (_recv.Count > 0)
                {
                    var n = Math.Min(buffer.Length, _recv.Count);
                    _recv.Peek(0, buffer.Span[..n]);
                    _recv.Discard(n);
                    MaybeSendWindowUpdate();
                    RejoinTimerList();
                    TrimIfDone();
                    return n;
                }
                if (_finReceived) return 0;
                if (_reset || State == TcpState.Closed) throw Reset();
            }
            await _readable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lends the received bytes that lie in one piece, so a relay can write them on without a copy: empty at the
    /// client's FIN once everything before it was read; throws once the flow was reset. The bytes stay in the receive
    /// buffer (its window stays closed over them) until <see cref="EndRead"/> consumes them. Call after
    /// <see cref="WaitReadableAsync"/>; one loan at a time, and always ended.
    /// </summary>
    public ReadOnlyMemory<byte> BeginRead()
    {
        lock (_gate)
        {
            if (_recv.Count > 0) return _recv.Borrow();
            if (_finReceived) return ReadOnlyMemory<byte>.Empty;
            if (_reset || State == TcpState.Closed) throw Reset();
            throw new InvalidOperationException("BeginRead needs readable data: wait with WaitReadableAsync first.");
        }
    }

    /// <summary>Ends the loan of <see cref="BeginRead"/>, consuming its first <paramref name="consumed"/> bytes.</summary>
    public void EndRead(int consumed)
    {
        lock (_gate)
        {
            _recv.EndBorrow();
            if (consumed > 0 && _recv.Count >= consumed)
            {
                _recv.Discard(consumed);
                MaybeSendWindowUpdate();
                RejoinTimerList();
            }
            TrimIfDone();
        }
    }

    /// <summary>Completes when a read would not wait (data, FIN or reset), so idle flows hold no buffer.</summary>
    public async ValueTask WaitReadableAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_gate)
            {
                if (_recv.Count > 0 || _finReceived || _reset || State == TcpState.Closed) return;
            }
            await _readable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Queues bytes for the client; waits while the send buffer is full (the client's window closed).</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (data.Length > 0)
        {
            lock (_gate)
            {
                ThrowIfCannotWrite();
                var n = _send.Append(data.Span);
                if (n > 0)
                {
                    data = data[n..];
                    if (State is TcpState.Established or TcpState.CloseWait) TrySend(Now);
                    RejoinTimerList();
                    continue;
                }
            }
            await _writable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Lends free space of the send buffer, in one piece and at most <paramref name="max"/> bytes, so a relay can read
    /// the far end's bytes straight into it; waits while the buffer is full (the client's window closed). Throws once
    /// the flow was reset or its sending side shut down. <see cref="EndWrite"/> queues what was written; one loan at a
    /// time, and always ended.
    /// </summary>
    public async ValueTask<Memory<byte>> BeginWriteAsync(int max, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        while (true)
        {
            lock (_gate)
            {
                ThrowIfCannotWrite();
                var space = _send.BorrowFree(max);
                if (!space.IsEmpty) return space;
            }
            await _writable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Ends the loan of <see cref="BeginWriteAsync"/>, queuing its first <paramref name="written"/> bytes for the client.</summary>
    public void EndWrite(Memory<byte> space, int written)
    {
        lock (_gate)
        {
            _send.EndBorrowFree(space, written);
            if (written > 0 && State is TcpState.Established or TcpState.CloseWait) TrySend(Now);
            RejoinTimerList();
        }
    }

    /// <summary>Under the lock: a write is refused once the flow was reset or its sending side shut down.</summary>
    private void ThrowIfCannotWrite()
    {
        if (_reset || State is TcpState.Closed or TcpState.TimeWait) throw Reset();
        if (_finQueued) throw new InvalidOperationException("The connection's sending side is already shut down.");
    }

    /// <summary>No more data for the client: a FIN follows the queued bytes (half-close).</summary>
    public void ShutdownWrite()
    {
        lock (_gate)
        {
            if (_finQueued || _reset || State is TcpState.Closed) return;
            _finQueued = true;
            if (State is TcpState.Established or TcpState.CloseWait) TrySend(Now);
            RejoinTimerList();
        }
    }

    private CancellationTokenSource? _resetSource;

    /// <summary>
    /// Cancelled when the flow is reset, by the client or given up here: a relay waiting on a far end that neither reads
    /// nor writes stops, and closes it, rather than keep it open for a client that is gone.
    /// </summary>
    public CancellationToken ResetToken
    {
        get
        {
            lock (_gate)
            {
                return _reset ? new CancellationToken(canceled: true) : (_resetSource ??= new CancellationTokenSource()).Token;
            }
        }
    }

    /// <summary>Resets the client's connection (the far end failed or reset).</summary>
    public void Abort()
    {
        lock (_gate)
        {
            if (State is TcpState.Closed or TcpState.TimeWait)
            {
                // The client is done; what it sent that the relay could not deliver goes, and so does its buffer.
                _recv.Release();
                return;
            }
            // At the highest sequence sent: after a go-back-N _sndNxt can lie below the client's rcv_nxt, where a reset is
            // ignored; at or past it the reset is taken, or challenged (answered in the Closed state).
            if (State != TcpState.Dialing) Emit(TcpFlags.Rst | TcpFlags.Ack, _sndMax, _rcvNxt, 0, 0, false);
            else Emit(TcpFlags.Rst | TcpFlags.Ack, 0, _rcvNxt, 0, 0, false);
            Interlocked.Increment(ref _counters.TcpResetsSent);
            CloseLocked(reset: true);
            RejoinTimerList();
        }
    }

    /// <summary>Completes when the client has acknowledged everything we sent, or the flow ended.</summary>
    public async Task WaitSendDrainedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_gate)
            {
                if (_send.Count == 0 || _reset || State == TcpState.Closed) return;
            }
            await _writable.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- network side

    /// <summary>
    /// Processes one segment of this flow from the client. When it brings data, FIN or a reset, the flow's reader
    /// continues on this thread after the lock is released (never under it: a continuation must not see half-updated
    /// state), so a short request crosses no thread on its way to the far socket.
    /// </summary>
    public void OnSegment(ReadOnlySpan<byte> packet, in TcpSegment seg)
    {
        bool wake;
        lock (_gate)
        {
            _inSegment = true;
            try
            {
                OnSegmentLocked(packet, seg);
            }
            finally
            {
                _inSegment = false;
            }
            RejoinTimerList();
            wake = _readablePending;
            _readablePending = false;
        }
        // The reader of this flow runs on, here: its next socket write follows the packet without a thread-pool hop.
        if (wake) _readable.Set(inline: true);
    }

    /// <summary>
    /// Readable, raised under the lock. While a segment from the device is processed the wake-up waits until the lock is
    /// released, and then runs the reader inline (see <see cref="OnSegment"/>); elsewhere it goes to the thread pool.
    /// </summary>
    private void SignalReadable()
    {
        if (_inSegment) _readablePending = true;
        else _readable.Set();
    }

    private void OnSegmentLocked(ReadOnlySpan<byte> packet, in TcpSegment seg)
    {
        var now = Now;
        switch (State)
        {
            case TcpState.Closed:
                // As for a flow the stack does not know (RFC 9293 §3.10.7.1): a client that missed our reset, or challenged
                // it (RFC 5961), learns that the connection is gone rather than waiting on it.
                if ((seg.Flags & TcpFlags.Rst) == 0)
                {
                    var (flags, seq, ack) = seg.ResetReply();
                    Emit(flags, seq, ack, 0, 0, false);
                    Interlocked.Increment(ref _counters.TcpResetsSent);
                }
                return;
            case TcpState.Dialing:
                // Retransmitted SYNs wait for the dial; a RST abandons the attempt.
                if ((seg.Flags & TcpFlags.Rst) != 0) CloseLocked(reset: true);
                return;
            case TcpState.SynReceived:
                if (!OnSegmentSynReceived(seg)) return;
                break;
        }
        OnSegmentSynchronized(packet, seg, now);
    }

    /// <summary>Runs expired timers; returns true when the flow is closed and can be removed.</summary>
    public bool Tick()
    {
        lock (_gate)
        {
            var now = Now;
            if (State == TcpState.Closed) return true;
            if (State == TcpState.TimeWait)
            {
                if (now >= _timeWaitDeadline) CloseLocked(reset: false);
                return State == TcpState.Closed;
            }
            if (_ackDeadline != 0 && now >= _ackDeadline) SendAck();
            if (_rtoDeadline != 0 && now >= _rtoDeadline) OnRetransmitTimeout(now);
            if (_persistDeadline != 0 && now >= _persistDeadline) OnPersistTimeout(now);
            if (_recv.Count == 0) _recv.TrimIfEmpty();
            if (_send.Count == 0) _send.TrimIfEmpty();
            if (!NeedsTimer)
            {
                _onTimerList = false;
                _timerList?.Invoke(this, false);
            }
            return State == TcpState.Closed;
        }
    }

    /// <summary>Whether the stack's timer has anything to do for this flow (see <see cref="_timerList"/>).</summary>
    private bool NeedsTimer =>
        _ackDeadline != 0 || _rtoDeadline != 0 || _persistDeadline != 0 || State is TcpState.TimeWait or TcpState.Closed
        || _recv.Trimmable || _send.Trimmable;

    /// <summary>At the end of every entry point that may arm a timer, under the lock: a parked flow that needs the timer again rejoins.</summary>
    private void RejoinTimerList()
    {
        if (_onTimerList || !NeedsTimer) return;
        _onTimerList = true;
        _timerList?.Invoke(this, true);
    }

    private long Now => _clock.NowMilliseconds;

    private static IOException Reset() => new("The connection was reset.", new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.ConnectionReset));

    private bool OnSegmentSynReceived(in TcpSegment seg)
    {
        if ((seg.Flags & TcpFlags.Rst) != 0)
        {
            if (seg.Sequence == _rcvNxt) CloseLocked(reset: true);
            return false;
        }
        if ((seg.Flags & TcpFlags.Syn) != 0)
        {
            // The client did not get our SYN-ACK: send it again (same ISN).
            if (seg.Sequence == _irs) SendSynAck();
            return false;
        }
        if ((seg.Flags & TcpFlags.Ack) == 0) return false;
        if (seg.Acknowledgment != _iss + 1)
        {
            SendRst(seg.Acknowledgment);
            return false;
        }
        State = TcpState.Established;
        _sndUna = _iss + 1;
        _rtoDeadline = 0;
        if (_retransmits > 0)
        {
            // RFC 6298 5.7: the SYN-ACK timed out, so the initial RTO was too short for this path; data starts with
            // an RTO of at least 3 s (not the handshake's backed-off value) until a valid sample says otherwise.
            _rtoBase = Math.Min(Math.Max(_rtoBase, 3000), _options.MaxRtoMs);
            _rto = _rtoBase;
        }
        _retransmits = 0;
        _sndWnd = (long)seg.Window << _sndScale;
        _sndWl1 = seg.Sequence;
        _sndWl2 = seg.Acknowledgment;
        TrySend(Now);
        _writable.Set();
        return true;
    }

    private void OnSegmentSynchronized(ReadOnlySpan<byte> packet, in TcpSegment seg, long now)
    {
        var flags = seg.Flags;
        var seq = seg.Sequence;
        var len = seg.DataLength;
        var fin = (flags & TcpFlags.Fin) != 0;
        var segLen = (uint)len + (fin ? 1u : 0u);
        var wnd = ReceiveWindowLimit();

        // RFC 793 acceptability test.
        bool acceptable;
        if (segLen == 0) acceptable = wnd == 0 ? seq == _rcvNxt : InWindow(seq, _rcvNxt, wnd);
        else acceptable = wnd != 0 && (InWindow(seq, _rcvNxt, wnd) || InWindow(seq + segLen - 1, _rcvNxt, wnd));
        if (!acceptable)
        {
            if ((flags & TcpFlags.Rst) == 0) SendAck();
            if (State == TcpState.TimeWait) _timeWaitDeadline = now + _options.TimeWaitMs;
            return;
        }
        if ((flags & TcpFlags.Rst) != 0)
        {
            // RFC 5961: only an exact RST resets; an in-window one gets a challenge ACK.
            if (seq == _rcvNxt) CloseLocked(reset: true);
            else SendAck();
            return;
        }
        if ((flags & TcpFlags.Syn) != 0)
        {
            SendAck();
            return;
        }
        if ((flags & TcpFlags.Ack) == 0) return;

        if (!OnAck(seg, now)) return;
        if (State == TcpState.Closed) return;

        if (segLen > 0 && State is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)
            OnData(packet.Slice(seg.DataOffset, len), seq, fin, now);

        if (IsSending) TrySend(now);
    }

    /// <summary>States in which data or our FIN may still be (re)transmitted.</summary>
    private bool IsSending => State is TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.Closing
        or TcpState.LastAck;

    /// <summary>Returns false when the segment must not be processed further.</summary>
    private bool OnAck(in TcpSegment seg, long now)
    {
        var ack = seg.Acknowledgment;
        if (Gt(ack, _sndMax))
        {
            SendAck();
            return false;
        }
        var windowBefore = _sndWnd;
        if (Lt(_sndWl1, seg.Sequence) || (_sndWl1 == seg.Sequence && Le(_sndWl2, ack)))
        {
            _sndWnd = (long)seg.Window << _sndScale;
            _sndWl1 = seg.Sequence;
            _sndWl2 = ack;
            if (_sndWnd > 0)
            {
                _persistDeadline = 0;
                _persistBackoff = 0;
            }
        }
        if (Gt(ack, _sndUna))
        {
            var acked = ack - _sndUna;
            var dataAcked = (int)Math.Min(acked, (uint)_send.Count);
            var finAcked = _finSent && ack == _sndUna + (uint)_send.Count + 1;
            _send.Discard(dataAcked);
            _sndUna = ack;
            if (Lt(_sndNxt, _sndUna)) _sndNxt = _sndUna;
            if (_rttTiming && Ge(ack, _rttSeq))
            {
                _rttTiming = false;
                SampleRtt(now - _rttStart);
            }
            _retransmits = 0;
            // Karn keeps the backed-off RTO until a sample from a segment sent once; that sample may never come when
            // the sender has nothing new to send (request/response), and every later single loss would then wait
            // the backed-off timer. Everything outstanding at the last timeout being acknowledged proves the path
            // delivers again, so the multiplier goes and the estimator's RTO applies. No ambiguous sample is taken.
            if (_backoffs > 0 && Ge(ack, _backoffRecover))
            {
                _backoffs = 0;
                _rto = _rtoBase;
            }
            _rtoDeadline = _sndUna == _sndMax ? 0 : now + _rto;
            if (_inRecovery)
            {
                if (Ge(ack, _recover))
                {
                    _inRecovery = false;
                    _cwnd = Math.Max(_ssthresh, _sndMss);
                }
                else
                {
                    // NewReno partial ACK: the next hole is lost too.
                    RetransmitFirst();
                    _cwnd = Math.Max(_cwnd - acked + _sndMss, _sndMss);
                }
            }
            else if (_cwnd < _ssthresh) _cwnd += Math.Min(acked, (uint)_sndMss);
            else _cwnd += Math.Max(1, (long)_sndMss * _sndMss / _cwnd);
            _dupAcks = 0;
            if (dataAcked > 0) _writable.Set();
            if (finAcked)
            {
                switch (State)
                {
                    case TcpState.FinWait1:
                        State = TcpState.FinWait2;
                        break;
                    case TcpState.Closing:
                        EnterTimeWait(now);
                        break;
                    case TcpState.LastAck:
                        CloseLocked(reset: false);
                        return false;
                }
                _writable.Set();
            }
        }
        else if (ack == _sndUna && seg.DataLength == 0 && (seg.Flags & TcpFlags.Fin) == 0 && _sndMax != _sndUna
                 && _sndWnd == windowBefore)
        {
            _dupAcks++;
            if (_dupAcks == 3 && !_inRecovery)
            {
                Interlocked.Increment(ref _counters.TcpFastRetransmits);
                _ssthresh = Math.Max((_sndMax - _sndUna) / 2, 2L * _sndMss);
                _recover = _sndMax;
                _inRecovery = true;
                RetransmitFirst();
                _cwnd = _ssthresh + 3L * _sndMss;
            }
            else if (_dupAcks > 3 && _inRecovery)
            {
                _cwnd += _sndMss;
            }
        }
        return true;
    }

    private void OnData(ReadOnlySpan<byte> data, uint seq, bool fin, long now)
    {
        // Trim what we already have.
        if (Lt(seq, _rcvNxt))
        {
            var skip = (int)(_rcvNxt - seq);
            if (skip > data.Length)
            {
                // Only a FIN we already counted, or nothing new.
                SendAck();
                return;
            }
            data = data[skip..];
            seq = _rcvNxt;
        }
        // Trim what does not fit the window we advertised (a FIN past the edge is dropped with it).
        var room = (int)Math.Min(ReceiveWindowLimit() - (seq - _rcvNxt), int.MaxValue);
        if (room < data.Length)
        {
            data = data[..Math.Max(room, 0)];
            fin = false;
        }

        if (seq == _rcvNxt)
        {
            var hadGap = _ooo.Count > 0;
            var n = _recv.Append(data);
            _rcvNxt += (uint)n;
            if (n < data.Length) fin = false; // budget refused the rest: the client will send it again
            if (fin) OnFin(now);
            if (hadGap) DrainOutOfOrder(now);
            if (n > 0) SignalReadable();
            if (fin || hadGap || ++_segmentsSinceAck >= 2) SendAck();
            else if (_ackDeadline == 0) _ackDeadline = now + _options.DelayedAckMs;
            return;
        }

        StoreOutOfOrder(data, seq, fin);
        // An immediate duplicate ACK lets the client fast-retransmit the hole.
        SendAck();
    }

    private void OnFin(long now)
    {
        _rcvNxt++;
        _finReceived = true;
        SignalReadable();
        switch (State)
        {
            case TcpState.Established:
                State = TcpState.CloseWait;
                break;
            case TcpState.FinWait1:
                // Our FIN is not acknowledged yet (else we would be in FIN-WAIT-2).
                State = TcpState.Closing;
                break;
            case TcpState.FinWait2:
                EnterTimeWait(now);
                break;
        }
    }

    private void StoreOutOfOrder(ReadOnlySpan<byte> data, uint seq, bool fin)
    {
        if (data.Length == 0 && !fin) return;
        var i = 0;
        while (i < _ooo.Count && Lt(_ooo[i].Seq, seq)) i++;
        if (i < _ooo.Count && _ooo[i].Seq == seq && _ooo[i].Length >= data.Length) return; // duplicate
        if (_ooo.Count >= _options.MaxOutOfOrderSegments || !_budget.TryReserve(data.Length))
        {
            Interlocked.Increment(ref _counters.TcpOutOfOrderDropped);
            return;
        }
        var copy = ArrayPool<byte>.Shared.Rent(Math.Max(data.Length, 1));
        data.CopyTo(copy);
        if (i < _ooo.Count && _ooo[i].Seq == seq)
        {
            FreeOutOfOrder(_ooo[i]);
            _ooo[i] = new OutOfOrder { Seq = seq, Data = copy, Length = data.Length, Fin = fin };
        }
        else
        {
            _ooo.Insert(i, new OutOfOrder { Seq = seq, Data = copy, Length = data.Length, Fin = fin });
        }
        _oooBytes += data.Length;
    }

    private void DrainOutOfOrder(long now)
    {
        while (_ooo.Count > 0 && !_finReceived)
        {
            var o = _ooo[0];
            if (Gt(o.Seq, _rcvNxt)) break;
            _ooo.RemoveAt(0);
            var skip = (int)(_rcvNxt - o.Seq);
            if (skip <= o.Length)
            {
                var part = o.Data.AsSpan(skip, o.Length - skip);
                var n = _recv.Append(part);
                _rcvNxt += (uint)n;
                if (n == part.Length && o.Fin) OnFin(now);
            }
            FreeOutOfOrder(o);
        }
    }

    private void FreeOutOfOrder(in OutOfOrder o)
    {
        _oooBytes -= o.Length;
        _budget.Release(o.Length);
        ArrayPool<byte>.Shared.Return(o.Data);
    }

    private void ClearOutOfOrder()
    {
        foreach (var o in _ooo) FreeOutOfOrder(o);
        _ooo.Clear();
    }

    // ---------------------------------------------------------------- sending

    private void TrySend(long now)
    {
        while (true)
        {
            var inFlight = _sndNxt - _sndUna;
            var queued = (uint)_send.Count;
            var unsent = (long)queued - inFlight;
            if (unsent > 0)
            {
                var usable = Math.Min(_sndWnd, _cwnd) - inFlight;
                if (usable <= 0)
                {
                    if (_sndWnd == 0 && _sndNxt == _sndUna && _persistDeadline == 0)
                    {
                        _rtoDeadline = 0;
                        _persistDeadline = now + Math.Min(_rto << _persistBackoff, _options.MaxRtoMs);
                    }
                    return;
                }
                var n = (int)Math.Min(Math.Min(unsent, _sndMss), usable);
                var flags = TcpFlags.Ack | (n == unsent ? TcpFlags.Psh : 0);
                Emit(flags, _sndNxt, _rcvNxt, (int)inFlight, n, false);
                _sndNxt += (uint)n;
                AfterTransmit(now);
                continue;
            }
            // unsent == 0 means our FIN is not in flight: first transmission, or again after a go-back-N timeout.
            if (_finQueued && unsent == 0 && IsSending)
            {
                Emit(TcpFlags.Fin | TcpFlags.Ack, _sndNxt, _rcvNxt, 0, 0, false);
                _sndNxt++;
                _finSent = true;
                AfterTransmit(now);
                if (State == TcpState.Established) State = TcpState.FinWait1;
                else if (State == TcpState.CloseWait) State = TcpState.LastAck;
            }
            return;
        }
    }

    private void AfterTransmit(long now)
    {
        if (Gt(_sndNxt, _sndMax))
        {
            _sndMax = _sndNxt;
            if (!_rttTiming)
            {
                _rttTiming = true;
                _rttSeq = _sndNxt;
                _rttStart = now;
            }
        }
        if (_rtoDeadline == 0) _rtoDeadline = now + _rto;
    }

    private void RetransmitFirst()
    {
        Interlocked.Increment(ref _counters.TcpRetransmits);
        _rttTiming = false; // Karn: never time a retransmitted segment
        // Only bytes already sent (up to SND.MAX) are retransmitted. The queue may also hold bytes never sent
        // (window- or cwnd-limited); sending those here without advancing SND.MAX let the client acknowledge
        // past SND.MAX, and every later client segment was then dropped as acking "unsent" data: the flow stalled.
        var sentData = (int)Math.Min((uint)_send.Count, _sndMax - _sndUna);
        if (sentData > 0)
        {
            var n = Math.Min(sentData, _sndMss);
            Emit(TcpFlags.Ack, _sndUna, _rcvNxt, 0, n, false);
        }
        else if (_finSent)
        {
            Emit(TcpFlags.Fin | TcpFlags.Ack, _sndUna, _rcvNxt, 0, 0, false);
        }
    }

    private void OnRetransmitTimeout(long now)
    {
        if (State == TcpState.SynReceived)
        {
            if (++_retransmits > _options.SynAckRetries)
            {
                CloseLocked(reset: true);
                return;
            }
            Interlocked.Increment(ref _counters.TcpRetransmits);
            SendSynAck();
            _rto = Math.Min(_rto * 2, _options.MaxRtoMs);
            _rtoDeadline = now + _rto;
            return;
        }
        if (_sndMax == _sndUna)
        {
            _rtoDeadline = 0;
            return;
        }
        if (++_retransmits > _options.MaxRetransmits)
        {
            Emit(TcpFlags.Rst | TcpFlags.Ack, _sndMax, _rcvNxt, 0, 0, false);
            Interlocked.Increment(ref _counters.TcpResetsSent);
            CloseLocked(reset: true);
            return;
        }
        Interlocked.Increment(ref _counters.TcpRetransmits);
        _ssthresh = Math.Max((_sndMax - _sndUna) / 2, 2L * _sndMss);
        _cwnd = _sndMss;
        _inRecovery = false;
        _dupAcks = 0;
        _rttTiming = false;
        _rto = Math.Min(_rto * 2, _options.MaxRtoMs);
        _backoffRecover = _sndMax;
        // RFC 6298 section 5 allows clearing SRTT/RTTVAR after repeated backoffs: they are likely bogus, and the
        // next valid sample then initialises them afresh (2.2) instead of being averaged into stale values.
        if (++_backoffs >= 3)
        {
            _srtt = 0;
            _rttvar = 0;
        }
        // Go back N: everything after the first unacknowledged byte is sent again as the window allows.
        _sndNxt = _sndUna;
        _rtoDeadline = 0;
        if (_sndWnd == 0 && _send.Count > 0)
        {
            _persistDeadline = now + _rto;
            return;
        }
        TrySend(now);
        _rtoDeadline = now + _rto;
    }

    private void OnPersistTimeout(long now)
    {
        _persistDeadline = 0;
        if (_send.Count == 0 || _sndWnd > 0)
        {
            _persistBackoff = 0;
            TrySend(now);
            return;
        }
        // Zero-window probe: an old sequence number makes the client answer with its current window.
        Emit(TcpFlags.Ack, _sndUna - 1, _rcvNxt, 0, 0, false);
        _persistBackoff = Math.Min(_persistBackoff + 1, 10);
        _persistDeadline = now + Math.Min((long)_rto << _persistBackoff, _options.MaxRtoMs);
    }

    private void SampleRtt(long rttMs)
    {
        var r = Math.Max(rttMs, 0);
        if (_srtt == 0 && _rttvar == 0)
        {
            _srtt = r;
            _rttvar = r / 2.0;
        }
        else
        {
            _rttvar = 0.75 * _rttvar + 0.25 * Math.Abs(_srtt - r);
            _srtt = 0.875 * _srtt + 0.125 * r;
        }
        _rtoBase = (int)Math.Clamp(_srtt + Math.Max(4 * _rttvar, 1), _options.MinRtoMs, _options.MaxRtoMs);
        // A valid sample (Karn: from a segment sent once) replaces any backed-off value.
        _rto = _rtoBase;
        _backoffs = 0;
    }

    private void EnterTimeWait(long now)
    {
        State = TcpState.TimeWait;
        _timeWaitDeadline = now + _options.TimeWaitMs;
        _rtoDeadline = 0;
        _persistDeadline = 0;
        _send.Release();
        _recv.TrimIfEmpty();
        ClearOutOfOrder();
        _writable.Set();
    }

    /// <summary>
    /// A flow past its last segment from the client (TIME-WAIT, closed) is off the timer that trims buffers: its receive
    /// buffer goes back to the budget as soon as the relay has read the last of it.
    /// </summary>
    private void TrimIfDone()
    {
        if (State is TcpState.TimeWait or TcpState.Closed) _recv.TrimIfEmpty();
    }

    private void CloseLocked(bool reset)
    {
        if (reset)
        {
            _reset = true;
            // Callbacks on the pool: the relay's continuations must not run under this lock.
            _ = _resetSource?.CancelAsync();
        }
        State = TcpState.Closed;
        _rtoDeadline = 0;
        _persistDeadline = 0;
        _ackDeadline = 0;
        _send.Release();
        if (reset) _recv.Release();
        else _recv.TrimIfEmpty(); // otherwise when the relay has read the rest (EndRead, ReadAsync)
        ClearOutOfOrder();
        SignalReadable();
        _writable.Set();
    }

    /// <summary>The client may send up to this many bytes past rcvNxt (never shrinks what was advertised).</summary>
    private uint ReceiveWindowLimit()
    {
        var free = (uint)Math.Max(_recv.Free - _oooBytes, 0);
        var advertised = _rcvAdvertisedEdge - _rcvNxt;
        return Gt(_rcvAdvertisedEdge, _rcvNxt) ? Math.Max(free, advertised) : free;
    }

    private ushort WindowField(bool syn)
    {
        var free = Math.Max(_recv.Free - _oooBytes, 0);
        if (syn)
        {
            _rcvAdvertisedEdge = _rcvNxt + (uint)Math.Min(free, 65535);
            return (ushort)Math.Min(free, 65535);
        }
        // Never left of the edge already advertised: segments stored past a hole take space, and a window that shrank
        // with each of them would make every dup ACK a different one, which a sender (RFC 5681 §2) does not count.
        if (Gt(_rcvAdvertisedEdge, _rcvNxt)) free = Math.Max(free, (int)Math.Min(_rcvAdvertisedEdge - _rcvNxt, int.MaxValue));
        var scaled = Math.Min(free >> _rcvScale, 65535);
        var edge = _rcvNxt + (uint)(scaled << _rcvScale);
        if (Gt(edge, _rcvAdvertisedEdge)) _rcvAdvertisedEdge = edge;
        return (ushort)scaled;
    }

    private int _lastWindowSent;

    private void MaybeSendWindowUpdate()
    {
        if (State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)) return;
        var free = Math.Max(_recv.Free - _oooBytes, 0);
        // Receiver-side silly-window avoidance: announce only a worthwhile opening.
        var threshold = Math.Min(2 * _ourMss, _recv.Max / 2);
        if (free - _lastWindowSent >= threshold || (_lastWindowSent < _ourMss && free >= _ourMss)) SendAck();
    }

    private void SendAck() => Emit(TcpFlags.Ack, _sndNxt, _rcvNxt, 0, 0, false);

    private void SendSynAck() => Emit(TcpFlags.Syn | TcpFlags.Ack, _iss, _rcvNxt, 0, 0, true);

    private void SendRst(uint seq)
    {
        Emit(TcpFlags.Rst, seq, 0, 0, 0, false);
        Interlocked.Increment(ref _counters.TcpResetsSent);
    }

    /// <summary>Builds and sends one segment; payload comes from the send queue at <paramref name="queueOffset"/>.</summary>
    private void Emit(TcpFlags flags, uint seq, uint ack, int queueOffset, int length, bool syn)
    {
        var k = Key;
        var space = TcpSegment.HeaderSpace(k.IsV6, syn);
        // A device that finishes checksums takes the payload from the send queue where it lies (no copy of it here).
        var gather = length > 0 && _partialChecksums;
        var buffer = ArrayPool<byte>.Shared.Rent(gather ? space : space + length);
        try
        {
            if (length > 0 && !gather) _send.Peek(queueOffset, buffer.AsSpan(space, length));
            var window = (flags & TcpFlags.Rst) != 0 ? (ushort)0 : WindowField(syn);
            var total = TcpSegment.Write(buffer, k.IsV6, k.Destination, k.Source, k.DestinationPort, k.SourcePort, seq, ack, flags,
                window, length, syn ? (ushort)_ourMss : (ushort)0, syn && _windowScaling ? _rcvScale : -1, _partialChecksums);
            if ((flags & TcpFlags.Ack) != 0)
            {
                _ackDeadline = 0;
                _segmentsSinceAck = 0;
                _lastWindowSent = window << _rcvScale;
            }
            Interlocked.Increment(ref _counters.PacketsOut);
            if (gather)
            {
                _send.Slices(queueOffset, length, out var first, out var second);
                _sink.Send(buffer.AsSpan(0, total - length), first, second);
            }
            else
            {
                _sink.Send(buffer.AsSpan(0, total));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool InWindow(uint x, uint start, uint size) => x - start < size;

    private static bool Lt(uint a, uint b) => (int)(a - b) < 0;

    private static bool Le(uint a, uint b) => (int)(a - b) <= 0;

    private static bool Gt(uint a, uint b) => (int)(a - b) > 0;

    private static bool Ge(uint a, uint b) => (int)(a - b) >= 0;
}
