namespace KtConnect.Engine.Dns;

/// <summary>Resource record types the codec knows by name; every other value passes through as raw rdata.</summary>
public enum DnsType : ushort
{
    A = 1,
    NS = 2,
    CNAME = 5,
    SOA = 6,
    PTR = 12,
    MX = 15,
    TXT = 16,
    AAAA = 28,
    SRV = 33,
    DNAME = 39,
    OPT = 41,
    ANY = 255,
}

public enum DnsClass : ushort
{
    IN = 1,
    CH = 3,
    ANY = 255,
}

public enum DnsRcode : ushort
{
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NXDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// <summary>Bits of the 16-bit flags word (RFC 1035 §4.1.1), as read big-endian from bytes 2..3.</summary>
public static class DnsFlags
{
    public const ushort QR = 0x8000;
    public const ushort AA = 0x0400;
    public const ushort TC = 0x0200;
    public const ushort RD = 0x0100;
    public const ushort RA = 0x0080;
    public const ushort AD = 0x0020;
    public const ushort CD = 0x0010;
    public const int OpcodeShift = 11;
    public const ushort OpcodeMask = 0x7800;
    public const ushort RcodeMask = 0x000F;

    public const int HeaderLength = 12;
    public const int MaxNameLength = 255;
    public const int MaxLabelLength = 63;
    public const int ClassicUdpLimit = 512;
    public const int MaxMessageLength = 65535;
}
