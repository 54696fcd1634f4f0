using System.Buffers;
using System.Buffers.Binary;

namespace KtConnect.Engine.Net;

/// <summary>Bounds of <see cref="FragmentReassembler"/>.</summary>
public sealed record ReassemblyOptions
{
    /// <summary>How long an incomplete datagram is kept (RFC 791 suggests 15 s for IPv4, RFC 8200 60 s for IPv6; one value here).</summary>
    public int TimeoutMs { get; init; } = 15_000;

    /// <summary>Incomplete datagrams kept at once, from all sources.</summary>
    public int MaxDatagrams { get; init; } = 64;

    /// <summary>Incomplete datagrams kept at once from one source address, so that one sender cannot take every slot.</summary>
    public int MaxDatagramsPerSource { get; init; } = 8;

    /// <summary>Buffer bytes held by incomplete datagrams, in total (each reserves its maximum size, 64 KiB).</summary>
    public long MaxBytes { get; init; } = 4L << 20;
}

/// <summary>
/// Reassembles IPv4 fragments and IPv6 fragment-header fragments into whole packets the stack then parses as
/// usual. Policy: a fragment that overlaps another one discards the whole datagram (mandatory for IPv6 by
/// RFC 5722, chosen for IPv4 too: overlap is only ever an attack or a broken sender, and a first-wins or
/// last-wins rule is what lets crafted overlaps rewrite headers); the datagram's key stays poisoned until its
/// timeout so that its remaining fragments are dropped too. An exact duplicate (same offset, length and bytes) is
/// ignored, since links do duplicate. Memory is bounded per source, in count and in bytes; a fragment that
/// would exceed a bound is dropped rather than evicting someone else's progress. Thread-safe (one lock).
/// </summary>
public sealed class FragmentReassembler : IDisposable
{
    private const int MaxPayload = 65535;

    private readonly ReassemblyOptions _options;
    private readonly NetCounters _counters;
    private readonly Dictionary<Key, Datagram> _pending = [];
    private readonly Dictionary<UInt128, int> _perSource = [];
    private readonly object _gate = new();
    private long _bytes;

    public FragmentReassembler(ReassemblyOptions? options, NetCounters counters)
    {
        _options = options ?? new ReassemblyOptions();
        _counters = counters ?? throw new ArgumentNullException(nameof(counters));
    }

    /// <summary>Incomplete datagrams held now (tests and diagnostics).</summary>
    public int Pending
    {
        get
        {
            lock (_gate) return _pending.Count;
        }
    }

    /// <summary>Buffer bytes held now.</summary>
    public long BytesHeld
    {
        get
        {
            lock (_gate) return _bytes;
        }
    }

    private readonly record struct Key(bool V6, UInt128 Source, UInt128 Destination, byte Protocol, uint Id);

    private sealed class Datagram
    {
        public required byte[] Buffer { get; set; }          // header area + payload at PayloadStart
        public required long Deadline;
        public readonly List<(int Start, int End)> Ranges = [];
        public int HeaderLength = -1;           // unfragmentable part, known once offset 0 arrived
        public int NextHeaderAt;                // IPv6: byte that must name the upper protocol after reassembly
        public byte Upper;                      // IPv6: the first fragment's fragment-header "next header"
        public int PayloadLength = -1;          // known once the last fragment arrived
        public int Received;
        public bool Poisoned;
    }

    /// <summary>Where the payload goes in a datagram's buffer: room for the largest IPv4 header or IPv6 header chain we accept.</summary>
    private const int PayloadStart = 1024;

