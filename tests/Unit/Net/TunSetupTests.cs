using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using KtConnect.Engine;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.MacOS;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Tests.Unit.Net;

/// <summary>
/// The OS-neutral tun factory and what the macOS and Windows setups do that is not a system call: the ifconfig
/// command lines and the MIB_UNICASTIPADDRESS_ROW and MIB_IPINTERFACE_ROW layouts.
/// </summary>
public class TunSetupTests
{
    private sealed class FakeIfconfig
    {
        public List<(string File, string[] Args, string? Stdin)> Calls { get; } = [];
        public Func<string[], bool> Fails { get; set; } = _ => false;

        public Task<ProcessResult> Run(string file, IReadOnlyList<string> args, string? stdin, CancellationToken ct)
        {
            var a = args.ToArray();
            Calls.Add((file, a, stdin));
            return Task.FromResult(Fails(a)
                ? new ProcessResult(file, a, 1, "", "ifconfig: ioctl (SIOCAIFADDR): File exists")
                : new ProcessResult(file, a, 0, "", ""));
        }

        public IEnumerable<string> Lines => Calls.Select(c => string.Join(' ', c.Args));
    }

    private static TunAddress[] A(params string[] cidrs) => cidrs.Select(TunAddress.Parse).ToArray();

    [Fact]
    public void TunAddress_KeepsHostBits_DefaultsToHostPrefix_AndRejectsNonsense()
    {
        Assert.Equal(new TunAddress(IPAddress.Parse("198.18.0.1"), 32), TunAddress.Parse("198.18.0.1/32"));
        Assert.Equal(new TunAddress(IPAddress.Parse("198.18.0.1"), 24), TunAddress.Parse("198.18.0.1/24"));
        Assert.Equal(new TunAddress(IPAddress.Parse("fd00::1"), 128), TunAddress.Parse("fd00::1"));
        Assert.Equal(IPAddress.Parse("255.255.255.255"), TunAddress.Parse("198.18.0.1/32").Netmask);
        Assert.Equal(IPAddress.Parse("255.255.240.0"), TunAddress.Parse("10.0.0.1/20").Netmask);
        Assert.Equal(IPAddress.Any, TunAddress.Parse("10.0.0.1/0").Netmask);
        foreach (var bad in new[] { "", "kt0", "198.18.0.1/33", "fd00::1/129", "198.18.0.1/", "198.18.0.1/-1", "198.18.0.1/ 8", "198.18.0.1/32/1" })
            Assert.Equal("TunAddressInvalid", Assert.Throws<TunDeviceException>(() => TunAddress.Parse(bad)).ErrorId);
    }

    [Fact]
    public void Ifconfig_IPv4_IsPointToPointToItself_WithMtuAndUp()
    {
        var cmds = UtunSetup.IfconfigCommands("utun5", 65520, A("198.18.0.1/32"));
        Assert.Equal([["utun5", "inet", "198.18.0.1", "198.18.0.1", "netmask", "255.255.255.255", "mtu", "65520", "up"]], cmds);
    }

    [Fact]
    public void Ifconfig_IPv6_UsesPrefixlen_AndFurtherIPv4AddressesAreAliases()
    {
        var cmds = UtunSetup.IfconfigCommands("utun3", 1500, A("fd00:ee::1/128", "198.18.0.1/32", "198.18.0.2/24"));
        Assert.Equal(
        [
            ["utun3", "inet", "198.18.0.1", "198.18.0.1", "netmask", "255.255.255.255", "mtu", "1500", "up"],
            ["utun3", "inet", "198.18.0.2", "198.18.0.2", "netmask", "255.255.255.0", "alias"],
            ["utun3", "inet6", "fd00:ee::1", "prefixlen", "128"],
        ], cmds);

        // Without an IPv4 address the MTU and the up flag still get set, first.
        Assert.Equal(
        [
            ["utun3", "mtu", "1500", "up"],
            ["utun3", "inet6", "fd00:ee::1", "prefixlen", "64"],
        ], UtunSetup.IfconfigCommands("utun3", 1500, A("fd00:ee::1/64")));
    }

