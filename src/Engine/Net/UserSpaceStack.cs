using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KtConnect.Engine.Net;

public sealed record StackOptions
{
    /// <summary>
    /// A tun MTU near the 64 KiB IP limit: the tun only ever carries traffic between the local kernel and this
    /// stack, so big packets cost nothing on any wire and cut per-packet work (syscalls, parsing) about 40-fold.
    /// </summary>
    public const int RecommendedMtu = 65520;

    public TcpOptions Tcp { get; init; } = new();
    /// <summary>The tun MTU; our MSS is derived from it.</summary>
    public int Mtu { get; init; } = 1500;
    public int MaxFlows { get; init; } = 65536;
    /// <summary>Total bytes of flow buffers beyond each flow's first 4 KiB.</summary>
    public long MemoryLimit { get; init; } = 1L << 30;
    public TimeSpan DialTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(10);
    public int MaxUdpInFlight { get; init; } = 256;
    public int RelayBufferSize { get; init; } = 256 * 1024;
    public ReassemblyOptions Reassembly { get; init; } = new();
}

/// <summary>
/// The user-space TCP/IP stack (tun2socks): reads packets from a device, terminates every TCP flow the
/// local OS opens through it, dials the destination with an <see cref="IFlowDialer"/> and relays bytes both
/// ways. UDP to the handler's addresses goes to the handler; other UDP gets ICMP port unreachable; ICMP
/// itself is never answered (no fake pings). Owns its loops and their cancellation; dispose stops them and
/// resets every flow still open.
/// </summary>
public sealed class UserSpaceStack : IPacketSink, IAsyncDisposable
{
    private readonly IPacketDevice? _device;
    private readonly IPacketSink _sink;
    private readonly IFlowDialer _dialer;
    private readonly IUdpDatagramHandler? _udp;
    private readonly StackOptions _options;
    private readonly IClock _clock;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<FlowKey, TcpConnection> _flows = new();
    // What the timer visits: the flows with a timer armed (see TcpConnection.RejoinTimerList), but not those in TIME-WAIT,
    // which wait in _timeWait in deadline order instead, so the thousands a burst of short connections leaves there cost a
    // tick nothing until they expire. With none of these and no fragments held, the timer stops until _timerNeeded.
    private readonly ConcurrentDictionary<TcpConnection, byte> _ticking = new();
    private readonly Queue<(long Due, TcpConnection Conn)> _timeWait = new();
    private readonly AsyncSignal _timerNeeded = new();
    private readonly ConcurrentDictionary<Task, bool> _tasks = new();
    private readonly CancellationTokenSource _cts = new();
    private readonly SemaphoreSlim _udpSlots;
    private readonly MemoryBudget _budget;
    private readonly FragmentReassembler _fragments;
    private Thread? _reader;
    private Task? _timer;
    private int _disposed;
    private readonly TaskCompletionSource _readerDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A stack reading from and writing to <paramref name="device"/>; call <see cref="Start"/>.</summary>
    public UserSpaceStack(IPacketDevice device, IFlowDialer dialer, StackOptions? options = null, IUdpDatagramHandler? udp = null,
        IClock? clock = null, ILogger? logger = null)
        : this(dialer, options, udp, clock, logger, device ?? throw new ArgumentNullException(nameof(device)), null)
    {
    }

    /// <summary>A stack without a device (tests): packets go in via <see cref="HandlePacket"/> and out to <paramref name="sink"/>.</summary>
    public UserSpaceStack(IPacketSink sink, IFlowDialer dialer, StackOptions? options = null, IUdpDatagramHandler? udp = null,
        IClock? clock = null, ILogger? logger = null)
        : this(dialer, options, udp, clock, logger, null, sink ?? throw new ArgumentNullException(nameof(sink)))
    {
    }

    private UserSpaceStack(IFlowDialer dialer, StackOptions? options, IUdpDatagramHandler? udp, IClock? clock, ILogger? logger,
        IPacketDevice? device, IPacketSink? sink)
    {
        _dialer = dialer ?? throw new ArgumentNullException(nameof(dialer));
        _options = options ?? new StackOptions();
        _udp = udp;
        _clock = clock ?? SystemClock.Instance;
        _logger = logger ?? NullLogger.Instance;
        _device = device;
        _sink = sink ?? this;
        _udpSlots = new SemaphoreSlim(_options.MaxUdpInFlight);
        _budget = new MemoryBudget(_options.MemoryLimit);
        _fragments = new FragmentReassembler(_options.Reassembly, Counters);
    }

    public NetCounters Counters { get; } = new();

