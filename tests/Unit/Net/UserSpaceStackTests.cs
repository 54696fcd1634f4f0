using System.Net;
using KtConnect.Engine.Net;
using KtConnect.KubeSim.Testing;

using KtConnect.Tests.Unit.Common;

namespace KtConnect.Tests.Unit.Net;

public class UserSpaceStackTests
{
    private static readonly UInt128 Client = IpPacket.FromAddress(IPAddress.Parse("10.0.0.2"));
    private static readonly UInt128 Cluster = IpPacket.FromAddress(IPAddress.Parse("10.96.0.10"));
    private static readonly UInt128 Client6 = IpPacket.FromAddress(IPAddress.Parse("fd00::2"));
    private static readonly UInt128 Cluster6 = IpPacket.FromAddress(IPAddress.Parse("fd00:96::10"));

    private sealed class Refusing : IFlowDialer
    {
        public List<IPEndPoint> Calls { get; } = [];

        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
        {
            lock (Calls) Calls.Add(destination);
            return Task.FromException<Stream>(new IOException("refused"));
        }
    }

    private static byte[] Tcp(TcpFlags flags, uint seq, uint ack, ushort mss = 0, byte[]? data = null)
    {
        data ??= [];
        var buf = new byte[100 + data.Length];
        data.CopyTo(buf, TcpSegment.HeaderSpace(false, mss != 0));
        var n = TcpSegment.Write(buf, false, Client, Cluster, 40000, 80, seq, ack, flags, 1000, data.Length, mss, mss != 0 ? 7 : -1);
        return buf[..n];
    }

    private static async Task<List<byte[]>> WaitForAsync(ListSink sink, int count)
    {
        var got = new List<byte[]>();
        await Wait.UntilAsync(() =>
        {
            got.AddRange(sink.Take());
            return got.Count >= count;
        }, $"{count} packet(s) from the stack", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(10));
        return got;
    }

    [Fact]
    public async Task Syn_ToRefusedDestination_IsDialedThenReset()
    {
        var sink = new ListSink();
        var dialer = new Refusing();
        await using var stack = new UserSpaceStack(sink, dialer);
        stack.HandlePacket(Tcp(TcpFlags.Syn, 100, 0, 1460));
        var rst = Sent.Parse(Assert.Single(await WaitForAsync(sink, 1)));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal(101u, rst.Ack);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.96.0.10"), 80), Assert.Single(dialer.Calls));
        stack.Tick();
        Assert.Equal(0, stack.FlowCount);
        Assert.Equal(1, stack.Counters.TcpFlowsRefused);
    }

    /// <summary>A far end that has closed already: reads end at once, writes are taken.</summary>
    private sealed class ClosedFarEnd : IFlowDialer
    {
        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken) => Task.FromResult<Stream>(new EofStream());

