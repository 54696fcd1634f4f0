using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace KtConnect.Engine.Dns;

/// <summary>A question: name, type, class.</summary>
public sealed record DnsQuestion(DnsName Name, DnsType Type, DnsClass Class = DnsClass.IN);

/// <summary>
/// One resource record. <see cref="Data"/> is the rdata in uncompressed form: for the well-known types whose
/// rdata holds names (CNAME, NS, PTR, DNAME, MX, SOA, SRV) the names were expanded when read, so the record can be
/// written into any other message; every other type keeps its bytes exactly as received.
/// </summary>
public sealed record DnsRecord(DnsName Name, DnsType Type, DnsClass Class, uint Ttl, ReadOnlyMemory<byte> Data)
{
    public IPAddress AsAddress() => Type switch
    {
        DnsType.A or DnsType.AAAA => new IPAddress(Data.Span),
        _ => throw new InvalidOperationException($"{Type} record has no address"),
    };

    /// <summary>The target of a CNAME, NS, PTR or DNAME record.</summary>
    public DnsName AsName() => Type is DnsType.CNAME or DnsType.NS or DnsType.PTR or DnsType.DNAME
        ? DnsName.FromWire(Data.Span)
        : throw new InvalidOperationException($"{Type} record has no single name");

    public DnsSrvData AsSrv()
    {
        if (Type != DnsType.SRV) throw new InvalidOperationException($"{Type} is not SRV");
        var s = Data.Span;
        return new DnsSrvData(BinaryPrimitives.ReadUInt16BigEndian(s), BinaryPrimitives.ReadUInt16BigEndian(s[2..]),
            BinaryPrimitives.ReadUInt16BigEndian(s[4..]), DnsName.FromWire(s[6..]));
    }

    public DnsMxData AsMx()
    {
        if (Type != DnsType.MX) throw new InvalidOperationException($"{Type} is not MX");
        var s = Data.Span;
        return new DnsMxData(BinaryPrimitives.ReadUInt16BigEndian(s), DnsName.FromWire(s[2..]));
    }

    public DnsSoaData AsSoa()
    {
        if (Type != DnsType.SOA) throw new InvalidOperationException($"{Type} is not SOA");
        var s = Data.Span;
        var mlen = NameLength(s);
        var mname = DnsName.FromWire(s[..mlen]);
        var rlen = NameLength(s[mlen..]);
        var rname = DnsName.FromWire(s.Slice(mlen, rlen));
        var n = s[(mlen + rlen)..];
        return new DnsSoaData(mname, rname, BinaryPrimitives.ReadUInt32BigEndian(n), BinaryPrimitives.ReadUInt32BigEndian(n[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(n[8..]), BinaryPrimitives.ReadUInt32BigEndian(n[12..]),
            BinaryPrimitives.ReadUInt32BigEndian(n[16..]));
    }

    /// <summary>The character-strings of a TXT record (bytes as Latin-1 so nothing is lost).</summary>
    public IReadOnlyList<string> AsTxt()
    {
        if (Type != DnsType.TXT) throw new InvalidOperationException($"{Type} is not TXT");
        var list = new List<string>();
        var s = Data.Span;
        for (var pos = 0; pos < s.Length; pos += 1 + s[pos]) list.Add(Encoding.Latin1.GetString(s.Slice(pos + 1, s[pos])));
        return list;
    }

    public static DnsRecord Address(DnsName name, IPAddress address, uint ttl)
    {
        ArgumentNullException.ThrowIfNull(address);
        return new(name, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? DnsType.AAAA : DnsType.A,
            DnsClass.IN, ttl, address.GetAddressBytes());
    }

    public static DnsRecord NameTarget(DnsName name, DnsType type, DnsName target, uint ttl)
    {
        ArgumentNullException.ThrowIfNull(target);
        return new(name, type, DnsClass.IN, ttl, target.Wire.ToArray());
    }

    public static DnsRecord Soa(DnsName name, DnsSoaData soa, uint ttl)
    {
        ArgumentNullException.ThrowIfNull(soa);
        var data = new byte[soa.MName.WireLength + soa.RName.WireLength + 20];
        soa.MName.Wire.CopyTo(data);
        soa.RName.Wire.CopyTo(data.AsSpan(soa.MName.WireLength));
        var n = data.AsSpan(soa.MName.WireLength + soa.RName.WireLength);
        BinaryPrimitives.WriteUInt32BigEndian(n, soa.Serial);
        BinaryPrimitives.WriteUInt32BigEndian(n[4..], soa.Refresh);
        BinaryPrimitives.WriteUInt32BigEndian(n[8..], soa.Retry);
        BinaryPrimitives.WriteUInt32BigEndian(n[12..], soa.Expire);
        BinaryPrimitives.WriteUInt32BigEndian(n[16..], soa.Minimum);
        return new(name, DnsType.SOA, DnsClass.IN, ttl, data);
    }

    public static DnsRecord Txt(DnsName name, uint ttl, params string[] strings)
    {
        ArgumentNullException.ThrowIfNull(strings);
        var bytes = new List<byte>();
        foreach (var t in strings)
        {
            var b = Encoding.Latin1.GetBytes(t);
            if (b.Length > 255) throw new ArgumentException("TXT strings are at most 255 bytes", nameof(strings));
            bytes.Add((byte)b.Length);
            bytes.AddRange(b);
        }
        return new(name, DnsType.TXT, DnsClass.IN, ttl, bytes.ToArray());
    }

    private static int NameLength(ReadOnlySpan<byte> s)
    {
        var pos = 0;
        while (s[pos] != 0) pos += 1 + s[pos];
        return pos + 1;
    }
}

public sealed record DnsSrvData(ushort Priority, ushort Weight, ushort Port, DnsName Target);

public sealed record DnsMxData(ushort Preference, DnsName Exchange);

public sealed record DnsSoaData(DnsName MName, DnsName RName, uint Serial, uint Refresh, uint Retry, uint Expire, uint Minimum);

/// <summary>One EDNS0 option, passed through as code + bytes.</summary>
public sealed record DnsEdnsOption(ushort Code, ReadOnlyMemory<byte> Data);

/// <summary>The EDNS0 OPT pseudo-record (RFC 6891 §6.1): payload size, extended rcode, version, DO, options.</summary>
public sealed record DnsEdns
{
    public ushort UdpPayloadSize { get; init; } = 1232;

    /// <summary>Upper 8 bits of the 12-bit rcode.</summary>
    public byte ExtendedRcode { get; init; }

    public byte Version { get; init; }

    public bool DnssecOk { get; init; }

    /// <summary>The 15 Z bits other than DO, kept so that they pass through.</summary>
    public ushort Z { get; init; }

    public IReadOnlyList<DnsEdnsOption> Options { get; init; } = [];

    /// <summary>The size a responder may use for UDP: below 512 counts as 512 (RFC 6891 §6.2.5).</summary>
    public int EffectiveUdpLimit => Math.Max(DnsFlags.ClassicUdpLimit, (int)UdpPayloadSize);
}