    /// <summary>
    /// Adds one fragment (<paramref name="ip"/> is what <see cref="IpPacket.TryParse"/> reported as a fragment).
    /// Returns the whole packet, in a pooled array the caller must return to <see cref="ArrayPool{T}.Shared"/>,
    /// when this fragment completed it; otherwise null.
    /// </summary>
    public byte[]? Add(ReadOnlySpan<byte> packet, in IpPacket ip, long now, out int length)
    {
        length = 0;
        Interlocked.Increment(ref _counters.Fragments);
        if (!TryReadFragment(packet, ip, out var id, out var offset, out var more, out var headerLength, out var nextHeaderAt))
        {
            Interlocked.Increment(ref _counters.FragmentsDropped);
            return null;
        }
        var data = packet.Slice(ip.PayloadOffset, ip.PayloadLength);
        // Every fragment but the last carries a multiple of 8 bytes; the datagram fits the 16-bit length.
        if ((more && (data.Length % 8 != 0 || data.Length == 0)) || offset + data.Length > MaxPayload - (ip.IsV6 ? 0 : headerLength)
            || headerLength > PayloadStart)
        {
            Interlocked.Increment(ref _counters.FragmentsDropped);
            return null;
        }
        var key = new Key(ip.IsV6, ip.Source, ip.Destination, ip.IsV6 ? (byte)0 : ip.Protocol, id);
        lock (_gate)
        {
            Expire(now);
            if (!_pending.TryGetValue(key, out var d))
            {
                if (_pending.Count >= _options.MaxDatagrams || _bytes + PayloadStart + MaxPayload > _options.MaxBytes
                    || _perSource.GetValueOrDefault(ip.Source) >= _options.MaxDatagramsPerSource)
                {
                    Interlocked.Increment(ref _counters.FragmentsDropped);
                    return null;
                }
                d = new Datagram { Buffer = ArrayPool<byte>.Shared.Rent(PayloadStart + MaxPayload), Deadline = now + _options.TimeoutMs };
                _pending[key] = d;
                _perSource[ip.Source] = _perSource.GetValueOrDefault(ip.Source) + 1;
                _bytes += d.Buffer.Length;
            }
            if (d.Poisoned)
            {
                Interlocked.Increment(ref _counters.FragmentsDropped);
                return null;
            }
            var start = offset;
            var end = offset + data.Length;
            foreach (var (s, e) in d.Ranges)
            {
                if (end <= s || start >= e) continue;
                if (s == start && e == end && data.SequenceEqual(d.Buffer.AsSpan(PayloadStart + s, e - s)))
                {
                    Interlocked.Increment(ref _counters.FragmentsDuplicate);
                    return null;
                }
                Poison(d);
                Interlocked.Increment(ref _counters.FragmentsOverlapping);
                return null;
            }
            // A second "last" fragment that disagrees on the length, or data past the known end, is as bad as an overlap.
            if ((!more && d.PayloadLength >= 0 && d.PayloadLength != end) || (d.PayloadLength >= 0 && end > d.PayloadLength)
                || (!more && d.Ranges.Any(r => r.End > end)))
            {
                Poison(d);
                Interlocked.Increment(ref _counters.FragmentsOverlapping);
                return null;
            }
            if (!more) d.PayloadLength = end;
            if (offset == 0)
            {
                packet[..headerLength].CopyTo(d.Buffer.AsSpan(PayloadStart - headerLength));
                d.HeaderLength = headerLength;
                d.NextHeaderAt = nextHeaderAt;
                d.Upper = ip.Protocol;
            }
            data.CopyTo(d.Buffer.AsSpan(PayloadStart + offset));
            d.Ranges.Add((start, end));
            d.Received += data.Length;
            if (d.PayloadLength < 0 || d.HeaderLength < 0 || d.Received != d.PayloadLength) return null;

            // Complete: no overlaps and as many bytes as the length means no holes.
            if (d.HeaderLength + d.PayloadLength > (ip.IsV6 ? MaxPayload + IpPacket.V6HeaderLength : MaxPayload))
            {
                Remove(key, d, returnBuffer: true);
                Interlocked.Increment(ref _counters.FragmentsDropped);
                return null;
            }
            Remove(key, d, returnBuffer: false);
            Interlocked.Increment(ref _counters.FragmentsReassembled);
            return Finish(d, ip.IsV6, out length);
        }
    }

