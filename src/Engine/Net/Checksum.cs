using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KtConnect.Engine.Net;

/// <summary>
/// The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words. Sums are kept in a
/// 64-bit accumulator and folded once at the end; large payloads are summed a SIMD vector at a time.
/// </summary>
public static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to a running sum (not folded).</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        if (!BitConverter.IsLittleEndian || data.Length < 32) return AddBigEndian(sum, data);
        // The one's-complement sum does not care about byte order as long as it is consistent (RFC 1071 §2(B)):
        // sum native little-endian 64-bit words with end-around carry, fold, then swap the 16-bit result.
        ulong s = 0;
        ref var r = ref MemoryMarshal.GetReference(data);
        var i = 0;
        if (Vector.IsHardwareAccelerated && data.Length >= 4 * Vector<byte>.Count)
        {
            // 32-bit words widened into 64-bit lanes: no carries to chase, the folding below takes the total
            // mod 0xFFFF just the same (2^16 = 1 there). A lane would need 2^32 words to overflow.
            Vector<ulong> a0 = default, a1 = default;
            for (; i + 2 * Vector<byte>.Count <= data.Length; i += 2 * Vector<byte>.Count)
            {
                var v = Unsafe.ReadUnaligned<Vector<uint>>(ref Unsafe.Add(ref r, i));
                var w = Unsafe.ReadUnaligned<Vector<uint>>(ref Unsafe.Add(ref r, i + Vector<byte>.Count));
                Vector.Widen(v, out var lo, out var hi);
                Vector.Widen(w, out var lo2, out var hi2);
                a0 += lo + lo2;
                a1 += hi + hi2;
            }
            s = Vector.Sum(a0 + a1);
        }
        for (; i + 8 <= data.Length; i += 8)
        {
            var v = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref r, i));
            s += v;
            if (s < v) s++;
        }
        var tail = 0UL;
        var shift = 0;
        for (; i < data.Length; i++, shift += 8) tail |= (ulong)Unsafe.Add(ref r, i) << shift;
        s += tail;
        if (s < tail) s++;
        s = (s & 0xFFFFFFFF) + (s >> 32);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return sum + BinaryPrimitives.ReverseEndianness((ushort)s);
    }

    private static ulong AddBigEndian(ulong sum, ReadOnlySpan<byte> data)
    {
        var i = 0;
        for (; i + 4 <= data.Length; i += 4) sum += BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
        if (i + 2 <= data.Length)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
            i += 2;
        }
        if (i < data.Length) sum += (uint)data[i] << 8;
        return sum;
    }

    /// <summary>The straightforward big-endian sum, for tests to compare the fast path with.</summary>
    internal static ulong AddReference(ulong sum, ReadOnlySpan<byte> data) => AddBigEndian(sum, data);

    /// <summary>Folds the carries and returns the one's complement, ready to store.</summary>
    public static ushort Finish(ulong sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    /// <summary>
    /// Folds the carries without the complement: what a checksum field holds when the device is to finish the
    /// checksum (Linux CHECKSUM_PARTIAL: the field carries the pseudo-header sum, the device adds the rest).
    /// </summary>
    public static ushort Fold(ulong sum) => (ushort)~Finish(sum);

    /// <summary>Sum of the IPv4 or IPv6 pseudo-header that TCP, UDP and ICMPv6 checksums cover.</summary>
    public static ulong PseudoHeader(bool v6, UInt128 source, UInt128 destination, byte protocol, int length)
    {
        ulong sum = 0;
        if (v6)
        {
            sum += Words(source) + Words(destination);
            sum += (uint)length;
            sum += protocol;
        }
        else
        {
            var s = (uint)source;
            var d = (uint)destination;
            sum += (s >> 16) + (s & 0xFFFF) + (d >> 16) + (d & 0xFFFF);
            sum += protocol;
            sum += (uint)length;
        }
        return sum;
    }

    private static ulong Words(UInt128 a)
    {
        var hi = (ulong)(a >> 64);
        var lo = (ulong)a;
        return (hi >> 32) + (hi & 0xFFFFFFFF) + (lo >> 32) + (lo & 0xFFFFFFFF);
    }
}
