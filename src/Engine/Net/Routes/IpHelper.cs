using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace KtConnect.Engine.Net.Routes;

/// <summary>
/// SOCKADDR_INET (ws2ipdef.h): a union of SOCKADDR_IN (16 bytes), SOCKADDR_IN6 (28 bytes) and the family.
/// 28 bytes, 4-byte aligned. Windows' AF_INET6 is 23. Port and addresses are in network byte order.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 28)]
public unsafe struct SockaddrInet
{
    public const ushort AfInet = 2;
    public const ushort AfInet6 = 23;

    [FieldOffset(0)]
    public ushort Family;

    /// <summary>Everything after the family: port (2), then IPv4 address (4) or flow info (4), IPv6 address (16), scope id (4).</summary>
    [FieldOffset(2)]
    public fixed byte Rest[26];

    public static SockaddrInet From(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var s = default(SockaddrInet);
        var bytes = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            s.Family = AfInet;
            for (var i = 0; i < 4; i++) s.Rest[2 + i] = bytes[i];
        }
        else
        {
            s.Family = AfInet6;
            for (var i = 0; i < 16; i++) s.Rest[6 + i] = bytes[i];
            var scope = (uint)address.ScopeId;
            for (var i = 0; i < 4; i++) s.Rest[22 + i] = (byte)(scope >> (8 * i));
        }
        return s;
    }

    public readonly IPAddress ToAddress()
    {
        fixed (byte* p = Rest)
        {
            var span = new ReadOnlySpan<byte>(p, 26);
            return Family switch
            {
                AfInet => new IPAddress(span.Slice(2, 4)),
                AfInet6 => new IPAddress(span.Slice(6, 16), BinaryPrimitives.ReadUInt32LittleEndian(span[22..])),
                _ => throw new KtException("RouteReadFailed", KtErrorCategory.InvalidData, $"Unknown address family {Family} in a route."),
            };
        }
    }
}

/// <summary>IP_ADDRESS_PREFIX (netioapi.h): SOCKADDR_INET then a UINT8 length; 29 bytes padded to 32.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct IpAddressPrefix
{
    [FieldOffset(0)]
    public SockaddrInet Prefix;

    [FieldOffset(28)]
    public byte PrefixLength;
}

/// <summary>
/// MIB_IPFORWARD_ROW2 (netioapi.h), laid out for 64-bit Windows (x64 and arm64: the NET_LUID makes it 8-byte
/// aligned): LUID 0, index 8, destination prefix 12 (32), next hop 44 (28), site prefix length 72, valid and
/// preferred lifetime 76 and 80, metric 84, protocol 88, four BOOLEANs 92..95, age 96, origin 100. 104 bytes.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 104)]
public struct MibIpForwardRow2
{
    /// <summary>NL_ROUTE_PROTOCOL MIB_IPPROTO_NETMGMT: a route added by management (what route.exe uses).</summary>
    public const int ProtocolNetMgmt = 3;

    [FieldOffset(0)]
    public ulong InterfaceLuid;

    [FieldOffset(8)]
    public uint InterfaceIndex;

    [FieldOffset(12)]
    public IpAddressPrefix DestinationPrefix;

    [FieldOffset(44)]
    public SockaddrInet NextHop;

    [FieldOffset(72)]
    public byte SitePrefixLength;

    [FieldOffset(76)]
    public uint ValidLifetime;

    [FieldOffset(80)]
    public uint PreferredLifetime;

    [FieldOffset(84)]
    public uint Metric;

    [FieldOffset(88)]
    public int Protocol;

    [FieldOffset(92)]
    public byte Loopback;

    [FieldOffset(93)]
    public byte AutoconfigureAddress;

    [FieldOffset(94)]
    public byte Publish;

    [FieldOffset(95)]
    public byte Immortal;

    [FieldOffset(96)]
    public uint Age;

    [FieldOffset(100)]
    public int Origin;

