using System.Buffers.Binary;

namespace KtConnect.Engine.Dns;

/// <summary>
/// A whole DNS message (RFC 1035 §4.1, EDNS0 per RFC 6891). <see cref="Parse"/> validates everything and
/// rejects malformed input with <see cref="DnsFormatException"/>; <see cref="Write"/> compresses names and
/// truncates (TC) when the message does not fit.
/// </summary>
public sealed class DnsMessage
{
    public ushort Id { get; set; }

    /// <summary>The flags word; <see cref="Rcode"/> and <see cref="Opcode"/> are views into it.</summary>
    public ushort Flags { get; set; }

    public List<DnsQuestion> Questions { get; } = [];

    public List<DnsRecord> Answers { get; } = [];

    public List<DnsRecord> Authorities { get; } = [];

    /// <summary>Additional records other than OPT (which lives in <see cref="Edns"/>).</summary>
    public List<DnsRecord> Additionals { get; } = [];

    public DnsEdns? Edns { get; set; }

    public bool IsResponse
    {
        get => (Flags & DnsFlags.QR) != 0;
        set => SetFlag(DnsFlags.QR, value);
    }

    public bool Truncated
    {
        get => (Flags & DnsFlags.TC) != 0;
        set => SetFlag(DnsFlags.TC, value);
    }

    public bool RecursionDesired
    {
        get => (Flags & DnsFlags.RD) != 0;
        set => SetFlag(DnsFlags.RD, value);
    }

    public bool RecursionAvailable
    {
        get => (Flags & DnsFlags.RA) != 0;
        set => SetFlag(DnsFlags.RA, value);
    }

    public bool Authoritative
    {
        get => (Flags & DnsFlags.AA) != 0;
        set => SetFlag(DnsFlags.AA, value);
    }

    public int Opcode => (Flags & DnsFlags.OpcodeMask) >> DnsFlags.OpcodeShift;

    /// <summary>The full 12-bit rcode (EDNS extended bits included).</summary>
    public int Rcode
    {
        get => (Flags & DnsFlags.RcodeMask) | ((Edns?.ExtendedRcode ?? 0) << 4);
        set
        {
            Flags = (ushort)((Flags & ~DnsFlags.RcodeMask) | (value & 0xF));
            if (value > 0xF)
            {
                Edns = (Edns ?? new DnsEdns()) with { ExtendedRcode = (byte)(value >> 4) };
            }
            else if (Edns is not null && Edns.ExtendedRcode != 0)
            {
                Edns = Edns with { ExtendedRcode = 0 };
            }
        }
    }

    private void SetFlag(ushort bit, bool on) => Flags = on ? (ushort)(Flags | bit) : (ushort)(Flags & ~bit);

    /// <summary>A recursive query for one name.</summary>
    public static DnsMessage CreateQuery(ushort id, DnsName name, DnsType type, DnsEdns? edns = null)
    {
        var m = new DnsMessage { Id = id, Flags = DnsFlags.RD, Edns = edns };
        m.Questions.Add(new DnsQuestion(name, type));
        return m;
    }

    /// <summary>A response skeleton for <paramref name="query"/>: same id, opcode, RD and questions.</summary>
    public static DnsMessage CreateResponse(DnsMessage query, DnsRcode rcode)
    {
        ArgumentNullException.ThrowIfNull(query);
        var m = new DnsMessage
        {
            Id = query.Id,
            Flags = (ushort)(DnsFlags.QR | DnsFlags.RA | (query.Flags & (DnsFlags.OpcodeMask | DnsFlags.RD | DnsFlags.CD))),
        };
        m.Questions.AddRange(query.Questions);
        m.Rcode = (int)rcode;
        return m;
    }

    // ---------------------------------------------------------------- parsing