    /// <summary>The device's MTU when there is a device (it decides), else the options'.</summary>
    public int Mtu => _device?.Mtu ?? _options.Mtu;

    public int FlowCount => _flows.Count;

    public MemoryBudget Budget => _budget;

    /// <summary>Live flows, for diagnostics and tests.</summary>
    public IEnumerable<TcpConnection> Flows => _flows.Values;

    /// <summary>Starts the device reader thread and the timer loop.</summary>
    public void Start()
    {
        if (_device is null) throw new InvalidOperationException("This stack has no device; feed it with HandlePacket.");
        if (_reader is not null) throw new InvalidOperationException("Already started.");
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = "kt-tun-reader" };
        _reader.Start();
        _timer = TimerLoopAsync(_cts.Token);
    }

    /// <summary>
    /// Completes when the device stops delivering packets: normally after dispose, faulted with the
    /// device's error when it failed. Lets the owning session notice a dead tun.
    /// </summary>
    public Task Completion => _readerDone.Task;

    bool IPacketSink.TakesPartialTcpChecksums => _device?.ChecksumOffload == true;

    void IPacketSink.Send(ReadOnlySpan<byte> packet)
    {
        try
        {
            // Every TCP segment this stack builds for an offloading device carries a partial checksum; nothing else does.
            if (_device!.ChecksumOffload) _device.WritePacket(packet, IpPacket.ProtocolOf(packet) == IpProtocol.Tcp);
            else _device.WritePacket(packet);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or TunDeviceException)
        {
            // A packet we cannot write is a lost packet; TCP retransmits it.
            _logger.LogDebug(e, "tun write failed");
        }
    }

    void IPacketSink.Send(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2)
    {
        try
        {
            _device!.WritePacket(headers, payload1, payload2, partialTcpChecksum: true);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or TunDeviceException)
        {
            _logger.LogDebug(e, "tun write failed");
        }
    }

    private void ReadLoop()
    {
        var buffer = new byte[Math.Max(Mtu, 1500) + 64];
        try
        {
            while (!_cts.IsCancellationRequested)
            {
                var n = _device!.ReadPacket(buffer, out var checksumTrusted);
                if (n <= 0) break;
                HandlePacket(buffer.AsSpan(0, n), checksumTrusted);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or TunDeviceException)
        {
            if (!_cts.IsCancellationRequested)
            {
                _logger.LogError(e, "tun read failed; the stack stops");
                _readerDone.TrySetException(e);
            }
        }
        _readerDone.TrySetResult();
    }

    private async Task TimerLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.TickInterval);
        try
        {
            while (true)
            {
                // An idle stack wakes nobody: no tick runs until a flow arms a timer or a fragment is held.
                if (TimerIdle)
                {
                    timer.Period = Timeout.InfiniteTimeSpan;
                    await _timerNeeded.WaitAsync(cancellationToken).ConfigureAwait(false);
                    if (TimerIdle) continue;
                    timer.Period = _options.TickInterval;
                }
                if (!await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false)) break;
                Tick();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Runs every flow's timers and forgets closed flows. The timer loop calls it (one caller at a time); tests call it
    /// directly.
    /// </summary>
    public void Tick()
    {
        Interlocked.Increment(ref Counters.TimerTicks);
        var now = _clock.NowMilliseconds;
        _fragments.Tick(now);
        foreach (var (conn, _) in _ticking)
        {
            if (conn.Tick()) Forget(conn);
            else if (conn.State == TcpState.TimeWait) _timeWait.Enqueue((conn.TimeWaitDeadline, conn));
            else continue;
            _ticking.TryRemove(conn, out _);
        }
        while (_timeWait.TryPeek(out var head) && head.Due <= now)
        {
            _timeWait.Dequeue();
            // Closed at its deadline; one whose TIME-WAIT a retransmitted FIN restarted waits for its new deadline.
            if (head.Conn.Tick()) Forget(head.Conn);
            else _timeWait.Enqueue((head.Conn.TimeWaitDeadline, head.Conn));
        }
    }

    private bool TimerIdle => _ticking.IsEmpty && _timeWait.Count == 0 && _fragments.Pending == 0;

    /// <summary>A flow's timers were armed (it joins the timer's list) or all went quiet (it leaves); called under its lock.</summary>
    private void OnTimerList(TcpConnection conn, bool on)
    {
        if (!on)
        {
            _ticking.TryRemove(conn, out _);
            return;
        }
        _ticking.TryAdd(conn, 0);
        _timerNeeded.Set();
    }

    /// <summary>Drops a closed flow from the table, unless a new connection on the same tuple took its place.</summary>
    private void Forget(TcpConnection conn) => _flows.TryRemove(new KeyValuePair<FlowKey, TcpConnection>(conn.Key, conn));

    /// <summary>
    /// Processes one packet from the device. Never throws for bad input: it is counted and dropped. Transport
    /// checksums are verified unless <paramref name="checksumTrusted"/> (see <see cref="IPacketDevice.ChecksumOffload"/>).
    /// </summary>
    public void HandlePacket(ReadOnlySpan<byte> packet, bool checksumTrusted = false)
    {
        Interlocked.Increment(ref Counters.PacketsIn);
        var status = IpPacket.TryParse(packet, out var ip);
        if (status == ParseStatus.Fragment)
        {
            var whole = _fragments.Add(packet, ip, _clock.NowMilliseconds, out var length);
            if (whole is null)
            {
                // A held fragment expires on the timer (a wake-up with nothing held finds the timer idle again).
                _timerNeeded.Set();
                return;
            }
            try
            {
                // The reassembled packet parses as an ordinary one (no fragment header, offset 0, MF clear). One whose
                // first fragment named another fragment header as the next one is nonsense: dropped, never recursed into.
                if (IpPacket.TryParse(whole.AsSpan(0, length), out _) == ParseStatus.Fragment) Interlocked.Increment(ref Counters.Malformed);
                else HandlePacket(whole.AsSpan(0, length));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(whole);
            }
            return;
        }
        if (status != ParseStatus.Ok)
        {
            Interlocked.Increment(ref Counters.Malformed);
            return;
        }
        switch (ip.Protocol)
        {
            case IpProtocol.Tcp:
                if (TcpSegment.TryParse(packet, ip, out var tcp, checksumTrusted) != ParseStatus.Ok)
                {
                    Interlocked.Increment(ref Counters.Malformed);
                    return;
                }
                HandleTcp(packet, ip, tcp);
                return;
            case IpProtocol.Udp:
                if (UdpDatagram.TryParse(packet, ip, out var udp, checksumTrusted) != ParseStatus.Ok)
                {
                    Interlocked.Increment(ref Counters.Malformed);
                    return;
                }
                HandleUdp(packet, ip, udp);
                return;
            case IpProtocol.Icmp:
            case IpProtocol.IcmpV6:
                // Pings are not answered: a reply would claim a host is up that we never asked.
                Interlocked.Increment(ref Counters.IcmpIgnored);
                return;
            default:
                Interlocked.Increment(ref Counters.UnsupportedProtocol);
                return;
        }
    }

    private void HandleTcp(ReadOnlySpan<byte> packet, in IpPacket ip, in TcpSegment tcp)
    {
        var key = new FlowKey(ip.Source, ip.Destination, tcp.SourcePort, tcp.DestinationPort, ip.IsV6);
        var isSyn = (tcp.Flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == TcpFlags.Syn;
        if (_flows.TryGetValue(key, out var conn))
        {
            // A new SYN on a tuple in TIME-WAIT (or an abandoned one) starts a new connection.
            if (isSyn && conn.State is TcpState.TimeWait or TcpState.Closed)
            {
                _flows.TryRemove(new KeyValuePair<FlowKey, TcpConnection>(key, conn));
            }
            else
            {
                conn.OnSegment(packet, tcp);
                return;
            }
        }
        if (!isSyn)
        {
            if ((tcp.Flags & TcpFlags.Rst) == 0) SendResetFor(key, tcp);
            return;
        }
        if (Volatile.Read(ref _disposed) != 0 || _flows.Count >= _options.MaxFlows)
        {
            Interlocked.Increment(ref Counters.TcpFlowsRejectedByLimit);
            SendResetFor(key, tcp);
            return;
        }
        var ourMss = Mtu - IpPacket.HeaderLength(ip.IsV6) - TcpSegment.HeaderLength;
        var iss = (uint)Random.Shared.NextInt64();
        conn = new TcpConnection(key, tcp, iss, ourMss, _sink, _clock, _options.Tcp, Counters, _budget, OnTimerList);
        if (!_flows.TryAdd(key, conn)) return;
        OnTimerList(conn, true);
        Track(RunFlowAsync(conn, _cts.Token));
    }

    /// <summary>RST for a segment that belongs to no flow (RFC 793 "reset generation").</summary>
    private void SendResetFor(in FlowKey key, in TcpSegment tcp)
    {
        Interlocked.Increment(ref Counters.TcpResetsSent);
        var buffer = ArrayPool<byte>.Shared.Rent(128);
        try
        {
            var (flags, seq, ack) = tcp.ResetReply();
            var n = TcpSegment.Write(buffer, key.IsV6, key.Destination, key.Source, key.DestinationPort, key.SourcePort,
                seq, ack, flags, 0, 0, partialChecksum: _sink.TakesPartialTcpChecksums);
            Interlocked.Increment(ref Counters.PacketsOut);
            _sink.Send(buffer.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task RunFlowAsync(TcpConnection conn, CancellationToken cancellationToken)
    {
        // The dial starts on the device's reader thread: opening a socket or an SSH channel only starts an operation and
        // returns, and a thread-pool hop here was a tenth of a short connection's latency.
        Stream stream;
        using (var dialCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            dialCts.CancelAfter(_options.DialTimeout);
            try
            {
                stream = await _dialer.DialAsync(conn.Key.DestinationEndPoint, dialCts.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Interlocked.Increment(ref Counters.TcpFlowsRefused);
                _logger.LogDebug(e, "dial {Flow} failed; resetting the client", conn.Key);
                conn.Refuse();
                return;
            }
        }
        await using (stream.ConfigureAwait(false))
        {
            if (conn.State != TcpState.Dialing)
            {
                // The client gave up (RST) while we dialed.
                return;
            }
            Interlocked.Increment(ref Counters.TcpFlowsAccepted);
            conn.Accept();
            await FlowRelay.RunAsync(conn, stream, _options.RelayBufferSize, _logger, cancellationToken).ConfigureAwait(false);
        }
    }

    private void HandleUdp(ReadOnlySpan<byte> packet, in IpPacket ip, in UdpDatagram udp)
    {
        if (_udp is not null)
        {
            var destination = new IPEndPoint(IpPacket.ToAddress(ip.Destination, ip.IsV6), udp.DestinationPort);
            if (_udp.Serves(destination))
            {
                Interlocked.Increment(ref Counters.UdpToHandler);
                if (!_udpSlots.Wait(0)) return; // overloaded: drop, the client retries
                var payload = packet.Slice(udp.DataOffset, udp.DataLength).ToArray();
                var key = new FlowKey(ip.Source, ip.Destination, udp.SourcePort, udp.DestinationPort, ip.IsV6);
                Track(RunUdpAsync(key, payload, _cts.Token));
                return;
            }
        }
        // RFC 1122 §3.2.2: no ICMP error about a datagram sent to a multicast or broadcast address.
        if (IsMulticastOrBroadcast(ip)) return;
        var buffer = ArrayPool<byte>.Shared.Rent(1400);
        try
        {
            var n = IcmpMessage.WritePortUnreachable(buffer, packet, ip);
            Interlocked.Increment(ref Counters.IcmpUnreachableSent);
            Interlocked.Increment(ref Counters.PacketsOut);
            _sink.Send(buffer.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool IsMulticastOrBroadcast(in IpPacket ip) =>
        ip.IsV6 ? ip.Destination >> 120 == 0xFF : ip.Destination >> 28 == 0xE || ip.Destination == 0xFFFFFFFF;

    private async Task RunUdpAsync(FlowKey key, byte[] payload, CancellationToken cancellationToken)
    {
        try
        {
            var reply = await _udp!.HandleAsync(payload, key.SourceEndPoint, key.DestinationEndPoint, cancellationToken).ConfigureAwait(false);
            if (reply.Length == 0) return;
            var buffer = ArrayPool<byte>.Shared.Rent(reply.Length + 64);
            try
            {
                var n = UdpDatagram.Write(buffer, key.IsV6, key.Destination, key.Source, key.DestinationPort, key.SourcePort, reply.Span);
                Interlocked.Increment(ref Counters.PacketsOut);
                _sink.Send(buffer.AsSpan(0, n));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _logger.LogDebug(e, "UDP handler failed for {Flow}", key);
        }
        finally
        {
            _udpSlots.Release();
        }
    }

    private void Track(Task task)
    {
        _tasks.TryAdd(task, true);
        task.ContinueWith(static (t, s) => ((ConcurrentDictionary<Task, bool>)s!).TryRemove(t, out _), _tasks,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (var conn in _flows.Values) conn.Abort();
        await _cts.CancelAsync().ConfigureAwait(false);
        _device?.Dispose();
        if (_timer is not null) await _timer.ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_tasks.Keys).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _logger.LogWarning("{Count} flow tasks did not stop within 10 s", _tasks.Count);
        }
        _reader?.Join(TimeSpan.FromSeconds(5));
        _readerDone.TrySetResult();
        _flows.Clear();
        _ticking.Clear();
        _cts.Dispose();
        _udpSlots.Dispose();
        _fragments.Dispose();
    }
}
