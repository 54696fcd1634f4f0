using System.Buffers.Binary;
using System.Net;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public class PacketCodecTests
{
    private static readonly UInt128 A4 = IpPacket.FromAddress(IPAddress.Parse("10.1.2.3"));
    private static readonly UInt128 B4 = IpPacket.FromAddress(IPAddress.Parse("172.20.0.9"));
    private static readonly UInt128 A6 = IpPacket.FromAddress(IPAddress.Parse("fd00::1"));
    private static readonly UInt128 B6 = IpPacket.FromAddress(IPAddress.Parse("fd00:1::abcd"));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tcp_RoundTrips_WithOptionsAndPayload(bool v6)
    {
        var (a, b) = v6 ? (A6, B6) : (A4, B4);
        var buf = new byte[2000];
        var payload = "hello, world"u8.ToArray();
        payload.CopyTo(buf.AsSpan(TcpSegment.HeaderSpace(v6, true)));
        var n = TcpSegment.Write(buf, v6, a, b, 1234, 80, 1000, 2000, TcpFlags.Syn | TcpFlags.Ack, 5000, payload.Length, 1460, 7);
        var packet = buf.AsSpan(0, n);

        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(packet, out var ip));
        Assert.Equal(v6, ip.IsV6);
        Assert.Equal(a, ip.Source);
        Assert.Equal(b, ip.Destination);
        Assert.Equal(IpProtocol.Tcp, ip.Protocol);
        Assert.Equal(ParseStatus.Ok, TcpSegment.TryParse(packet, ip, out var tcp));
        Assert.Equal(1234, tcp.SourcePort);
        Assert.Equal(80, tcp.DestinationPort);
        Assert.Equal(1000u, tcp.Sequence);
        Assert.Equal(2000u, tcp.Acknowledgment);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, tcp.Flags);
        Assert.Equal(5000, tcp.Window);
        Assert.Equal(1460, tcp.Mss);
        Assert.Equal(7, tcp.WindowScale);
        Assert.Equal(payload, packet.Slice(tcp.DataOffset, tcp.DataLength).ToArray());
    }

    [Fact]
    public void Ipv4Checksum_MatchesKnownHeader()
    {
        // RFC 1071-style example header (Wikipedia's worked example): checksum 0xB861.
        var header = Convert.FromHexString("450000730000400040110000C0A80001C0A800C7");
        var sum = Checksum.Finish(Checksum.Add(0, header));
        Assert.Equal(0xB861, sum);
    }

    [Fact]
    public void FastChecksum_EqualsReference_ForEveryLengthAndAlignment()
    {
        var rng = new Random(5);
        var data = new byte[2100];
        for (var round = 0; round < 200; round++)
        {
            rng.NextBytes(data);
            if (round % 3 == 0) data.AsSpan().Fill(0xFF); // worst case for carries
            var offset = rng.Next(0, 8);
            var length = round < 100 ? round : rng.Next(0, data.Length - offset);
            var span = data.AsSpan(offset, length);
            var start = (ulong)rng.Next(0, 1 << 20);
            Assert.Equal(Checksum.Finish(Checksum.AddReference(start, span)), Checksum.Finish(Checksum.Add(start, span)));
        }
    }

    [Theory]
    [InlineData(65535, true)]
    [InlineData(65520, false)]
    [InlineData(4097, true)]
    [InlineData(1000, false)]
    public void FastChecksum_EqualsReference_ForTunSizedPackets(int length, bool allOnes)
    {
        // The vector path runs on packets of a few hundred bytes and up; all-0xFF words are its worst case for carries.
        var data = new byte[length + 7];
        new Random(length).NextBytes(data);
        if (allOnes) data.AsSpan().Fill(0xFF);
        for (var offset = 0; offset < 8; offset += 3)
        {
            var span = data.AsSpan(offset, length);
            Assert.Equal(Checksum.Finish(Checksum.AddReference(0xFFFF_FFFF, span)), Checksum.Finish(Checksum.Add(0xFFFF_FFFF, span)));
        }
    }

    [Fact]
    public void CorruptedTcpChecksum_IsMalformed()
    {
        var buf = new byte[100];
        var n = TcpSegment.Write(buf, false, A4, B4, 1, 2, 3, 4, TcpFlags.Ack, 100, 0);
        buf[n - 1] ^= 0x40;
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(buf.AsSpan(0, n), out var ip));
        Assert.Equal(ParseStatus.Malformed, TcpSegment.TryParse(buf.AsSpan(0, n), ip, out _));
    }

    [Fact]
    public void Ipv4Fragment_IsReportedAsFragment()
    {
        var buf = new byte[100];
        var n = UdpDatagram.Write(buf, false, A4, B4, 5, 53, "x"u8);
        BinaryPrimitives.WriteUInt16BigEndian(buf.AsSpan(6), 0x2000); // MF
        buf[10] = 0;
        buf[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(buf.AsSpan(10), Checksum.Finish(Checksum.Add(0, buf.AsSpan(0, 20))));
        Assert.Equal(ParseStatus.Fragment, IpPacket.TryParse(buf.AsSpan(0, n), out _));
    }

    [Fact]
    public void Ipv6FragmentHeader_IsReportedAsFragment()
    {
        var buf = new byte[100];
        IpPacket.WriteHeader(buf, true, A6, B6, 44, 16);
        buf[40] = IpProtocol.Udp;
        Assert.Equal(ParseStatus.Fragment, IpPacket.TryParse(buf.AsSpan(0, 56), out var ip));
        Assert.Equal(IpProtocol.Udp, ip.Protocol);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Udp_RoundTrips(bool v6)
    {
        var (a, b) = v6 ? (A6, B6) : (A4, B4);
        var buf = new byte[200];
        var n = UdpDatagram.Write(buf, v6, a, b, 5353, 53, "query"u8);
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(buf.AsSpan(0, n), out var ip));
        Assert.Equal(ParseStatus.Ok, UdpDatagram.TryParse(buf.AsSpan(0, n), ip, out var udp));
        Assert.Equal(5353, udp.SourcePort);
        Assert.Equal(53, udp.DestinationPort);
        Assert.Equal("query"u8.ToArray(), buf.AsSpan(udp.DataOffset, udp.DataLength).ToArray());
    }

    [Theory]
    [InlineData(false, 3, 3)]
    [InlineData(true, 1, 4)]
    public void PortUnreachable_QuotesOffendingPacket_WithValidChecksum(bool v6, int type, int code)
    {
        var (a, b) = v6 ? (A6, B6) : (A4, B4);
        var orig = new byte[200];
        var n = UdpDatagram.Write(orig, v6, a, b, 40000, 9999, "data"u8);
        IpPacket.TryParse(orig.AsSpan(0, n), out var ip);
        var buf = new byte[1500];
        var m = IcmpMessage.WritePortUnreachable(buf, orig.AsSpan(0, n), ip);
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(buf.AsSpan(0, m), out var reply));
        Assert.Equal(b, reply.Source);
        Assert.Equal(a, reply.Destination);
        Assert.Equal(v6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp, reply.Protocol);
        var icmp = buf.AsSpan(reply.PayloadOffset, reply.PayloadLength);
        Assert.Equal(type, icmp[0]);
        Assert.Equal(code, icmp[1]);
        var sum = v6 ? Checksum.PseudoHeader(true, reply.Source, reply.Destination, IpProtocol.IcmpV6, icmp.Length) : 0;
        Assert.Equal(0, Checksum.Finish(Checksum.Add(sum, icmp)));
        Assert.Equal(orig.AsSpan(0, n).ToArray(), icmp[8..].ToArray());
    }

    [Fact]
    public void Parse_ThrowsTypedError_OnGarbage()
    {
        var e = Assert.Throws<MalformedPacketException>(() => IpPacket.Parse(new byte[] { 0x45, 0, 0 }));
        Assert.Equal("MalformedPacket", e.ErrorId);
    }

    [Fact]
    public void Fuzz_MillionMutatedPackets_NeverThrowOrReadOutOfBounds()
    {
        var rng = new Random(20261121);
        var seeds = new List<byte[]>();
        foreach (var v6 in new[] { false, true })
        {
            var (a, b) = v6 ? (A6, B6) : (A4, B4);
            var buf = new byte[300];
            var n = TcpSegment.Write(buf, v6, a, b, 1, 2, 3, 4, TcpFlags.Syn, 100, 10, 1460, 7);
            seeds.Add(buf[..n]);
            n = UdpDatagram.Write(buf, v6, a, b, 1, 53, "abcdefgh"u8);
            seeds.Add(buf[..n]);
        }
        var sink = new CountingSink();
        var stack = new UserSpaceStack(sink, new RefusingDialer());
        var scratch = new byte[400];
        var counts = new int[3];
        for (var i = 0; i < 1_000_000; i++)
        {
            int len;
            if (i % 10 == 0)
            {
                len = rng.Next(0, 120);
                rng.NextBytes(scratch.AsSpan(0, len));
            }
            else
            {
                var seed = seeds[rng.Next(seeds.Count)];
                seed.CopyTo(scratch, 0);
                len = seed.Length;
                var flips = rng.Next(1, 4);
                for (var f = 0; f < flips; f++) scratch[rng.Next(len)] ^= (byte)(1 << rng.Next(8));
                if (rng.Next(8) == 0) len = rng.Next(len + 1);
            }
            // Spans are bounds-checked: any read past len throws and fails the test.
            var packet = scratch.AsSpan(0, len);
            var status = IpPacket.TryParse(packet, out var ip);
            counts[(int)status]++;
            if (status == ParseStatus.Ok && ip.Protocol == IpProtocol.Tcp) TcpSegment.TryParse(packet, ip, out _);
            if (status == ParseStatus.Ok && ip.Protocol == IpProtocol.Udp) UdpDatagram.TryParse(packet, ip, out _);
            if (i % 50 == 0) stack.HandlePacket(packet.ToArray());
        }
        Assert.True(counts[(int)ParseStatus.Malformed] > 100_000);
        Assert.True(stack.Counters.Malformed > 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PartialTcpChecksum_HoldsThePseudoHeaderSum_AndFinishingItGivesTheFullOne(bool v6)
    {
        var (a, b) = v6 ? (A6, B6) : (A4, B4);
        var payload = new byte[3001];
        Random.Shared.NextBytes(payload);
        var space = TcpSegment.HeaderSpace(v6);
        var full = new byte[space + payload.Length];
        var partial = new byte[space + payload.Length];
        payload.CopyTo(full.AsSpan(space));
        payload.CopyTo(partial.AsSpan(space));
        var n = TcpSegment.Write(full, v6, a, b, 1234, 80, 1, 2, TcpFlags.Ack | TcpFlags.Psh, 100, payload.Length);
        TcpSegment.Write(partial, v6, a, b, 1234, 80, 1, 2, TcpFlags.Ack | TcpFlags.Psh, 100, payload.Length, partialChecksum: true);

        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(partial, out var ip));
        var t = partial.AsSpan(ip.PayloadOffset, ip.PayloadLength);
        Assert.Equal(Checksum.Fold(Checksum.PseudoHeader(v6, a, b, IpProtocol.Tcp, t.Length)), BinaryPrimitives.ReadUInt16BigEndian(t[16..]));
        // Unverified, it parses only when trusted (as the kernel's own partial segments do).
        Assert.Equal(ParseStatus.Malformed, TcpSegment.TryParse(partial, ip, out _));
        Assert.Equal(ParseStatus.Ok, TcpSegment.TryParse(partial, ip, out var seg, checksumTrusted: true));
        Assert.Equal(payload.Length, seg.DataLength);

        // What the kernel does with csum_start/csum_offset: sum from the TCP header on, store the complement.
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Finish(Checksum.Add(0, t)));
        Assert.Equal(full.AsSpan(0, n).ToArray(), partial);
    }

    [Fact]
    public void PartialUdpChecksum_FromTheKernel_ParsesOnlyWhenTrusted()
    {
        var buf = new byte[100];
        var n = UdpDatagram.Write(buf, false, A4, B4, 5353, 53, "query"u8);
        var u = buf.AsSpan(IpPacket.V4HeaderLength, n - IpPacket.V4HeaderLength);
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], Checksum.Fold(Checksum.PseudoHeader(false, A4, B4, IpProtocol.Udp, u.Length)));
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(buf.AsSpan(0, n), out var ip));
        Assert.Equal(ParseStatus.Malformed, UdpDatagram.TryParse(buf.AsSpan(0, n), ip, out _));
        Assert.Equal(ParseStatus.Ok, UdpDatagram.TryParse(buf.AsSpan(0, n), ip, out var udp, checksumTrusted: true));
        Assert.Equal("query"u8.ToArray(), buf.AsSpan(udp.DataOffset, udp.DataLength).ToArray());
    }

    [Fact]
    public void A_sink_or_device_that_takes_packets_only_whole_gets_the_pieces_of_one_joined()
    {
        var sink = new WholeOnly();
        ((IPacketSink)sink).Send([1, 2], [3], [4, 5]);
        Assert.Equal([1, 2, 3, 4, 5], Assert.Single(sink.Packets));
        ((IPacketDevice)sink).WritePacket([6], [7, 8], [], partialTcpChecksum: true);
        Assert.Equal([6, 7, 8], sink.Packets[1]);
        Assert.True(sink.LastPartial);
    }

    private sealed class WholeOnly : IPacketSink, IPacketDevice
    {
        public List<byte[]> Packets { get; } = [];

        public bool LastPartial { get; private set; }

        public int Mtu => 1500;

        public void Send(ReadOnlySpan<byte> packet) => Packets.Add(packet.ToArray());

        public int ReadPacket(Span<byte> buffer) => 0;

        public void WritePacket(ReadOnlySpan<byte> packet) => Send(packet);

        public void WritePacket(ReadOnlySpan<byte> packet, bool partialTcpChecksum)
        {
            LastPartial = partialTcpChecksum;
            Send(packet);
        }

        public void Dispose()
        {
        }
    }

    private sealed class CountingSink : IPacketSink
    {
        public int Count;

        public void Send(ReadOnlySpan<byte> packet) => Count++;
    }

    private sealed class RefusingDialer : IFlowDialer
    {
        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken) =>
            Task.FromException<Stream>(new IOException("refused"));
    }
}