    [Fact]
    public async Task Configure_RunsIfconfigByFullPath_InOrder_AndStopsAtTheFirstFailureNamingIt()
    {
        var fake = new FakeIfconfig();
        await UtunSetup.ConfigureAsync("utun4", 65520, A("198.18.0.1/32", "fd00:ee::1/128"), fake.Run);
        Assert.All(fake.Calls, c => Assert.Equal("/sbin/ifconfig", c.File));
        Assert.All(fake.Calls, c => Assert.Null(c.Stdin));
        Assert.Equal(["utun4 inet 198.18.0.1 198.18.0.1 netmask 255.255.255.255 mtu 65520 up", "utun4 inet6 fd00:ee::1 prefixlen 128"], fake.Lines);

        var failing = new FakeIfconfig { Fails = a => a[1] == "inet6" };
        var e = await Assert.ThrowsAsync<TunDeviceException>(() =>
            UtunSetup.ConfigureAsync("utun4", 65520, A("fd00:ee::1/128", "fd00:ee::2/128"), failing.Run));
        Assert.Equal("TunConfigureFailed", e.ErrorId);
        Assert.Contains("/sbin/ifconfig utun4 inet6 fd00:ee::1 prefixlen 128", e.Message, StringComparison.Ordinal);
        Assert.Contains("File exists", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, failing.Calls.Count); // mtu/up, then the failing address; the second address is never tried
    }

    [Fact]
    public void UtunUnit_IsHonouredOnlyForUtunN()
    {
        Assert.Equal(7, UtunSetup.UnitOf("utun7"));
        Assert.Equal(0, UtunSetup.UnitOf("utun0"));
        Assert.Null(UtunSetup.UnitOf("utun"));
        Assert.Null(UtunSetup.UnitOf("kt0"));
        Assert.Null(UtunSetup.UnitOf("utun07"));
        Assert.Null(UtunSetup.UnitOf("utun-1"));
        Assert.Null(UtunSetup.UnitOf("utunx"));
        Assert.Null(UtunSetup.UnitOf("utun99999999999"));
    }

    [Fact]
    public void Factory_ChoosesTheBackendPerOs()
    {
        Assert.Equal(TunBackend.LinuxTun, TunDevices.BackendFor(linux: true, macos: false, windows: false));
        Assert.Equal(TunBackend.MacUtun, TunDevices.BackendFor(linux: false, macos: true, windows: false));
        Assert.Equal(TunBackend.Wintun, TunDevices.BackendFor(linux: false, macos: false, windows: true));
        Assert.Null(TunDevices.BackendFor(linux: false, macos: false, windows: false));
        var expected = OperatingSystem.IsLinux() ? TunBackend.LinuxTun
            : OperatingSystem.IsMacOS() ? TunBackend.MacUtun
            : OperatingSystem.IsWindows() ? TunBackend.Wintun
            : (TunBackend?)null;
        Assert.Equal(expected, TunDevices.Current);
    }