        private sealed class EofStream : TestStream
        {
            public override int Read(byte[] buffer, int offset, int count) => 0;
            public override void Write(byte[] buffer, int offset, int count) { }
        }
    }

    /// <summary>A far end that neither reads nor writes: both wait until cancelled.</summary>
    private sealed class StuckFarEnd : IFlowDialer
    {
        public TaskCompletionSource Writing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Disposed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken) => Task.FromResult<Stream>(new Stuck(this));

        private sealed class Stuck(StuckFarEnd far) : TestStream
        {
            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
                return 0;
            }

            public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            {
                far.Writing.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            protected override void Dispose(bool disposing)
            {
                far.Disposed.TrySetResult();
                base.Dispose(disposing);
            }
        }
    }

    [Fact]
    public async Task A_client_reset_ends_the_relay_of_a_far_end_that_neither_reads_nor_writes()
    {
        var sink = new ListSink();
        var far = new StuckFarEnd();
        await using var stack = new UserSpaceStack(sink, far);
        stack.HandlePacket(Tcp(TcpFlags.Syn, 100, 0, 1460));
        var synAck = Sent.Parse(Assert.Single(await WaitForAsync(sink, 1)));
        stack.HandlePacket(Tcp(TcpFlags.Ack | TcpFlags.Psh, 101, synAck.Seq + 1, data: "ping"u8.ToArray()));
        await far.Writing.Task.WaitAsync(TimeSpan.FromSeconds(10));
        stack.HandlePacket(Tcp(TcpFlags.Rst, 105, 0));
        // The far end hears of it: its stream is closed (for an SSH channel, the pod's connection goes too).
        await far.Disposed.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task TimeWait_EndsAtItsDeadline_AndNeverTakesANewConnectionOnTheSameTupleWithIt()
    {
        var sink = new ListSink();
        var clock = new FakeClock();
        var options = new StackOptions();
        await using var stack = new UserSpaceStack(sink, new ClosedFarEnd(), options, clock: clock);
        stack.HandlePacket(Tcp(TcpFlags.Syn, 100, 0, 1460));
        var synAck = Sent.Parse(Assert.Single(await WaitForAsync(sink, 1)));
        stack.HandlePacket(Tcp(TcpFlags.Ack, 101, synAck.Seq + 1));
        // The far end is closed: our FIN comes; the client acknowledges it and closes too, so we wait in TIME-WAIT.
        var fin = Sent.Parse(Assert.Single(await WaitForAsync(sink, 1)));
        Assert.True(fin.Flags.HasFlag(TcpFlags.Fin));
        stack.HandlePacket(Tcp(TcpFlags.Fin | TcpFlags.Ack, 101, fin.Seq + 1));
        await Wait.UntilAsync(() => stack.Flows.Single().State == TcpState.TimeWait, "TIME-WAIT", TimeSpan.FromSeconds(10));
        var old = stack.Flows.Single();

        stack.Tick();
        clock.NowMilliseconds += options.Tcp.TimeWaitMs - 1;
        stack.Tick();
        Assert.Same(old, Assert.Single(stack.Flows));

        // A new SYN on the tuple replaces the flow in TIME-WAIT; the old one's expiry must leave the new one alone.
        sink.Take();
        stack.HandlePacket(Tcp(TcpFlags.Syn, 5000, 0, 1460));
        await WaitForAsync(sink, 1);
        var fresh = Assert.Single(stack.Flows);
        Assert.NotSame(old, fresh);
        clock.NowMilliseconds += 1;
        stack.Tick();
        Assert.Equal(TcpState.Closed, old.State);
        Assert.Same(fresh, Assert.Single(stack.Flows));
    }

    [Fact]
    public async Task SegmentForUnknownFlow_GetsRst_AndRstGetsNothing()
    {
        var sink = new ListSink();
        await using var stack = new UserSpaceStack(sink, new Refusing());
        stack.HandlePacket(Tcp(TcpFlags.Ack, 100, 777));
        var rst = Sent.Parse(Assert.Single(sink.Take()));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(777u, rst.Seq);
        stack.HandlePacket(Tcp(TcpFlags.Rst, 100, 0));
        Assert.Empty(sink.Take());
    }

    [Fact]
    public async Task FlowLimit_ResetsNewSyns()
    {
        var sink = new ListSink();
        await using var stack = new UserSpaceStack(sink, new Refusing(), new StackOptions { MaxFlows = 0 });
        stack.HandlePacket(Tcp(TcpFlags.Syn, 100, 0, 1460));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, Sent.Parse(Assert.Single(sink.Take())).Flags);
        Assert.Equal(1, stack.Counters.TcpFlowsRejectedByLimit);
    }

    [Fact]
    public async Task Udp_NotServed_GetsPortUnreachable_IcmpAndFragmentsAreDroppedWithCounters()
    {
        var sink = new ListSink();
        await using var stack = new UserSpaceStack(sink, new Refusing());
        var buf = new byte[200];
        var n = UdpDatagram.Write(buf, false, Client, Cluster, 5000, 9999, "x"u8);
        stack.HandlePacket(buf.AsSpan(0, n));
        var reply = Assert.Single(sink.Take());
        IpPacket.TryParse(reply, out var ip);
        Assert.Equal(IpProtocol.Icmp, ip.Protocol);
        Assert.Equal(3, reply[ip.PayloadOffset]);
        // Whatever the source port (its first byte is no ICMP type), and over IPv6 too.
        foreach (var (v6, from, to, port) in new[] { (false, Client, Cluster, 800), (true, Client6, Cluster6, 5000) })
        {
            n = UdpDatagram.Write(buf, v6, from, to, (ushort)port, 9999, "x"u8);
            stack.HandlePacket(buf.AsSpan(0, n));
            reply = Assert.Single(sink.Take());
            IpPacket.TryParse(reply, out ip);
            Assert.Equal((v6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp, v6 ? 1 : 3), (ip.Protocol, (int)reply[ip.PayloadOffset]));
        }
        // Not about a datagram to a multicast address.
        n = UdpDatagram.Write(buf, false, Client, IpPacket.FromAddress(IPAddress.Parse("224.0.0.251")), 5353, 5353, "x"u8);
        stack.HandlePacket(buf.AsSpan(0, n));
        Assert.Empty(sink.Take());

        // An ICMP echo request: no reply.
        var echo = new byte[28];
        IpPacket.WriteHeader(echo, false, Client, Cluster, IpProtocol.Icmp, 8);
        echo[20] = 8;
        stack.HandlePacket(echo);
        Assert.Empty(sink.Take());
        Assert.Equal(1, stack.Counters.IcmpIgnored);

        // A fragment: counted, dropped.
        buf[6] = 0x20;
        buf[10] = 0;
        buf[11] = 0;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(buf.AsSpan(10), Checksum.Finish(Checksum.Add(0, buf.AsSpan(0, 20))));
        stack.HandlePacket(buf.AsSpan(0, n));
        Assert.Empty(sink.Take());
        Assert.Equal(1, stack.Counters.Fragments);
    }

    private sealed class Reverse : IUdpDatagramHandler
    {
        public bool Serves(IPEndPoint destination) => destination.Port == 53;

        public ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> datagram, IPEndPoint client, IPEndPoint destination,
            CancellationToken cancellationToken) => ValueTask.FromResult<ReadOnlyMemory<byte>>(datagram.ToArray().Reverse().ToArray());
    }

    [Fact]
    public async Task Udp_ToHandler_IsAnsweredFromTheDestinationAddress()
    {
        var sink = new ListSink();
        await using var stack = new UserSpaceStack(sink, new Refusing(), udp: new Reverse());
        var buf = new byte[200];
        var n = UdpDatagram.Write(buf, false, Client, Cluster, 5000, 53, "abc"u8);
        stack.HandlePacket(buf.AsSpan(0, n));
        var reply = Assert.Single(await WaitForAsync(sink, 1));
        IpPacket.TryParse(reply, out var ip);
        UdpDatagram.TryParse(reply, ip, out var udp);
        Assert.Equal((Cluster, Client, (ushort)53, (ushort)5000), (ip.Source, ip.Destination, udp.SourcePort, udp.DestinationPort));
        Assert.Equal("cba"u8.ToArray(), reply.AsSpan(udp.DataOffset, udp.DataLength).ToArray());
    }

    /// <summary>A device fed by the test: packets queued in <see cref="In"/> are read by the stack; what it writes collects in <see cref="Out"/>.</summary>
    private sealed class QueueDevice : IPacketDevice
    {
        public System.Collections.Concurrent.BlockingCollection<byte[]> In { get; } = [];

        public ListSink Out { get; } = new();

        public int Mtu => 1500;

        public int ReadPacket(Span<byte> buffer)
        {
            try
            {
                var packet = In.Take();
                packet.CopyTo(buffer);
                return packet.Length;
            }
            catch (InvalidOperationException)
            {
                return 0;
            }
        }

        public void WritePacket(ReadOnlySpan<byte> packet) => Out.Send(packet);

        public void Dispose() => In.CompleteAdding();
    }

    /// <summary>Dials every flow to one loopback listener, whatever its destination.</summary>
    private sealed class ToListener(System.Net.Sockets.TcpListener listener) : IFlowDialer
    {
        public async Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
        {
            var client = new System.Net.Sockets.TcpClient();
            await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint, cancellationToken);
            return client.GetStream();
        }
    }

    /// <summary>Waits until the stack's timer has not run for a whole poll interval (it would run every 10 ms if it ticked).</summary>
    private static Task TimerStopsAsync(UserSpaceStack stack, string when)
    {
        long last = -1;
        return Wait.UntilAsync(() =>
        {
            var now = Interlocked.Read(ref stack.Counters.TimerTicks);
            var still = now == last;
            last = now;
            return still;
        }, "the stack's timer to stop " + when, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public async Task Timer_RunsOnlyWhileAFlowHasATimerArmed()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var device = new QueueDevice();
        await using var stack = new UserSpaceStack(device, new ToListener(listener));
        stack.Start();
        await TimerStopsAsync(stack, "with no flows");

        // A SYN: the SYN-ACK's retransmission timer runs until the handshake ends, then nothing is left to time.
        device.In.Add(Tcp(TcpFlags.Syn, 100, 0, 1460));
        var synAck = Sent.Parse(Assert.Single(await WaitForAsync(device.Out, 1)));
        using var far = await listener.AcceptSocketAsync();
        device.In.Add(Tcp(TcpFlags.Ack, 101, synAck.Seq + 1));
        await Wait.UntilAsync(() => stack.Flows.Single().State == TcpState.Established, "the flow established", TimeSpan.FromSeconds(10));
        await TimerStopsAsync(stack, "with an idle flow");

        // The far end answers and the client never acknowledges: the idle flow's new retransmission timer starts the
        // timer again, and it retransmits.
        await far.SendAsync("hi"u8.ToArray());
        var data = Sent.Parse(Assert.Single(await WaitForAsync(device.Out, 1)));
        Assert.Equal("hi"u8.ToArray(), data.Data);
        var again = Sent.Parse(Assert.Single(await WaitForAsync(device.Out, 1)));
        Assert.Equal((data.Seq, "hi"), (again.Seq, System.Text.Encoding.ASCII.GetString(again.Data)));
        Assert.True(stack.Counters.TcpRetransmits >= 1);

        device.In.Add(Tcp(TcpFlags.Ack, 101, data.Seq + 2));
        await TimerStopsAsync(stack, "once the data was acknowledged");
        Assert.Equal(TcpState.Established, stack.Flows.Single().State);
    }

    private sealed class FailingDevice : IPacketDevice
    {
        public int Mtu => 1500;

        public int ReadPacket(Span<byte> buffer) => throw new IOException("device gone");

        public void WritePacket(ReadOnlySpan<byte> packet)
        {
        }

        public void Dispose()
        {
        }
    }

    [Fact]
    public async Task DeviceFailure_FaultsCompletion()
    {
        await using var stack = new UserSpaceStack(new FailingDevice(), new Refusing());
        stack.Start();
        var e = await Assert.ThrowsAsync<IOException>(() => stack.Completion.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("device gone", e.Message);
    }
}