    /// <summary>
    /// Fills a row InitializeIpForwardEntry prepared: <paramref name="destination"/> on-link through the interface
    /// (next hop unspecified, of the destination's family), metric offset 0, protocol NETMGMT.
    /// </summary>
    public void SetRoute(IPNetwork destination, ulong interfaceLuid)
    {
        InterfaceLuid = interfaceLuid;
        InterfaceIndex = 0; // the LUID identifies the interface; a non-zero index would have to agree with it
        DestinationPrefix.Prefix = SockaddrInet.From(destination.BaseAddress);
        DestinationPrefix.PrefixLength = (byte)destination.PrefixLength;
        NextHop = SockaddrInet.From(destination.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any);
        Metric = 0;
        Protocol = ProtocolNetMgmt;
    }

    /// <summary>The route as conflict detection sees it; <paramref name="alias"/> names the interface of a LUID.</summary>
    public readonly RouteEntry ToEntry(Func<ulong, string?> alias)
    {
        ArgumentNullException.ThrowIfNull(alias);
        var net = new IPNetwork(DestinationPrefix.Prefix.ToAddress(), DestinationPrefix.PrefixLength);
        var hop = NextHop.ToAddress();
        var onLink = hop.Equals(IPAddress.Any) || hop.Equals(IPAddress.IPv6Any);
        return new RouteEntry(net, alias(InterfaceLuid), onLink ? null : hop);
    }
}

/// <summary>
/// MIB_UNICASTIPADDRESS_ROW (netioapi.h), one unicast address of an interface, laid out for 64-bit Windows (x64 and
/// arm64 alike: natural alignment, the NET_LUID and LARGE_INTEGER are 8-aligned): address 0 (28), LUID 32, index 40,
/// prefix origin 44, suffix origin 48, valid and preferred lifetime 52 and 56, on-link prefix length 60,
/// SkipAsSource 61, DAD state 64, scope id 68, creation time stamp 72. 80 bytes.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 80)]
public struct MibUnicastIpAddressRow
{
    /// <summary>NL_DAD_STATE IpDadStatePreferred: usable at once (a tun has no neighbours to detect duplicates on).</summary>
    public const int DadStatePreferred = 4;

    /// <summary>NL_PREFIX_ORIGIN / NL_SUFFIX_ORIGIN IpPrefixOriginUnchanged, what InitializeUnicastIpAddressEntry leaves.</summary>
    public const int OriginUnchanged = 16;

    [FieldOffset(0)]
    public SockaddrInet Address;

    [FieldOffset(32)]
    public ulong InterfaceLuid;

    [FieldOffset(40)]
    public uint InterfaceIndex;

    [FieldOffset(44)]
    public int PrefixOrigin;

    [FieldOffset(48)]
    public int SuffixOrigin;

    [FieldOffset(52)]
    public uint ValidLifetime;

    [FieldOffset(56)]
    public uint PreferredLifetime;

    [FieldOffset(60)]
    public byte OnLinkPrefixLength;

    [FieldOffset(61)]
    public byte SkipAsSource;

    [FieldOffset(64)]
    public int DadState;

    [FieldOffset(68)]
    public uint ScopeId;

    [FieldOffset(72)]
    public long CreationTimeStamp;

    /// <summary>
    /// Fills a row InitializeUnicastIpAddressEntry prepared (origins unchanged, lifetimes infinite): the address with
    /// its on-link prefix length on the interface of <paramref name="interfaceLuid"/>, preferred at once.
    /// </summary>
    public void SetAddress(IPAddress address, int prefixLength, ulong interfaceLuid)
    {
        ArgumentNullException.ThrowIfNull(address);
        var max = address.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;
        ArgumentOutOfRangeException.ThrowIfNegative(prefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(prefixLength, max);
        Address = SockaddrInet.From(address);
        InterfaceLuid = interfaceLuid;
        InterfaceIndex = 0; // the LUID identifies the interface
        OnLinkPrefixLength = (byte)prefixLength;
        DadState = DadStatePreferred;
    }
}

/// <summary>
/// MIB_IPINTERFACE_ROW (netioapi.h), one address family's settings of an interface, laid out for 64-bit Windows (the
/// NET_LUID and the ULONG64 interface identifier make it 8-aligned): family 0, LUID 8, index 16, nine BOOLEANs
/// 40..48, RouterDiscoveryBehavior 52, ZoneIndices[16] 80..143, SitePrefixLength 144, metric 148, NlMtu 152,
/// Connected 156, reachable time 160, offload flags 164/165, DisableDefaultRoutes 166. 168 bytes. Only the fields
/// we read or write are named; GetIpInterfaceEntry fills the rest and SetIpInterfaceEntry gets them back unchanged.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 168)]
public struct MibIpInterfaceRow
{
    [FieldOffset(0)]
    public ushort Family;