    /// <summary>Parses and validates a complete message; throws <see cref="DnsFormatException"/> when malformed.</summary>
    public static DnsMessage Parse(ReadOnlySpan<byte> message)
    {
        if (message.Length < DnsFlags.HeaderLength) throw new DnsFormatException("shorter than the 12-byte header", message.Length);
        var m = new DnsMessage
        {
            Id = BinaryPrimitives.ReadUInt16BigEndian(message),
            Flags = BinaryPrimitives.ReadUInt16BigEndian(message[2..]),
        };
        int qd = BinaryPrimitives.ReadUInt16BigEndian(message[4..]);
        int an = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
        int ns = BinaryPrimitives.ReadUInt16BigEndian(message[8..]);
        int ar = BinaryPrimitives.ReadUInt16BigEndian(message[10..]);
        var remaining = message.Length - DnsFlags.HeaderLength;
        // Every question takes at least 5 bytes and every record 11: counts that cannot fit are rejected before
        // anything is allocated for them.
        if ((long)qd * 5 + ((long)an + ns + ar) * 11 > remaining)
            throw new DnsFormatException("section counts exceed the message length", 4);

        Span<byte> name = stackalloc byte[DnsFlags.MaxNameLength];
        var pos = DnsFlags.HeaderLength;
        for (var i = 0; i < qd; i++)
        {
            pos = DnsNameCodec.Read(message, pos, name, out var nlen);
            if (pos + 4 > message.Length) throw new DnsFormatException("question cut short", pos);
            m.Questions.Add(new DnsQuestion(DnsName.FromWire(name[..nlen]),
                (DnsType)BinaryPrimitives.ReadUInt16BigEndian(message[pos..]),
                (DnsClass)BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 2)..])));
            pos += 4;
        }
        pos = ReadSection(message, pos, an, m.Answers, null, name);
        pos = ReadSection(message, pos, ns, m.Authorities, null, name);
        pos = ReadSection(message, pos, ar, m.Additionals, m, name);
        if (pos != message.Length) throw new DnsFormatException("bytes after the last record", pos);
        return m;
    }

    private static int ReadSection(ReadOnlySpan<byte> message, int pos, int count, List<DnsRecord> into, DnsMessage? additionalOf, Span<byte> name)
    {
        for (var i = 0; i < count; i++)
        {
            var nameStart = pos;
            pos = DnsNameCodec.Read(message, pos, name, out var nlen);
            if (pos + 10 > message.Length) throw new DnsFormatException("record header cut short", pos);
            var type = (DnsType)BinaryPrimitives.ReadUInt16BigEndian(message[pos..]);
            var cls = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 2)..]);
            var ttl = BinaryPrimitives.ReadUInt32BigEndian(message[(pos + 4)..]);
            int rdlen = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 8)..]);
            pos += 10;
            if (pos + rdlen > message.Length) throw new DnsFormatException("rdata runs past the end of the message", pos);
            if (type == DnsType.OPT)
            {
                if (additionalOf is null) throw new DnsFormatException("OPT outside the additional section", nameStart);
                if (additionalOf.Edns is not null) throw new DnsFormatException("more than one OPT record", nameStart);
                if (nlen != 1) throw new DnsFormatException("OPT owner is not the root", nameStart);
                additionalOf.Edns = ReadOpt(message.Slice(pos, rdlen), cls, ttl, pos);
            }
            else
            {
                var data = DnsRdata.ReadUncompressed(message, pos, rdlen, type);
                into.Add(new DnsRecord(DnsName.FromWire(name[..nlen]), type, (DnsClass)cls, ttl, data));
            }
            pos += rdlen;
        }
        return pos;
    }

    private static DnsEdns ReadOpt(ReadOnlySpan<byte> rdata, ushort cls, uint ttl, int at)
    {
        var options = new List<DnsEdnsOption>();
        var p = 0;
        while (p < rdata.Length)
        {
            if (p + 4 > rdata.Length) throw new DnsFormatException("EDNS option header cut short", at + p);
            var code = BinaryPrimitives.ReadUInt16BigEndian(rdata[p..]);
            int len = BinaryPrimitives.ReadUInt16BigEndian(rdata[(p + 2)..]);
            if (p + 4 + len > rdata.Length) throw new DnsFormatException("EDNS option runs past its record", at + p);
            options.Add(new DnsEdnsOption(code, rdata.Slice(p + 4, len).ToArray()));
            p += 4 + len;
        }
        var z = (ushort)(ttl & 0xFFFF);
        return new DnsEdns
        {
            UdpPayloadSize = cls,
            ExtendedRcode = (byte)(ttl >> 24),
            Version = (byte)(ttl >> 16),
            DnssecOk = (z & 0x8000) != 0,
            Z = (ushort)(z & 0x7FFF),
            Options = options,
        };
    }

    // ---------------------------------------------------------------- writing

    /// <summary>The message as bytes, truncated with TC when longer than <paramref name="maxLength"/>.</summary>
    public byte[] ToArray(int maxLength = DnsFlags.MaxMessageLength)
    {
        var buffer = new byte[Math.Min(maxLength, DnsFlags.MaxMessageLength)];
        var n = Write(buffer);
        return buffer.AsSpan(0, n).ToArray();
    }

    /// <summary>
    /// Writes the message into <paramref name="destination"/> (its length is the limit) with name compression.
    /// When the whole message does not fit, writes header, questions and OPT only, with TC set, so a UDP client
    /// retries over TCP. Returns the number of bytes written.
    /// </summary>
    public int Write(Span<byte> destination)
    {
        var w = new DnsWriter(destination);
        if (TryWriteAll(ref w, truncated: false)) return w.Length;
        w = new DnsWriter(destination);
        if (TryWriteAll(ref w, truncated: true)) return w.Length;
        throw new ArgumentException("destination too small even for a truncated message", nameof(destination));
    }

    private bool TryWriteAll(ref DnsWriter w, bool truncated)
    {
        var flags = truncated ? (ushort)(Flags | DnsFlags.TC) : Flags;
        var arCount = (truncated ? 0 : Additionals.Count) + (Edns is null ? 0 : 1);
        if (!w.TryWriteUInt16(Id) || !w.TryWriteUInt16(flags) || !w.TryWriteUInt16((ushort)Questions.Count)
            || !w.TryWriteUInt16((ushort)(truncated ? 0 : Answers.Count)) || !w.TryWriteUInt16((ushort)(truncated ? 0 : Authorities.Count))
            || !w.TryWriteUInt16((ushort)arCount))
            return false;
        foreach (var q in Questions)
        {
            if (!w.TryWriteName(q.Name.Wire, compress: true) || !w.TryWriteUInt16((ushort)q.Type) || !w.TryWriteUInt16((ushort)q.Class))
                return false;
        }
        if (!truncated)
        {
            foreach (var r in Answers) if (!w.TryWriteRecord(r)) return false;
            foreach (var r in Authorities) if (!w.TryWriteRecord(r)) return false;
            foreach (var r in Additionals) if (!w.TryWriteRecord(r)) return false;
        }
        return Edns is null || w.TryWriteOpt(Edns);
    }
}