    [Fact]
    public async Task Factory_RefusesABadAddressBeforeCreatingAnything()
    {
        var fake = new FakeIfconfig();
        // Checked before any device is opened: the same error with or without privileges, on every OS.
        var e = await Assert.ThrowsAsync<TunDeviceException>(() => TunDevices.CreateAsync("kt-unit-none", 1500, ["198.18.0.1/40"], fake.Run));
        Assert.Equal("TunAddressInvalid", e.ErrorId);
        Assert.Empty(fake.Calls);
        await Assert.ThrowsAsync<ArgumentException>(() => TunDevices.CreateAsync("", 1500, ["198.18.0.1/32"]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => TunDevices.CreateAsync("kt-unit-none", 0, ["198.18.0.1/32"]));
        if (OperatingSystem.IsLinux())
        {
            // Linux keeps its own checks (the name must fit IFNAMSIZ), still before anything is created.
            var longName = await Assert.ThrowsAsync<TunDeviceException>(() => TunDevices.CreateAsync("kt-name-far-too-long", 1500, ["198.18.0.1/32"]));
            Assert.Equal("TunNameTooLong", longName.ErrorId);
        }
    }

    [Fact]
    public unsafe void UnicastAddressRow_HasTheNetioapiLayout()
    {
        Assert.Equal(80, sizeof(MibUnicastIpAddressRow));
        Assert.Equal(80, Marshal.SizeOf<MibUnicastIpAddressRow>());
        var expected = new (string Field, int Offset)[]
        {
            ("Address", 0), ("InterfaceLuid", 32), ("InterfaceIndex", 40), ("PrefixOrigin", 44), ("SuffixOrigin", 48),
            ("ValidLifetime", 52), ("PreferredLifetime", 56), ("OnLinkPrefixLength", 60), ("SkipAsSource", 61),
            ("DadState", 64), ("ScopeId", 68), ("CreationTimeStamp", 72),
        };
        foreach (var (field, offset) in expected)
            Assert.Equal((field, offset), (field, Marshal.OffsetOf<MibUnicastIpAddressRow>(field).ToInt32()));
    }

    [Fact]
    public unsafe void UnicastAddressRow_IPv4_MarshalsAddressLuidPrefixAndDadState()
    {
        var row = InitializedRow();
        row.SetAddress(IPAddress.Parse("198.18.0.1"), 32, 0x0006_0000_0123_4567UL);
        var b = new ReadOnlySpan<byte>(&row, sizeof(MibUnicastIpAddressRow));
        Assert.Equal(new byte[] { 2, 0, 0, 0, 198, 18, 0, 1 }, b[..8].ToArray()); // AF_INET, port 0, 198.18.0.1
        Assert.Equal(new byte[] { 0x67, 0x45, 0x23, 0x01, 0, 0, 0x06, 0 }, b[32..40].ToArray());
        Assert.Equal(new byte[4], b[40..44].ToArray()); // index 0: the LUID decides
        Assert.Equal(new byte[] { 16, 0, 0, 0, 16, 0, 0, 0 }, b[44..52].ToArray()); // origins left unchanged
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, b[52..60].ToArray()); // infinite lifetimes kept
        Assert.Equal(32, b[60]);
        Assert.Equal(0, b[61]);
        Assert.Equal(new byte[] { 4, 0, 0, 0 }, b[64..68].ToArray()); // IpDadStatePreferred
        Assert.Equal(new byte[12], b[68..80].ToArray());
    }