    [FieldOffset(8)]
    public ulong InterfaceLuid;

    [FieldOffset(16)]
    public uint InterfaceIndex;

    [FieldOffset(144)]
    public uint SitePrefixLength;

    [FieldOffset(148)]
    public uint Metric;

    [FieldOffset(152)]
    public uint NlMtu;

    [FieldOffset(156)]
    public byte Connected;

    [FieldOffset(166)]
    public byte DisableDefaultRoutes;

    /// <summary>Names the interface and family to read (InitializeIpInterfaceEntry first, GetIpInterfaceEntry after).</summary>
    public void Select(ulong interfaceLuid, AddressFamily family)
    {
        Family = family == AddressFamily.InterNetworkV6 ? SockaddrInet.AfInet6 : SockaddrInet.AfInet;
        InterfaceLuid = interfaceLuid;
        InterfaceIndex = 0;
    }

    /// <summary>
    /// Sets the IP MTU on a row GetIpInterfaceEntry filled. SetIpInterfaceEntry refuses an IPv4 row whose
    /// SitePrefixLength is not 0 (the field only means something for IPv6), and Get can return one that is not.
    /// </summary>
    public void SetMtu(int mtu)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, Family == SockaddrInet.AfInet6 ? 1280 : 576);
        NlMtu = (uint)mtu;
        if (Family == SockaddrInet.AfInet) SitePrefixLength = 0;
    }
}

/// <summary>The IP Helper calls (iphlpapi.dll) the Windows route table and the Wintun address setup use.</summary>
[SupportedOSPlatform("windows")]
internal static unsafe partial class IpHelperNative
{
    public const uint ErrorSuccess = 0;
    public const uint ErrorFileNotFound = 2;
    public const uint ErrorNotFound = 1168;
    public const uint ErrorObjectAlreadyExists = 5010;

    /// <summary>AF_UNSPEC: both families in one table.</summary>
    public const ushort AfUnspec = 0;

    /// <summary>NDIS_IF_MAX_STRING_SIZE + 1.</summary>
    public const int AliasChars = 257;

    /// <summary>MIB_IPFORWARD_TABLE2: ULONG NumEntries, then the rows at offset 8 (their 8-byte alignment).</summary>
    public const int TableRowsOffset = 8;

    [LibraryImport("iphlpapi.dll")]
    public static partial uint GetIpForwardTable2(ushort family, nint* table);

    [LibraryImport("iphlpapi.dll")]
    public static partial void FreeMibTable(nint memory);

    [LibraryImport("iphlpapi.dll")]
    public static partial void InitializeIpForwardEntry(MibIpForwardRow2* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial uint CreateIpForwardEntry2(MibIpForwardRow2* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial uint DeleteIpForwardEntry2(MibIpForwardRow2* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial void InitializeUnicastIpAddressEntry(MibUnicastIpAddressRow* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial uint CreateUnicastIpAddressEntry(MibUnicastIpAddressRow* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial void InitializeIpInterfaceEntry(MibIpInterfaceRow* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial uint GetIpInterfaceEntry(MibIpInterfaceRow* row);

    [LibraryImport("iphlpapi.dll")]
    public static partial uint SetIpInterfaceEntry(MibIpInterfaceRow* row);

    [LibraryImport("iphlpapi.dll", StringMarshalling = StringMarshalling.Utf16)]
    public static partial uint ConvertInterfaceAliasToLuid(string alias, ulong* luid);

    [LibraryImport("iphlpapi.dll")]
    public static partial uint ConvertInterfaceLuidToAlias(ulong* luid, char* alias, nuint length);
}
