using System.Buffers.Binary;

namespace KtConnect.Engine.Net;

/// <summary>A UDP header read from a packet; the payload offset is absolute in the packet.</summary>
public struct UdpDatagram
{
    public ushort SourcePort;
    public ushort DestinationPort;
    public int DataOffset;
    public int DataLength;

    public const int HeaderLength = 8;

    /// <summary>Parses the UDP header; verifies the checksum unless <paramref name="checksumTrusted"/> (see <see cref="TcpSegment.TryParse"/>).</summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> packet, in IpPacket ip, out UdpDatagram udp, bool checksumTrusted = false)
    {
        udp = default;
        if (ip.PayloadLength < HeaderLength) return ParseStatus.Malformed;
        var u = packet.Slice(ip.PayloadOffset, ip.PayloadLength);
        var len = BinaryPrimitives.ReadUInt16BigEndian(u[4..]);
        if (len < HeaderLength || len > u.Length) return ParseStatus.Malformed;
        var stored = BinaryPrimitives.ReadUInt16BigEndian(u[6..]);
        // IPv4 allows "no checksum" (0); IPv6 does not.
        if (!checksumTrusted && (stored != 0 || ip.IsV6))
        {
            var sum = Checksum.PseudoHeader(ip.IsV6, ip.Source, ip.Destination, IpProtocol.Udp, len);
            if (Checksum.Finish(Checksum.Add(sum, u[..len])) != 0) return ParseStatus.Malformed;
        }
        udp.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(u);
        udp.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(u[2..]);
        udp.DataOffset = ip.PayloadOffset + HeaderLength;
        udp.DataLength = len - HeaderLength;
        return ParseStatus.Ok;
    }

    /// <summary>Builds a whole UDP packet. Returns its length.</summary>
    public static int Write(Span<byte> buffer, bool v6, UInt128 source, UInt128 destination, ushort sourcePort, ushort destinationPort,
        ReadOnlySpan<byte> payload)
    {
        var ipLen = IpPacket.HeaderLength(v6);
        var len = HeaderLength + payload.Length;
        IpPacket.WriteHeader(buffer, v6, source, destination, IpProtocol.Udp, len);
        var u = buffer.Slice(ipLen, len);
        BinaryPrimitives.WriteUInt16BigEndian(u, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(u[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(u[4..], (ushort)len);
        u[6] = 0;
        u[7] = 0;
        payload.CopyTo(u[HeaderLength..]);
        var sum = Checksum.PseudoHeader(v6, source, destination, IpProtocol.Udp, len);
        var c = Checksum.Finish(Checksum.Add(sum, u));
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], c == 0 ? (ushort)0xFFFF : c);
        return ipLen + len;
    }
}
