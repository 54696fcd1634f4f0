using System.Net;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

internal sealed class FakeClock : IClock
{
    public long NowMilliseconds { get; set; } = TcpHarness.StartMilliseconds;
}

internal sealed class ListSink(bool partialTcpChecksums = false) : IPacketSink
{
    private readonly List<byte[]> _packets = [];

    public bool TakesPartialTcpChecksums => partialTcpChecksums;

    public void Send(ReadOnlySpan<byte> packet)
    {
        lock (_packets) _packets.Add(packet.ToArray());
    }

    /// <summary>Segments sent in pieces, and how many of them had their payload in two pieces.</summary>
    public (int Gathered, int Wrapped) Pieces { get; private set; }

    public void Send(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2)
    {
        lock (_packets)
        {
            _packets.Add([.. headers, .. payload1, .. payload2]);
            Pieces = (Pieces.Gathered + 1, Pieces.Wrapped + (payload2.IsEmpty ? 0 : 1));
        }
    }

    public List<byte[]> Take()
    {
        lock (_packets)
        {
            var list = _packets.ToList();
            _packets.Clear();
            return list;
        }
    }
}

/// <summary>A parsed segment our side emitted.</summary>
internal sealed record Sent(TcpSegment Segment, byte[] Data, byte[] Raw)
{
    public TcpFlags Flags => Segment.Flags;

    public uint Seq => Segment.Sequence;

    public uint Ack => Segment.Acknowledgment;

    public static Sent Parse(byte[] raw, bool partialChecksum = false)
    {
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(raw, out var ip));
        Assert.Equal(ParseStatus.Ok, TcpSegment.TryParse(raw, ip, out var tcp, checksumTrusted: partialChecksum));
        return new Sent(tcp, raw.AsSpan(tcp.DataOffset, tcp.DataLength).ToArray(), raw);
    }
}

/// <summary>Drives one <see cref="TcpConnection"/> with handcrafted client segments and a fake clock.</summary>
internal sealed class TcpHarness
{
    public const uint Iss = 5000;
    public const uint ClientIsn = 1000;
    public const long StartMilliseconds = 1_000_000;
    public static readonly UInt128 Client = IpPacket.FromAddress(IPAddress.Parse("10.0.0.2"));
    public static readonly UInt128 Server = IpPacket.FromAddress(IPAddress.Parse("10.96.0.10"));

    public TcpHarness(TcpOptions? options = null, int clientWindowScale = 2, ushort clientWindow = 16384, ushort clientMss = 1000,
        long memoryLimit = 1L << 30, int ourMss = 1460, ListSink? sink = null)
    {
        Sink = sink ?? new ListSink();
        Options = options ?? new TcpOptions();
        Budget = new MemoryBudget(memoryLimit);
        var syn = Build(TcpFlags.Syn, ClientIsn, 0, [], clientWindow, clientMss, clientWindowScale);
        IpPacket.TryParse(syn, out var ip);
        TcpSegment.TryParse(syn, ip, out var seg);
        var key = new FlowKey(Client, Server, 40000, 80, false);
        Conn = new TcpConnection(key, seg, Iss, ourMss, Sink, Clock, Options, Counters, Budget, (_, on) => TimerList.Add(on));
    }

    /// <summary>The flow's moves on and off the stack's timer list, in order (true: joined).</summary>
    public List<bool> TimerList { get; } = [];

    public FakeClock Clock { get; } = new();

    public ListSink Sink { get; }

    public NetCounters Counters { get; } = new();

    public MemoryBudget Budget { get; }

    public TcpOptions Options { get; }

    public TcpConnection Conn { get; }

    public static byte[] Build(TcpFlags flags, uint seq, uint ack, ReadOnlySpan<byte> data, ushort window = 16384, ushort mss = 0,
        int wscale = -1)
    {
        var buf = new byte[TcpSegment.HeaderSpace(false, mss != 0) + data.Length];
        data.CopyTo(buf.AsSpan(TcpSegment.HeaderSpace(false, mss != 0)));
        var n = TcpSegment.Write(buf, false, Client, Server, 40000, 80, seq, ack, flags, window, data.Length, mss, wscale);
        return buf[..n];
    }

    public void Feed(TcpFlags flags, uint seq, uint ack, ReadOnlySpan<byte> data = default, ushort window = 16384)
    {
        var p = Build(flags, seq, ack, data, window);
        IpPacket.TryParse(p, out var ip);
        TcpSegment.TryParse(p, ip, out var seg);
        Conn.OnSegment(p, seg);
    }

    public List<Sent> Take() => Sink.Take().Select(p => Sent.Parse(p, Sink.TakesPartialTcpChecksums)).ToList();

    /// <summary>SYN, dial accepted, SYN-ACK, ACK: returns the connection established.</summary>
    public void Establish()
    {
        Conn.Accept();
        var synAck = Assert.Single(Take());
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Feed(TcpFlags.Ack, ClientIsn + 1, Iss + 1);
        Assert.Equal(TcpState.Established, Conn.State);
    }

    public void Advance(long ms)
    {
        Clock.NowMilliseconds += ms;
        Conn.Tick();
    }
}
