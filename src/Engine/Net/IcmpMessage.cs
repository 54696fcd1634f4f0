using System.Buffers.Binary;

namespace KtConnect.Engine.Net;

/// <summary>ICMP and ICMPv6 errors the stack sends: destination (port) unreachable.</summary>
public static class IcmpMessage
{
    /// <summary>
    /// Builds "port unreachable" about <paramref name="offending"/> (ICMP 3/3, ICMPv6 1/4), quoting as much
    /// of it as the minimum MTU allows (576 for IPv4, 1280 for IPv6). Returns the packet length.
    /// </summary>
    public static int WritePortUnreachable(Span<byte> buffer, ReadOnlySpan<byte> offending, in IpPacket ip)
    {
        var v6 = ip.IsV6;
        var ipLen = IpPacket.HeaderLength(v6);
        var max = (v6 ? 1280 : 576) - ipLen - 8;
        var quote = offending[..Math.Min(Math.Min(ip.TotalLength, offending.Length), max)];
        var len = 8 + quote.Length;
        // Source of the error is the address the packet was sent to; it goes back to the sender.
        IpPacket.WriteHeader(buffer, v6, ip.Destination, ip.Source, v6 ? IpProtocol.IcmpV6 : IpProtocol.Icmp, len);
        var m = buffer.Slice(ipLen, len);
        m[0] = v6 ? (byte)1 : (byte)3;
        m[1] = v6 ? (byte)4 : (byte)3;
        m[2] = 0;
        m[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(m[4..], 0);
        quote.CopyTo(m[8..]);
        var sum = v6 ? Checksum.PseudoHeader(true, ip.Destination, ip.Source, IpProtocol.IcmpV6, len) : 0;
        BinaryPrimitives.WriteUInt16BigEndian(m[2..], Checksum.Finish(Checksum.Add(sum, m)));
        return ipLen + len;
    }
}
