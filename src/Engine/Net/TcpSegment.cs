using System.Buffers.Binary;

namespace KtConnect.Engine.Net;

[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
}

/// <summary>
/// A TCP header read from a packet: ports, sequence numbers, flags, window and the options the stack uses
/// (MSS, window scale; SACK-permitted is noted but never used). <see cref="DataOffset"/> is absolute in the packet.
/// </summary>
public struct TcpSegment
{
    public ushort SourcePort;
    public ushort DestinationPort;
    public uint Sequence;
    public uint Acknowledgment;
    public TcpFlags Flags;
    public ushort Window;
    public int DataOffset;
    public int DataLength;
    /// <summary>0 when the option is absent.</summary>
    public ushort Mss;
    /// <summary>-1 when the option is absent.</summary>
    public int WindowScale;
    public bool SackPermitted;

    /// <summary>
    /// The reset that answers this segment when no connection takes it (RFC 9293 §3.10.7.1): at its acknowledgment when
    /// it has one, else acknowledging all it occupies (data, SYN, FIN).
    /// </summary>
    public readonly (TcpFlags Flags, uint Sequence, uint Acknowledgment) ResetReply() =>
        (Flags & TcpFlags.Ack) != 0
            ? (TcpFlags.Rst, Acknowledgment, 0)
            : (TcpFlags.Rst | TcpFlags.Ack, 0, Sequence + (uint)DataLength + ((Flags & TcpFlags.Syn) != 0 ? 1u : 0u) + ((Flags & TcpFlags.Fin) != 0 ? 1u : 0u));

    public const int HeaderLength = 20;
    /// <summary>Header with MSS (4), window scale (3) and a NOP (1): what a SYN-ACK carries.</summary>
    public const int SynHeaderLength = 28;

    /// <summary>
    /// Parses the TCP header of an IP packet already parsed; verifies the checksum unless
    /// <paramref name="checksumTrusted"/> (the local kernel built the packet and vouches for it).
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> packet, in IpPacket ip, out TcpSegment tcp, bool checksumTrusted = false)
    {
        tcp = default;
        tcp.WindowScale = -1;
        if (ip.PayloadLength < HeaderLength) return ParseStatus.Malformed;
        var t = packet.Slice(ip.PayloadOffset, ip.PayloadLength);
        var hlen = (t[12] >> 4) * 4;
        if (hlen < HeaderLength || hlen > t.Length) return ParseStatus.Malformed;
        if (!checksumTrusted)
        {
            var sum = Checksum.PseudoHeader(ip.IsV6, ip.Source, ip.Destination, IpProtocol.Tcp, t.Length);
            if (Checksum.Finish(Checksum.Add(sum, t)) != 0) return ParseStatus.Malformed;
        }
        tcp.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(t);
        tcp.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(t[2..]);
        tcp.Sequence = BinaryPrimitives.ReadUInt32BigEndian(t[4..]);
        tcp.Acknowledgment = BinaryPrimitives.ReadUInt32BigEndian(t[8..]);
        tcp.Flags = (TcpFlags)(t[13] & 0x3F);
        tcp.Window = BinaryPrimitives.ReadUInt16BigEndian(t[14..]);
        tcp.DataOffset = ip.PayloadOffset + hlen;
        tcp.DataLength = t.Length - hlen;
        var opts = t[HeaderLength..hlen];
        var i = 0;
        while (i < opts.Length)
        {
            var kind = opts[i];
            if (kind == 0) break;
            if (kind == 1)
            {
                i++;
                continue;
            }
            if (i + 1 >= opts.Length) return ParseStatus.Malformed;
            var len = opts[i + 1];
            if (len < 2 || i + len > opts.Length) return ParseStatus.Malformed;
            switch (kind)
            {
                case 2 when len == 4:
                    tcp.Mss = BinaryPrimitives.ReadUInt16BigEndian(opts[(i + 2)..]);
                    break;
                case 3 when len == 3:
                    tcp.WindowScale = Math.Min((int)opts[i + 2], 14);
                    break;
                case 4 when len == 2:
                    tcp.SackPermitted = true;
                    break;
            }
            i += len;
        }
        return ParseStatus.Ok;
    }

    /// <summary>
    /// Writes IP and TCP headers in front of a payload the caller already placed at
    /// <c>HeaderSpace(v6, withSynOptions)</c> and fills both checksums. Returns the packet length. With
    /// <paramref name="partialChecksum"/> the TCP checksum field holds only the pseudo-header sum, for a device that
    /// finishes it (<see cref="IPacketDevice.ChecksumOffload"/>): the payload is not read at all, and
    /// <paramref name="buffer"/> needs room for the headers only (the payload may be sent from elsewhere).
    /// </summary>
    public static int Write(Span<byte> buffer, bool v6, UInt128 source, UInt128 destination, ushort sourcePort, ushort destinationPort,
        uint sequence, uint acknowledgment, TcpFlags flags, ushort window, int payloadLength, ushort mss = 0, int windowScale = -1,
        bool partialChecksum = false)
    {
        var withOptions = mss != 0;
        var ipLen = IpPacket.HeaderLength(v6);
        var tcpLen = withOptions ? SynHeaderLength : HeaderLength;
        var segmentLength = tcpLen + payloadLength;
        IpPacket.WriteHeader(buffer, v6, source, destination, IpProtocol.Tcp, segmentLength);
        // With a partial checksum the payload is not read, so it need not follow the headers in this buffer.
        var t = buffer.Slice(ipLen, partialChecksum ? tcpLen : segmentLength);
        BinaryPrimitives.WriteUInt16BigEndian(t, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], acknowledgment);
        t[12] = (byte)((tcpLen / 4) << 4);
        t[13] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], window);
        t[16] = 0;
        t[17] = 0;
        t[18] = 0;
        t[19] = 0;
        if (withOptions)
        {
            t[20] = 2;
            t[21] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(t[22..], mss);
            // NOP + window scale (kind 3, len 3); a NOP-padded "no scale" when the peer offered none.
            t[24] = 1;
            if (windowScale >= 0)
            {
                t[25] = 3;
                t[26] = 3;
                t[27] = (byte)windowScale;
            }
            else
            {
                t[25] = 1;
                t[26] = 1;
                t[27] = 1;
            }
        }
        var sum = Checksum.PseudoHeader(v6, source, destination, IpProtocol.Tcp, segmentLength);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], partialChecksum ? Checksum.Fold(sum) : Checksum.Finish(Checksum.Add(sum, t)));
        return ipLen + segmentLength;
    }

    /// <summary>Where the payload goes in a buffer passed to <see cref="Write"/>.</summary>
    public static int HeaderSpace(bool v6, bool withSynOptions = false) =>
        IpPacket.HeaderLength(v6) + (withSynOptions ? SynHeaderLength : HeaderLength);
}
