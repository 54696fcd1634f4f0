using System.Buffers.Binary;

namespace KtConnect.Engine.Dns;

/// <summary>
/// Rdata validation and decompression for the types whose rdata holds names. Everything else is copied as is
/// (RFC 3597: unknown types are opaque and never compressed).
/// </summary>
internal static class DnsRdata
{
    public static byte[] ReadUncompressed(ReadOnlySpan<byte> message, int start, int length, DnsType type)
    {
        var end = start + length;
        Span<byte> buffer = stackalloc byte[DnsFlags.MaxNameLength * 2 + 20];
        switch (type)
        {
            case DnsType.A:
                if (length != 4) throw new DnsFormatException("A rdata is not 4 bytes", start);
                break;
            case DnsType.AAAA:
                if (length != 16) throw new DnsFormatException("AAAA rdata is not 16 bytes", start);
                break;
            case DnsType.CNAME or DnsType.NS or DnsType.PTR or DnsType.DNAME:
            {
                var after = DnsNameCodec.Read(message[..end], start, buffer, out var n);
                Expect(after, end, start);
                return buffer[..n].ToArray();
            }
            case DnsType.MX:
            {
                if (length < 3) throw new DnsFormatException("MX rdata too short", start);
                message.Slice(start, 2).CopyTo(buffer);
                var after = DnsNameCodec.Read(message[..end], start + 2, buffer[2..], out var n);
                Expect(after, end, start);
                return buffer[..(2 + n)].ToArray();
            }
            case DnsType.SRV:
            {
                if (length < 7) throw new DnsFormatException("SRV rdata too short", start);
                message.Slice(start, 6).CopyTo(buffer);
                var after = DnsNameCodec.Read(message[..end], start + 6, buffer[6..], out var n);
                Expect(after, end, start);
                return buffer[..(6 + n)].ToArray();
            }
            case DnsType.SOA:
            {
                var after = DnsNameCodec.Read(message[..end], start, buffer, out var m);
                after = DnsNameCodec.Read(message[..end], after, buffer[m..], out var r);
                if (after + 20 != end) throw new DnsFormatException("SOA rdata length does not match its fields", start);
                message.Slice(after, 20).CopyTo(buffer[(m + r)..]);
                return buffer[..(m + r + 20)].ToArray();
            }
            case DnsType.TXT:
            {
                if (length == 0) throw new DnsFormatException("TXT rdata is empty", start);
                var p = start;
                while (p < end) p += 1 + message[p];
                if (p != end) throw new DnsFormatException("TXT strings do not fill the rdata", start);
                break;
            }
        }
        return message.Slice(start, length).ToArray();
    }

    private static void Expect(int after, int end, int start)
    {
        if (after != end) throw new DnsFormatException("rdata length does not match its name", start);
    }

    /// <summary>Where the names inside uncompressed rdata of a compressible type start (RFC 1035 types only, RFC 3597 §4).</summary>
    public static int CompressibleNames(DnsType type, ReadOnlySpan<byte> data, Span<int> offsets)
    {
        switch (type)
        {
            case DnsType.CNAME or DnsType.NS or DnsType.PTR:
                offsets[0] = 0;
                return 1;
            case DnsType.MX:
                offsets[0] = 2;
                return 1;
            case DnsType.SOA:
                offsets[0] = 0;
                var p = 0;
                while (data[p] != 0) p += 1 + data[p];
                offsets[1] = p + 1;
                return 2;
            default:
                return 0;
        }
    }

    public static int NameLength(ReadOnlySpan<byte> data)
    {
        var p = 0;
        while (data[p] != 0) p += 1 + data[p];
        return p + 1;
    }

    public static ushort ReadUInt16(ReadOnlySpan<byte> s) => BinaryPrimitives.ReadUInt16BigEndian(s);
}
