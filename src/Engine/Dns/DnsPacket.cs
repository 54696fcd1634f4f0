using System.Buffers.Binary;

namespace KtConnect.Engine.Dns;

/// <summary>What the server needs to know about a client's query, read without allocating.</summary>
internal struct DnsQueryInfo
{
    public ushort Id;
    public ushort Flags;
    public int Opcode;

    /// <summary>The question name in the query is never compressed (nothing precedes it to point at), so it is a slice.</summary>
    public int NameLength;

    public DnsType Type;
    public DnsClass Class;

    /// <summary>Offset just after the (single) question.</summary>
    public int QuestionEnd;

    public bool HasEdns;
    public bool DnssecOk;
    public ushort UdpPayloadSize;

    public readonly int UdpLimit => HasEdns ? Math.Max(DnsFlags.ClassicUdpLimit, (int)UdpPayloadSize) : DnsFlags.ClassicUdpLimit;

    public readonly bool CheckingDisabled => (Flags & DnsFlags.CD) != 0;
}

/// <summary>
/// Allocation-free reading and patching of whole messages for the server's hot path: reading a query, scanning
/// a response for its TTLs and OPT record, and serving a cached response to a new client.
/// </summary>
internal static class DnsPacket
{
    /// <summary>Our own EDNS payload size (the DNS flag day 2020 value).</summary>
    public const ushort OurUdpPayloadSize = 1232;

    private const int OptLength = 11;