    [Fact]
    public unsafe void UnicastAddressRow_IPv6_MarshalsTheSockaddrIn6_AndRefusesABadPrefix()
    {
        var row = InitializedRow();
        row.SetAddress(IPAddress.Parse("fd00:ee::1"), 128, 9);
        var b = new ReadOnlySpan<byte>(&row, sizeof(MibUnicastIpAddressRow));
        Assert.Equal(new byte[] { 23, 0 }, b[..2].ToArray()); // AF_INET6 on Windows
        Assert.Equal(new byte[4], b[4..8].ToArray()); // flow info
        Assert.Equal(IPAddress.Parse("fd00:ee::1").GetAddressBytes(), b[8..24].ToArray());
        Assert.Equal(9, b[32]);
        Assert.Equal(128, b[60]);
        Assert.Equal(IPAddress.Parse("fd00:ee::1"), row.Address.ToAddress());

        Assert.Throws<ArgumentOutOfRangeException>(() => InitializedRow().SetAddress(IPAddress.Parse("198.18.0.1"), 33, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => InitializedRow().SetAddress(IPAddress.Parse("fd00::1"), 129, 1));
    }

    /// <summary>MIB_IPINTERFACE_ROW field by field as netioapi.h declares it, laid out by the C rules (natural alignment).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct NetioapiIpInterfaceRow
    {
        public ushort Family;
        public ulong InterfaceLuid;
        public uint InterfaceIndex;
        public uint MaxReassemblySize;
        public ulong InterfaceIdentifier;
        public uint MinRouterAdvertisementInterval;
        public uint MaxRouterAdvertisementInterval;
        public byte AdvertisingEnabled;
        public byte ForwardingEnabled;
        public byte WeakHostSend;
        public byte WeakHostReceive;
        public byte UseAutomaticMetric;
        public byte UseNeighborUnreachabilityDetection;
        public byte ManagedAddressConfigurationSupported;
        public byte OtherStatefulConfigurationSupported;
        public byte AdvertiseDefaultRoute;
        public int RouterDiscoveryBehavior;
        public uint DadTransmits;
        public uint BaseReachableTime;
        public uint RetransmitTime;
        public uint PathMtuDiscoveryTimeout;
        public int LinkLocalAddressBehavior;
        public uint LinkLocalAddressTimeout;
        public fixed uint ZoneIndices[16];
        public uint SitePrefixLength;
        public uint Metric;
        public uint NlMtu;
        public byte Connected;
        public byte SupportsWakeUpPatterns;
        public byte SupportsNeighborDiscovery;
        public byte SupportsRouterDiscovery;
        public uint ReachableTime;
        public byte TransmitOffload;
        public byte ReceiveOffload;
        public byte DisableDefaultRoutes;
    }

    [Fact]
    public unsafe void InterfaceRow_HasTheNetioapiLayoutFor64BitWindows()
    {
        // Our explicit offsets against the header's declaration laid out independently.
        Assert.Equal(sizeof(NetioapiIpInterfaceRow), sizeof(MibIpInterfaceRow));
        Assert.Equal(168, sizeof(MibIpInterfaceRow));
        foreach (var field in typeof(MibIpInterfaceRow).GetFields().Where(f => !f.IsStatic).Select(f => f.Name))
        {
            Assert.Equal((field, Marshal.OffsetOf<NetioapiIpInterfaceRow>(field).ToInt32()),
                (field, Marshal.OffsetOf<MibIpInterfaceRow>(field).ToInt32()));
        }
    }

    [Fact]
    public unsafe void InterfaceRow_SetMtu_ClearsTheIPv4SitePrefixLengthOnly_AndKeepsEverythingElse()
    {
        var v4 = default(MibIpInterfaceRow);
        var bytes = new Span<byte>(&v4, sizeof(MibIpInterfaceRow));
        bytes.Fill(0xA5); // what GetIpInterfaceEntry filled
        v4.Select(0x0006_0000_0123_4567UL, AddressFamily.InterNetwork);
        v4.SetMtu(1400);
        Assert.Equal(new byte[] { 2, 0 }, bytes[..2].ToArray());
        Assert.Equal(new byte[] { 0x67, 0x45, 0x23, 0x01, 0, 0, 0x06, 0 }, bytes[8..16].ToArray());
        Assert.Equal(new byte[4], bytes[16..20].ToArray());
        Assert.Equal(new byte[] { 0x78, 0x05, 0, 0 }, bytes[152..156].ToArray()); // 1400
        Assert.Equal(new byte[4], bytes[144..148].ToArray());
        Assert.All(bytes[20..144].ToArray(), b => Assert.Equal(0xA5, b));
        Assert.All(bytes[156..168].ToArray(), b => Assert.Equal(0xA5, b));

        var v6 = default(MibIpInterfaceRow);
        v6.Select(9, AddressFamily.InterNetworkV6);
        v6.SitePrefixLength = 48;
        v6.SetMtu(1280);
        Assert.Equal(SockaddrInet.AfInet6, v6.Family);
        Assert.Equal((48u, 1280u), (v6.SitePrefixLength, v6.NlMtu));
        Assert.Throws<ArgumentOutOfRangeException>(() => v6.SetMtu(1279));
        var small = default(MibIpInterfaceRow);
        small.Select(9, AddressFamily.InterNetwork);
        Assert.Throws<ArgumentOutOfRangeException>(() => small.SetMtu(575));
    }

    /// <summary>What InitializeUnicastIpAddressEntry leaves (its documented defaults).</summary>
    private static MibUnicastIpAddressRow InitializedRow() => new()
    {
        PrefixOrigin = MibUnicastIpAddressRow.OriginUnchanged,
        SuffixOrigin = MibUnicastIpAddressRow.OriginUnchanged,
        ValidLifetime = uint.MaxValue,
        PreferredLifetime = uint.MaxValue,
        OnLinkPrefixLength = 0xFF,
    };
}