    private static byte[] Finish(Datagram d, bool v6, out int length)
    {
        var h = d.HeaderLength;
        var total = h + d.PayloadLength;
        var result = ArrayPool<byte>.Shared.Rent(total);
        d.Buffer.AsSpan(PayloadStart - h, total).CopyTo(result);
        ArrayPool<byte>.Shared.Return(d.Buffer);
        var p = result.AsSpan(0, total);
        if (v6)
        {
            // The fragment header is gone: the header before it names the upper protocol, the payload length shrinks.
            p[d.NextHeaderAt] = d.Upper;
            BinaryPrimitives.WriteUInt16BigEndian(p[4..], (ushort)(total - IpPacket.V6HeaderLength));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(p[2..], (ushort)total);
            BinaryPrimitives.WriteUInt16BigEndian(p[6..], 0);
            p[10] = 0;
            p[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(p[10..], Checksum.Finish(Checksum.Add(0, p[..h])));
        }
        length = total;
        return result;
    }

    /// <summary>Drops incomplete datagrams whose time is up. The stack's timer calls it.</summary>
    public void Tick(long now)
    {
        lock (_gate) Expire(now);
    }

    private void Expire(long now)
    {
        if (_pending.Count == 0) return;
        List<Key>? expired = null;
        foreach (var (k, d) in _pending)
        {
            if (now >= d.Deadline) (expired ??= []).Add(k);
        }
        if (expired is null) return;
        foreach (var k in expired)
        {
            var d = _pending[k];
            if (!d.Poisoned) Interlocked.Increment(ref _counters.FragmentsTimedOut);
            Remove(k, d, returnBuffer: true);
        }
    }

    /// <summary>Keeps the key (so later fragments of the datagram are dropped) but frees its buffer now.</summary>
    private void Poison(Datagram d)
    {
        d.Poisoned = true;
        d.Ranges.Clear();
        _bytes -= d.Buffer.Length;
        ArrayPool<byte>.Shared.Return(d.Buffer);
        d.Buffer = [];
    }

    private void Remove(Key k, Datagram d, bool returnBuffer)
    {
        _pending.Remove(k);
        var n = _perSource[k.Source] - 1;
        if (n == 0) _perSource.Remove(k.Source);
        else _perSource[k.Source] = n;
        if (!d.Poisoned)
        {
            _bytes -= d.Buffer.Length;
            if (returnBuffer) ArrayPool<byte>.Shared.Return(d.Buffer);
        }
    }

    /// <summary>
    /// The fragment's identification, byte offset and more-fragments flag, the length of the part every fragment
    /// repeats (IPv4 header; IPv6 header and extension headers before the fragment header) and, for IPv6, which
    /// byte names the header after it. False for a fragment this reassembler will not handle.
    /// </summary>
    private static bool TryReadFragment(ReadOnlySpan<byte> packet, in IpPacket ip, out uint id, out int offset, out bool more,
        out int headerLength, out int nextHeaderAt)
    {
        id = 0;
        offset = 0;
        more = false;
        headerLength = 0;
        nextHeaderAt = 0;
        if (!ip.IsV6)
        {
            var field = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
            id = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
            offset = (field & 0x1FFF) * 8;
            more = (field & 0x2000) != 0;
            headerLength = ip.PayloadOffset;
            return true;
        }
        var fragmentAt = ip.PayloadOffset - 8;
        if (fragmentAt < IpPacket.V6HeaderLength || ip.PayloadOffset > packet.Length) return false;
        // Find the byte that names the fragment header: the fixed header's, or the last extension header's.
        nextHeaderAt = 6;
        var at = IpPacket.V6HeaderLength;
        while (at < fragmentAt)
        {
            nextHeaderAt = at;
            at += (packet[at + 1] + 1) * 8;
        }
        if (at != fragmentAt || packet[nextHeaderAt] != 44) return false;
        var off = BinaryPrimitives.ReadUInt16BigEndian(packet[(fragmentAt + 2)..]);
        offset = off & 0xFFF8;
        more = (off & 1) != 0;
        id = BinaryPrimitives.ReadUInt32BigEndian(packet[(fragmentAt + 4)..]);
        headerLength = fragmentAt;
        return true;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var (k, d) in _pending.ToList()) Remove(k, d, returnBuffer: true);
        }
    }
}
