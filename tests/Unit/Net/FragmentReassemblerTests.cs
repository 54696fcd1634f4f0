using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using KtConnect.Engine.Net;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Net;

/// <summary>IPv4/IPv6 fragment reassembly: order, overlap (RFC 5722 policy), duplicates, bounds, timeout, fuzz, and the stack's use of it.</summary>
public class FragmentReassemblerTests
{
    private static readonly UInt128 Client4 = IpPacket.FromAddress(IPAddress.Parse("10.0.0.2"));
    private static readonly UInt128 Dns4 = IpPacket.FromAddress(IPAddress.Parse("10.96.0.10"));
    private static readonly UInt128 Client6 = IpPacket.FromAddress(IPAddress.Parse("fd00::2"));
    private static readonly UInt128 Dns6 = IpPacket.FromAddress(IPAddress.Parse("fd00:96::a"));

    private static byte[] Udp(bool v6, int payload, ushort dstPort = 53, UInt128? source = null)
    {
        var data = new byte[payload];
        for (var i = 0; i < payload; i++) data[i] = (byte)(i * 7 + 3);
        var buf = new byte[payload + 48];
        var n = UdpDatagram.Write(buf, v6, source ?? (v6 ? Client6 : Client4), v6 ? Dns6 : Dns4, 5000, dstPort, data);
        return buf[..n];
    }