    /// <summary>Reads and validates a query with exactly one question. Throws <see cref="DnsFormatException"/>.</summary>
    public static DnsQueryInfo ReadQuery(ReadOnlySpan<byte> message)
    {
        if (message.Length < DnsFlags.HeaderLength) throw new DnsFormatException("shorter than the 12-byte header", message.Length);
        var q = new DnsQueryInfo
        {
            Id = BinaryPrimitives.ReadUInt16BigEndian(message),
            Flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]),
        };
        q.Opcode = (q.Flags & DnsFlags.OpcodeMask) >> DnsFlags.OpcodeShift;
        int qd = BinaryPrimitives.ReadUInt16BigEndian(message[4..]);
        int an = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
        int ns = BinaryPrimitives.ReadUInt16BigEndian(message[8..]);
        int ar = BinaryPrimitives.ReadUInt16BigEndian(message[10..]);
        if ((q.Flags & DnsFlags.QR) != 0) throw new DnsFormatException("a response where a query was expected", 2);
        if (qd != 1) throw new DnsFormatException("a query must hold exactly one question", 4);
        if ((long)qd * 5 + ((long)an + ns + ar) * 11 > message.Length - DnsFlags.HeaderLength)
            throw new DnsFormatException("section counts exceed the message length", 4);
        Span<byte> name = stackalloc byte[DnsFlags.MaxNameLength];
        var pos = DnsNameCodec.Read(message, DnsFlags.HeaderLength, name, out var nlen);
        if (pos - DnsFlags.HeaderLength != nlen) throw new DnsFormatException("compressed question name", DnsFlags.HeaderLength);
        if (pos + 4 > message.Length) throw new DnsFormatException("question cut short", pos);
        q.NameLength = nlen;
        q.Type = (DnsType)BinaryPrimitives.ReadUInt16BigEndian(message[pos..]);
        q.Class = (DnsClass)BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 2)..]);
        pos += 4;
        q.QuestionEnd = pos;
        var total = an + ns + ar;
        for (var i = 0; i < total; i++)
        {
            var start = pos;
            pos = DnsNameCodec.Skip(message, pos);
            if (pos + 10 > message.Length) throw new DnsFormatException("record header cut short", pos);
            var type = (DnsType)BinaryPrimitives.ReadUInt16BigEndian(message[pos..]);
            int rdlen = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 8)..]);
            if (pos + 10 + rdlen > message.Length) throw new DnsFormatException("rdata runs past the end of the message", pos);
            if (type == DnsType.OPT)
            {
                if (i < an + ns) throw new DnsFormatException("OPT outside the additional section", start);
                if (q.HasEdns) throw new DnsFormatException("more than one OPT record", start);
                if (pos - start != 1) throw new DnsFormatException("OPT owner is not the root", start);
                q.HasEdns = true;
                q.UdpPayloadSize = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 2)..]);
                q.DnssecOk = (BinaryPrimitives.ReadUInt32BigEndian(message[(pos + 4)..]) & 0x8000) != 0;
                var options = message.Slice(pos + 10, rdlen);
                for (var o = 0; o < options.Length;)
                {
                    if (o + 4 > options.Length || o + 4 + BinaryPrimitives.ReadUInt16BigEndian(options[(o + 2)..]) > options.Length)
                        throw new DnsFormatException("EDNS option runs past its record", pos + 10 + o);
                    o += 4 + BinaryPrimitives.ReadUInt16BigEndian(options[(o + 2)..]);
                }
            }
            pos += 10 + rdlen;
        }
        if (pos != message.Length) throw new DnsFormatException("bytes after the last record", pos);
        return q;
    }

    /// <summary>
    /// A minimal reply to <paramref name="query"/>: its question, no records, the given rcode, and an OPT when the
    /// client sent one (TC set when <paramref name="truncated"/>). Used for SERVFAIL, NOTIMP, REFUSED and truncation.
    /// </summary>
    public static int WriteEmptyReply(ReadOnlySpan<byte> query, in DnsQueryInfo q, DnsRcode rcode, bool truncated, bool authoritativeAnswer,
        ReadOnlySpan<byte> header, Span<byte> destination)
    {
        query[..q.QuestionEnd].CopyTo(destination);
        var flags = (ushort)(DnsFlags.QR | DnsFlags.RA | (q.Flags & (DnsFlags.OpcodeMask | DnsFlags.RD | DnsFlags.CD)) | (ushort)rcode);
        if (header.Length >= 4)
        {
            // A truncated copy of a real answer keeps that answer's AA and rcode.
            var h = BinaryPrimitives.ReadUInt16BigEndian(header[2..]);
            flags = (ushort)((flags & ~DnsFlags.RcodeMask) | (h & (DnsFlags.RcodeMask | DnsFlags.AA)));
        }
        if (truncated) flags |= DnsFlags.TC;
        if (authoritativeAnswer) flags |= DnsFlags.AA;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], 1);
        BinaryPrimitives.WriteUInt32BigEndian(destination[6..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(destination[10..], 0);
        var length = q.QuestionEnd;
        if (q.HasEdns) length = AppendOpt(destination, length, q.DnssecOk);
        return length;
    }

    /// <summary>Appends our OPT record (payload 1232, DO echoed) and bumps ARCOUNT.</summary>
    public static int AppendOpt(Span<byte> message, int length, bool dnssecOk)
    {
        var o = message[length..];
        o[0] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(o[1..], (ushort)DnsType.OPT);
        BinaryPrimitives.WriteUInt16BigEndian(o[3..], OurUdpPayloadSize);
        BinaryPrimitives.WriteUInt32BigEndian(o[5..], dnssecOk ? 0x8000u : 0u);
        BinaryPrimitives.WriteUInt16BigEndian(o[9..], 0);
        var ar = BinaryPrimitives.ReadUInt16BigEndian(message[10..]);
        BinaryPrimitives.WriteUInt16BigEndian(message[10..], (ushort)(ar + 1));
        return length + OptLength;
    }

    /// <summary>
    /// Scans a response: validates it, finds every TTL (OPT excluded) and the OPT record. Returns false when it
    /// cannot be served from the normalised form (an extended rcode in its OPT, or an OPT that is not last).
    /// </summary>
    public static bool TryScanResponse(ReadOnlySpan<byte> message, List<int> ttlOffsets, out ResponseShape shape)
    {
        shape = default;
        ttlOffsets.Clear();
        if (message.Length < DnsFlags.HeaderLength) throw new DnsFormatException("shorter than the 12-byte header", message.Length);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]);
        int qd = BinaryPrimitives.ReadUInt16BigEndian(message[4..]);
        int an = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
        int ns = BinaryPrimitives.ReadUInt16BigEndian(message[8..]);
        int ar = BinaryPrimitives.ReadUInt16BigEndian(message[10..]);
        if (qd != 1) throw new DnsFormatException("a response must hold exactly one question", 4);
        if ((long)qd * 5 + ((long)an + ns + ar) * 11 > message.Length - DnsFlags.HeaderLength)
            throw new DnsFormatException("section counts exceed the message length", 4);
        var pos = DnsNameCodec.Skip(message, DnsFlags.HeaderLength) + 4;
        if (pos > message.Length) throw new DnsFormatException("question cut short", pos);
        shape.QuestionEnd = pos;
        shape.Rcode = (DnsRcode)(flags & DnsFlags.RcodeMask);
        shape.AnswerCount = an;
        shape.OptStart = -1;
        uint minTtl = uint.MaxValue;
        uint negativeTtl = uint.MaxValue;
        var total = an + ns + ar;
        Span<byte> soa = stackalloc byte[DnsFlags.MaxNameLength];
        for (var i = 0; i < total; i++)
        {
            var start = pos;
            pos = DnsNameCodec.Skip(message, pos);
            if (pos + 10 > message.Length) throw new DnsFormatException("record header cut short", pos);
            var type = (DnsType)BinaryPrimitives.ReadUInt16BigEndian(message[pos..]);
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(message[(pos + 4)..]);
            int rdlen = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 8)..]);
            var rdata = pos + 10;
            if (rdata + rdlen > message.Length) throw new DnsFormatException("rdata runs past the end of the message", pos);
            if (type == DnsType.OPT)
            {
                if (i < an + ns || shape.OptStart >= 0) throw new DnsFormatException("misplaced or repeated OPT", start);
                shape.OptStart = start;
                if ((ttl >> 24) != 0) return false;
            }
            else
            {
                if (ttl > int.MaxValue) ttl = 0; // RFC 2181 §8: a TTL with the top bit set is zero.
                ttlOffsets.Add(pos + 4);
                minTtl = Math.Min(minTtl, ttl);
                if (type == DnsType.SOA && i >= an && i < an + ns)
                {
                    // RFC 2308 §5: a negative answer lives for min(SOA TTL, SOA MINIMUM).
                    var after = DnsNameCodec.Read(message[..(rdata + rdlen)], rdata, soa, out _);
                    after = DnsNameCodec.Read(message[..(rdata + rdlen)], after, soa, out _);
                    if (after + 20 != rdata + rdlen) throw new DnsFormatException("SOA rdata length does not match its fields", rdata);
                    var minimum = BinaryPrimitives.ReadUInt32BigEndian(message[(after + 16)..]);
                    negativeTtl = Math.Min(negativeTtl, Math.Min(ttl, minimum));
                }
            }
            pos = rdata + rdlen;
        }
        if (pos != message.Length) throw new DnsFormatException("bytes after the last record", pos);
        if (shape.OptStart >= 0 && pos != shape.OptStart + OptLength + OptRdLength(message, shape.OptStart)) return false;
        shape.BodyLength = shape.OptStart >= 0 ? shape.OptStart : message.Length;
        shape.MinTtl = minTtl == uint.MaxValue ? 0 : minTtl;
        shape.NegativeTtl = negativeTtl == uint.MaxValue ? null : negativeTtl;
        return true;
    }

    private static int OptRdLength(ReadOnlySpan<byte> message, int optStart) => BinaryPrimitives.ReadUInt16BigEndian(message[(optStart + 9)..]);

    /// <summary>
    /// Serves a normalised response (no OPT, question at 12) to a client: its id, question bytes (its letter case)
    /// and RD; TTLs aged by <paramref name="elapsedSeconds"/>; our OPT when the client sent one; a truncated reply
    /// with TC when the result exceeds <paramref name="limit"/>.
    /// </summary>
    public static int Serve(ReadOnlySpan<byte> body, ReadOnlySpan<int> ttlOffsets, uint elapsedSeconds,
        ReadOnlySpan<byte> query, in DnsQueryInfo q, int limit, Span<byte> destination)
    {
        var needed = body.Length + (q.HasEdns ? OptLength : 0);
        if (needed > limit || body.Length < q.QuestionEnd)
            return WriteEmptyReply(query, q, DnsRcode.NoError, truncated: true, authoritativeAnswer: false, body, destination);
        body.CopyTo(destination);
        query[..2].CopyTo(destination);
        query[DnsFlags.HeaderLength..q.QuestionEnd].CopyTo(destination[DnsFlags.HeaderLength..]);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(destination[2..]);
        flags = (ushort)((flags & ~(DnsFlags.RD | DnsFlags.TC | DnsFlags.CD)) | (q.Flags & (DnsFlags.RD | DnsFlags.CD)) | DnsFlags.RA);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], flags);
        if (elapsedSeconds > 0)
        {
            foreach (var at in ttlOffsets)
            {
                var ttl = BinaryPrimitives.ReadUInt32BigEndian(destination[at..]);
                BinaryPrimitives.WriteUInt32BigEndian(destination[at..], ttl > elapsedSeconds ? ttl - elapsedSeconds : 0);
            }
        }
        var length = body.Length;
        if (q.HasEdns) length = AppendOpt(destination, length, q.DnssecOk);
        return length;
    }

    /// <summary>A FORMERR for a message whose header could be read (RFC 1035: echo id and opcode, no sections).</summary>
    public static int WriteFormErr(ReadOnlySpan<byte> message, Span<byte> destination)
    {
        if (message.Length < 2) return 0;
        destination[..DnsFlags.HeaderLength].Clear();
        message[..2].CopyTo(destination);
        var flags = message.Length >= 4 ? BinaryPrimitives.ReadUInt16BigEndian(message[2..]) : (ushort)0;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..],
            (ushort)(DnsFlags.QR | DnsFlags.RA | (flags & (DnsFlags.OpcodeMask | DnsFlags.RD)) | (ushort)DnsRcode.FormErr));
        return DnsFlags.HeaderLength;
    }
}

/// <summary>What <see cref="DnsPacket.TryScanResponse"/> found.</summary>
internal struct ResponseShape
{
    public int QuestionEnd;
    public DnsRcode Rcode;
    public int AnswerCount;

    /// <summary>Where the OPT record starts, or -1.</summary>
    public int OptStart;

    /// <summary>Length of the message without its trailing OPT.</summary>
    public int BodyLength;

    public uint MinTtl;

    /// <summary>min(SOA TTL, SOA MINIMUM) over the authority SOAs, when there is one.</summary>
    public uint? NegativeTtl;
}
