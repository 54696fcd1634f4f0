using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Net;

/// <summary>IP protocol numbers the stack knows.</summary>
public static class IpProtocol
{
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte IcmpV6 = 58;
}

/// <summary>What <see cref="IpPacket.TryParse"/> made of a buffer.</summary>
public enum ParseStatus
{
    Ok,
    Malformed,
    /// <summary>An IPv4 fragment or an IPv6 packet with a fragment header: counted and dropped.</summary>
    Fragment,
}

/// <summary>
/// The IP layer of one packet: version, addresses (IPv4 in the low 32 bits of a <see cref="UInt128"/>),
/// the transport protocol and where its bytes are. Parsing allocates nothing and never reads past the buffer.
/// </summary>
public struct IpPacket
{
    public bool IsV6;
    public byte Protocol;
    public byte HopLimit;
    public UInt128 Source;
    public UInt128 Destination;
    /// <summary>Offset of the transport header (after IPv4 options or IPv6 extension headers).</summary>
    public int PayloadOffset;
    public int PayloadLength;
    /// <summary>Length of the whole packet per its header (trailing bytes in the buffer are ignored).</summary>
    public int TotalLength;

    public const int V4HeaderLength = 20;
    public const int V6HeaderLength = 40;

    /// <summary>
    /// The transport protocol of a packet this stack built (no IPv6 extension headers), without parsing it; 0 when the
    /// packet is neither IPv4 nor IPv6.
    /// </summary>
    public static byte ProtocolOf(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < V4HeaderLength) return 0;
        return (packet[0] >> 4) switch
        {
            4 => packet[9],
            6 => packet[6],
            _ => (byte)0,
        };
    }

    /// <summary>Parses the IP header of <paramref name="packet"/>.</summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> packet, out IpPacket ip)
    {
        ip = default;
        if (packet.Length < 1) return ParseStatus.Malformed;
        var version = packet[0] >> 4;
        if (version == 4)
        {
            if (packet.Length < V4HeaderLength) return ParseStatus.Malformed;
            var ihl = (packet[0] & 0x0F) * 4;
            var total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
            if (ihl < V4HeaderLength || total < ihl || total > packet.Length) return ParseStatus.Malformed;
            if (Checksum.Finish(Checksum.Add(0, packet[..ihl])) != 0) return ParseStatus.Malformed;
            var fragment = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
            ip.IsV6 = false;
            ip.HopLimit = packet[8];
            ip.Protocol = packet[9];
            ip.Source = BinaryPrimitives.ReadUInt32BigEndian(packet[12..]);
            ip.Destination = BinaryPrimitives.ReadUInt32BigEndian(packet[16..]);
            ip.PayloadOffset = ihl;
            ip.PayloadLength = total - ihl;
            ip.TotalLength = total;
            // MF set or a non-zero offset: a fragment. DF (0x4000) alone is an ordinary packet.
            return (fragment & 0x3FFF) != 0 ? ParseStatus.Fragment : ParseStatus.Ok;
        }
        if (version == 6)
        {
            if (packet.Length < V6HeaderLength) return ParseStatus.Malformed;
            var payload = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
            var total = V6HeaderLength + payload;
            // A zero payload length with a hop-by-hop jumbo option is not something a tun carries.
            if (total > packet.Length) return ParseStatus.Malformed;
            ip.IsV6 = true;
            ip.HopLimit = packet[7];
            ip.Source = BinaryPrimitives.ReadUInt128BigEndian(packet[8..]);
            ip.Destination = BinaryPrimitives.ReadUInt128BigEndian(packet[24..]);
            ip.TotalLength = total;
            var next = packet[6];
            var offset = V6HeaderLength;
            // Walk extension headers; each has a length, so the loop is bounded by the packet size.
            while (true)
            {
                switch (next)
                {
                    case 0: // hop-by-hop
                    case 43: // routing
                    case 60: // destination options
                        if (offset + 8 > total) return ParseStatus.Malformed;
                        var len = (packet[offset + 1] + 1) * 8;
                        if (offset + len > total) return ParseStatus.Malformed;
                        next = packet[offset];
                        offset += len;
                        continue;
                    case 44: // fragment
                        if (offset + 8 > total) return ParseStatus.Malformed;
                        ip.Protocol = packet[offset];
                        ip.PayloadOffset = offset + 8;
                        ip.PayloadLength = total - offset - 8;
                        return ParseStatus.Fragment;
                    default:
                        ip.Protocol = next;
                        ip.PayloadOffset = offset;
                        ip.PayloadLength = total - offset;
                        return ParseStatus.Ok;
                }
            }
        }
        return ParseStatus.Malformed;
    }

    /// <summary>Like <see cref="TryParse"/> but throws <see cref="MalformedPacketException"/>.</summary>
    public static IpPacket Parse(ReadOnlySpan<byte> packet)
    {
        var status = TryParse(packet, out var ip);
        return status == ParseStatus.Ok ? ip : throw new MalformedPacketException($"Not a usable IP packet ({status}).");
    }

    /// <summary>Writes an IPv4 (20 bytes, DF set) or IPv6 (40 bytes) header. Returns its length.</summary>
    public static int WriteHeader(Span<byte> buffer, bool v6, UInt128 source, UInt128 destination, byte protocol, int payloadLength, byte hopLimit = 64)
    {
        if (v6)
        {
            BinaryPrimitives.WriteUInt32BigEndian(buffer, 0x6000_0000);
            BinaryPrimitives.WriteUInt16BigEndian(buffer[4..], checked((ushort)payloadLength));
            buffer[6] = protocol;
            buffer[7] = hopLimit;
            BinaryPrimitives.WriteUInt128BigEndian(buffer[8..], source);
            BinaryPrimitives.WriteUInt128BigEndian(buffer[24..], destination);
            return V6HeaderLength;
        }
        buffer[0] = 0x45;
        buffer[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], checked((ushort)(V4HeaderLength + payloadLength)));
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], 0x0000_4000); // id 0, DF
        buffer[8] = hopLimit;
        buffer[9] = protocol;
        buffer[10] = 0;
        buffer[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(buffer[12..], (uint)source);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[16..], (uint)destination);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[10..], Checksum.Finish(Checksum.Add(0, buffer[..V4HeaderLength])));
        return V4HeaderLength;
    }

    public static int HeaderLength(bool v6) => v6 ? V6HeaderLength : V4HeaderLength;

    public static IPAddress ToAddress(UInt128 address, bool v6)
    {
        if (!v6) return new IPAddress(BinaryPrimitives.ReverseEndianness((uint)address));
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, address);
        return new IPAddress(b);
    }

    public static UInt128 FromAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out var n);
        return address.AddressFamily == AddressFamily.InterNetwork
            ? BinaryPrimitives.ReadUInt32BigEndian(b)
            : BinaryPrimitives.ReadUInt128BigEndian(b[..n]);
    }
}