    /// <summary>Splits a whole packet at the given payload offsets (multiples of 8) into fragments, in order.</summary>
    private static List<byte[]> Fragment(byte[] whole, uint id, params int[] cuts)
    {
        var v6 = whole[0] >> 4 == 6;
        var h = v6 ? 40 : 20;
        var payload = whole.AsSpan(h);
        var bounds = cuts.Prepend(0).Append(payload.Length).ToArray();
        var list = new List<byte[]>();
        for (var i = 0; i + 1 < bounds.Length; i++)
        {
            var (start, end) = (bounds[i], bounds[i + 1]);
            var more = i + 2 < bounds.Length;
            byte[] f;
            if (v6)
            {
                f = new byte[40 + 8 + end - start];
                whole.AsSpan(0, 40).CopyTo(f);
                f[6] = 44;
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(4), (ushort)(f.Length - 40));
                f[40] = whole[6];
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(42), (ushort)(start | (more ? 1 : 0)));
                BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(44), id);
                payload[start..end].CopyTo(f.AsSpan(48));
            }
            else
            {
                f = new byte[20 + end - start];
                whole.AsSpan(0, 20).CopyTo(f);
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)f.Length);
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(4), (ushort)id);
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(6), (ushort)((start / 8) | (more ? 0x2000 : 0)));
                f[10] = f[11] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(10), Checksum.Finish(Checksum.Add(0, f.AsSpan(0, 20))));
                payload[start..end].CopyTo(f.AsSpan(20));
            }
            list.Add(f);
        }
        return list;
    }

    private static byte[]? Feed(FragmentReassembler r, byte[] fragment, long now = 0)
    {
        Assert.Equal(ParseStatus.Fragment, IpPacket.TryParse(fragment, out var ip));
        var whole = r.Add(fragment, ip, now, out var n);
        if (whole is null) return null;
        var copy = whole.AsSpan(0, n).ToArray();
        ArrayPool<byte>.Shared.Return(whole);
        return copy;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OutOfOrderFragments_ReassembleToTheOriginalPacket(bool v6)
    {
        var counters = new NetCounters();
        using var r = new FragmentReassembler(null, counters);
        var whole = Udp(v6, 3000);
        var frags = Fragment(whole, 77, 1200, 2400);
        Assert.Null(Feed(r, frags[2]));
        Assert.Null(Feed(r, frags[0]));
        var got = Feed(r, frags[1]);
        Assert.NotNull(got);
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(got, out var ip));
        Assert.Equal(IpProtocol.Udp, ip.Protocol);
        Assert.Equal(ParseStatus.Ok, UdpDatagram.TryParse(got, ip, out _));
        var h = v6 ? 40 : 20;
        Assert.Equal(whole.AsSpan(h).ToArray(), got.AsSpan(h).ToArray());
        if (v6) Assert.Equal(whole, got); // header restored exactly: next header 17, payload length
        else Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(got.AsSpan(6))); // no MF, no offset
        Assert.Equal((3L, 1L, 0), (counters.Fragments, counters.FragmentsReassembled, r.Pending));
        Assert.Equal(0, r.BytesHeld);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnOverlap_DiscardsTheWholeDatagram_AndItsLaterFragments(bool v6)
    {
        var counters = new NetCounters();
        using var r = new FragmentReassembler(null, counters);
        var whole = Udp(v6, 3000);
        var frags = Fragment(whole, 5, 1200, 2400);
        var overlapping = Fragment(whole, 5, 800, 2400)[1]; // bytes 800..2400 overlap 0..1200 and 1200..2400
        Assert.Null(Feed(r, frags[0]));
        Assert.Null(Feed(r, overlapping));
        Assert.Null(Feed(r, frags[1]));
        Assert.Null(Feed(r, frags[2]));
        Assert.Equal(1, counters.FragmentsOverlapping);
        Assert.Equal(2, counters.FragmentsDropped);
        Assert.Equal(0, counters.FragmentsReassembled);
        Assert.Equal(0, r.BytesHeld); // the poisoned datagram holds no buffer
        r.Tick(15_000);
        Assert.Equal(0, r.Pending);
        // After the timeout the same id may be used again.
        foreach (var f in frags.Take(2)) Assert.Null(Feed(r, f, 20_000));
        Assert.NotNull(Feed(r, frags[2], 20_000));
    }

    [Fact]
    public void AnExactDuplicate_IsIgnored_ButADuplicateWithOtherBytesIsAnOverlap()
    {
        var counters = new NetCounters();
        using var r = new FragmentReassembler(null, counters);
        var frags = Fragment(Udp(false, 2000), 9, 1000);
        Assert.Null(Feed(r, frags[0]));
        Assert.Null(Feed(r, frags[0]));
        Assert.Equal(1, counters.FragmentsDuplicate);
        Assert.NotNull(Feed(r, frags[1]));

        var other = Fragment(Udp(false, 2000), 10, 1000);
        Assert.Null(Feed(r, other[0]));
        var forged = (byte[])other[0].Clone();
        forged[^1] ^= 0xFF;
        Assert.Null(Feed(r, forged));
        Assert.Null(Feed(r, other[1]));
        Assert.Equal(1, counters.FragmentsOverlapping);
    }

    [Fact]
    public void Bounds_PerSourceAndInTotal_DropNewDatagrams_AndTimeoutFreesThem()
    {
        var counters = new NetCounters();
        using var r = new FragmentReassembler(new ReassemblyOptions { MaxDatagramsPerSource = 2, MaxDatagrams = 3, TimeoutMs = 1000 }, counters);
        for (uint id = 1; id <= 3; id++) Assert.Null(Feed(r, Fragment(Udp(false, 2000), id, 1000)[0]));
        Assert.Equal(2, r.Pending); // the third from the same source was refused
        Assert.Equal(1, counters.FragmentsDropped);
        var other = IpPacket.FromAddress(IPAddress.Parse("10.0.0.3"));
        Assert.Null(Feed(r, Fragment(Udp(false, 2000, source: other), 1, 1000)[0]));
        Assert.Null(Feed(r, Fragment(Udp(false, 2000, source: IpPacket.FromAddress(IPAddress.Parse("10.0.0.4"))), 1, 1000)[0]));
        Assert.Equal(3, r.Pending); // total bound
        Assert.True(r.BytesHeld > 0);
        r.Tick(999);
        Assert.Equal(3, r.Pending);
        r.Tick(1000);
        Assert.Equal((0, 0L, 3L), (r.Pending, r.BytesHeld, counters.FragmentsTimedOut));
    }

    [Fact]
    public void MalformedFragments_AreDropped()
    {
        var counters = new NetCounters();
        using var r = new FragmentReassembler(null, counters);
        // A middle fragment whose length is not a multiple of 8.
        var frags = Fragment(Udp(false, 2000), 3, 1000);
        var odd = frags[0][..^3];
        BinaryPrimitives.WriteUInt16BigEndian(odd.AsSpan(2), (ushort)odd.Length);
        odd[10] = odd[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(odd.AsSpan(10), Checksum.Finish(Checksum.Add(0, odd.AsSpan(0, 20))));
        Assert.Null(Feed(r, odd));
        // A fragment that would end past 65535 bytes.
        var far = (byte[])frags[1].Clone();
        BinaryPrimitives.WriteUInt16BigEndian(far.AsSpan(6), 0x1FFF);
        far[10] = far[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(far.AsSpan(10), Checksum.Finish(Checksum.Add(0, far.AsSpan(0, 20))));
        Assert.Null(Feed(r, far));
        Assert.Equal(2, counters.FragmentsDropped);
        Assert.Equal(0, r.Pending);
    }

    [Fact]
    public void Fuzz_RandomFragmentsNeverThrow_OutputAlwaysParses_AndMemoryIsReturned()
    {
        var rng = new Random(4242);
        var counters = new NetCounters();
        using var r = new FragmentReassembler(new ReassemblyOptions { TimeoutMs = 500 }, counters);
        var now = 0L;
        var completed = 0;
        for (var round = 0; round < 3000; round++)
        {
            var v6 = rng.Next(2) == 0;
            var whole = Udp(v6, rng.Next(16, 4000));
            var payloadLength = whole.Length - (v6 ? 40 : 20);
            var cuts = Enumerable.Range(0, rng.Next(0, 5)).Select(_ => rng.Next(1, Math.Max(2, payloadLength / 8)) * 8)
                .Where(c => c < payloadLength).Distinct().Order().ToArray();
            var id = (uint)rng.Next(4);
            var frags = Fragment(whole, id, cuts);
            // Sometimes add a fragment cut differently (overlap), mutate bytes, shuffle, or drop one.
            if (rng.Next(4) == 0 && payloadLength > 16) frags.Add(Fragment(whole, id, 8 * rng.Next(1, payloadLength / 8))[0]);
            if (rng.Next(4) == 0) frags.RemoveAt(rng.Next(frags.Count));
            foreach (var f in frags.OrderBy(_ => rng.Next()))
            {
                if (rng.Next(10) == 0) f[rng.Next(v6 ? 40 : 20, f.Length)] ^= (byte)rng.Next(1, 256);
                if (IpPacket.TryParse(f, out var ip) != ParseStatus.Fragment) continue;
                var got = r.Add(f, ip, now, out var n);
                if (got is null) continue;
                completed++;
                // Mutations may hit the fragment header (next header, offset, id): the result must still be a
                // well-formed, unfragmented packet of the length its header states.
                Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(got.AsSpan(0, n), out var reassembled));
                Assert.Equal(n, reassembled.TotalLength);
                ArrayPool<byte>.Shared.Return(got);
            }
            now += rng.Next(0, 50);
            r.Tick(now);
        }
        r.Tick(now + 1000);
        Assert.Equal((0, 0L), (r.Pending, r.BytesHeld));
        Assert.True(completed > 100, $"only {completed} datagrams completed");
    }

    private sealed class Echo : IUdpDatagramHandler
    {
        public bool Serves(IPEndPoint destination) => destination.Port == 53;

        public ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> datagram, IPEndPoint client, IPEndPoint destination,
            CancellationToken cancellationToken) => ValueTask.FromResult<ReadOnlyMemory<byte>>(BitConverter.GetBytes(datagram.Length));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TheStack_HandsAReassembledUdpDatagramToTheHandler(bool v6)
    {
        var sink = new ListSink();
        await using var stack = new UserSpaceStack(sink, new NoDial(), udp: new Echo());
        foreach (var f in Fragment(Udp(v6, 4000), 1234, 1400, 2800).AsEnumerable().Reverse()) stack.HandlePacket(f);
        var got = await Wait.ForAsync(() => Task.FromResult(sink.Take()), g => g.Count > 0, "the echo of the reassembled datagram",
            timeout: TimeSpan.FromSeconds(10), poll: TimeSpan.FromMilliseconds(10));
        var reply = Assert.Single(got);
        IpPacket.TryParse(reply, out var ip);
        UdpDatagram.TryParse(reply, ip, out var udp);
        Assert.Equal(4000, BitConverter.ToInt32(reply, udp.DataOffset));
        Assert.Equal((3L, 1L), (stack.Counters.Fragments, stack.Counters.FragmentsReassembled));
    }

    [Fact]
    public async Task AFragmentInsideAFragment_IsDroppedAsMalformed_NotRecursedInto()
    {
        // The outer datagram, once reassembled, is itself an IPv6 fragment (its next header is 44).
        var inner = Fragment(Udp(true, 64), 1, 32)[0];
        var frags = Fragment(inner, 2, 16);
        var sink = new ListSink();
        await using var stack = new UserSpaceStack(sink, new NoDial(), udp: new Echo());
        foreach (var f in frags) stack.HandlePacket(f);
        Assert.Equal(1, stack.Counters.FragmentsReassembled);
        Assert.Equal(1, stack.Counters.Malformed);
        Assert.Equal(2, stack.Counters.Fragments);
        Assert.Empty(sink.Take());
    }

    private sealed class NoDial : IFlowDialer
    {
        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken) => throw new InvalidOperationException();
    }
}
