using System.Net;
using System.Runtime.InteropServices;
using KtConnect.Engine;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.MacOS;
using KtConnect.Engine.Net.Redirect;
using KtConnect.Engine.Net.Windows;

namespace KtConnect.Tests.Unit.Net;

/// <summary>The parts of the macOS and Windows devices that are not system calls.</summary>
public class PlatformDeviceTests
{
    [Fact]
    public void UtunHeader_CarriesTheFamilyInNetworkOrder()
    {
        Span<byte> h = stackalloc byte[4];
        UtunFraming.WriteHeader(h, [0x45, 0]);
        Assert.Equal(new byte[] { 0, 0, 0, 2 }, h.ToArray());
        UtunFraming.WriteHeader(h, [0x60, 0]);
        Assert.Equal(new byte[] { 0, 0, 0, 30 }, h.ToArray());
        Assert.Throws<MalformedPacketException>(() => UtunFraming.WriteHeader(new byte[4], [0x50]));
        Assert.True(UtunFraming.TryUnwrap(new byte[] { 0, 0, 0, 2, 0x45 }, out var off, out var len));
        Assert.Equal((4, 1), (off, len));
        Assert.False(UtunFraming.TryUnwrap(new byte[] { 0, 0, 0, 7, 0x45 }, out _, out _));
        Assert.False(UtunFraming.TryUnwrap(new byte[] { 0, 0, 0, 2 }, out _, out _));
    }

    [Fact]
    public unsafe void KernelControlStructs_HaveDarwinLayouts()
    {
        Assert.Equal(100, sizeof(UtunNative.CtlInfo));
        Assert.Equal(32, sizeof(UtunNative.SockaddrCtl));
        Assert.Equal(8, Marshal.OffsetOf<UtunNative.SockaddrCtl>(nameof(UtunNative.SockaddrCtl.ScUnit)).ToInt32());
        var a = UtunNative.MakeAddress(42, 5);
        Assert.Equal((32, 32, 2, 42u, 6u), (a.ScLen, a.ScFamily, a.SsSysaddr, a.ScId, a.ScUnit));
        Assert.Equal(0u, UtunNative.MakeAddress(1, null).ScUnit);
        var info = UtunNative.MakeCtlInfo();
        Assert.Equal((byte)'c', info.CtlName[0]);
        Assert.Equal(0, info.CtlName[UtunNative.ControlName.Length]);
    }

    [Fact]
    public void PfAnchor_RoutesToLoopback_RedirectsAndHonoursExcludes()
    {
        var rule = new RedirectRule([IPNetwork.Parse("10.96.0.0/12"), IPNetwork.Parse("fd00:96::/64")], [IPNetwork.Parse("10.96.0.1/32")], 15001);
        Assert.Equal("""
no rdr on lo0 inet proto tcp from any to 10.96.0.1/32
rdr on lo0 inet proto tcp from any to 10.96.0.0/12 -> 127.0.0.1 port 15001
rdr on lo0 inet6 proto tcp from any to fd00:96::/64 -> ::1 port 15001
pass out quick inet proto tcp from any to 10.96.0.1/32
pass out route-to (lo0 127.0.0.1) inet proto tcp from any to 10.96.0.0/12 keep state
pass out route-to (lo0 ::1) inet6 proto tcp from any to fd00:96::/64 keep state

""".ReplaceLineEndings("\n"), PfRedirect.AnchorRules(rule));
        Assert.Equal("1234567", PfRedirect.ParseEnableToken("pf enabled\nToken : 1234567\n"));
        Assert.Equal(["-a", "com.ktconnect", "-F", "all"], PfRedirect.UnloadCommands("com.ktconnect", "1")[0]);
        Assert.Equal(["-X", "1"], PfRedirect.UnloadCommands("com.ktconnect", "1")[1]);
    }

    [Fact]
    public unsafe void PfNatlook_Is84Bytes_WithTheIoctlNumber_AndPortsInNetworkOrder()
    {
        Assert.Equal(84, sizeof(PfiocNatlook));
        Assert.Equal(64, Marshal.OffsetOf<PfiocNatlook>(nameof(PfiocNatlook.SxPort)).ToInt32());
        Assert.Equal(80, Marshal.OffsetOf<PfiocNatlook>(nameof(PfiocNatlook.Af)).ToInt32());
        Assert.Equal(0xC0544417u, PfiocNatlook.DiocNatLook);
        var q = PfiocNatlook.Query(new IPEndPoint(IPAddress.Parse("192.168.1.5"), 50000), new IPEndPoint(IPAddress.Loopback, 15001));
        var bytes = new ReadOnlySpan<byte>(&q, sizeof(PfiocNatlook));
        Assert.Equal(new byte[] { 192, 168, 1, 5 }, bytes[..4].ToArray());
        Assert.Equal(new byte[] { 0xC3, 0x50 }, bytes.Slice(64, 2).ToArray()); // 50000 big-endian
        Assert.Equal((2, 6, 2), (q.Af, q.Proto, q.Direction));
        // What the kernel would fill in: rdaddr 10.96.0.10, rdxport 8080.
        q.RdAddr[0] = 10;
        q.RdAddr[1] = 96;
        q.RdAddr[3] = 10;
        var port = stackalloc byte[4] { 0x1F, 0x90, 0, 0 };
        q.RdxPort = *(uint*)port;
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.96.0.10"), 8080), q.OriginalDestination);
    }

    [Fact]
    public void WintunLocator_SearchesOurFolders_ChecksArchitecture_AndNamesPathsOnFailure()
    {
        var baseDir = Path.Combine("C:", "mod");
        var expected = Path.Combine(baseDir, "Dependencies", "runtimes", "win-arm64", "native", "wintun.dll");
        var found = WintunLocator.Resolve(baseDir, Architecture.Arm64, p => p == expected, _ => WintunLocator.MachineArm64);
        Assert.Equal(Path.GetFullPath(expected), found);

        var wrong = Assert.Throws<KtException>(() => WintunLocator.Resolve(baseDir, Architecture.Arm64, p => p == expected, _ => WintunLocator.MachineX64));
        Assert.Equal("WintunArchitectureMismatch", wrong.ErrorId);

        var missing = Assert.Throws<KtException>(() => WintunLocator.Resolve(baseDir, Architecture.X64, _ => false));
        Assert.Equal("WintunNotFound", missing.ErrorId);
        foreach (var c in WintunLocator.Candidates(baseDir, Architecture.X64)) Assert.Contains(c, missing.Message, StringComparison.Ordinal);
        Assert.Contains("win-x64", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PeMachine_IsReadFromTheHeader()
    {
        var path = Path.Combine(Path.GetTempPath(), "ktnet-pe-" + Guid.NewGuid().ToString("N"));
        try
        {
            var pe = new byte[256];
            pe[0] = (byte)'M';
            pe[1] = (byte)'Z';
            pe[0x3C] = 0x80;
            pe[0x80] = (byte)'P';
            pe[0x81] = (byte)'E';
            pe[0x84] = 0x64;
            pe[0x85] = 0x86;
            File.WriteAllBytes(path, pe);
            Assert.Equal(WintunLocator.MachineX64, WintunLocator.ReadMachine(path));
            File.WriteAllBytes(path, new byte[100]);
            Assert.Null(WintunLocator.ReadMachine(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WintunLimits_RingAndPackets()
    {
        Assert.Equal(0x400000, WintunLimits.ValidateRingCapacity(0x400000));
        Assert.Equal("WintunRingCapacityInvalid", Assert.Throws<KtException>(() => WintunLimits.ValidateRingCapacity(0x30000)).ErrorId);
        Assert.Equal("WintunRingCapacityInvalid", Assert.Throws<KtException>(() => WintunLimits.ValidateRingCapacity(0x10000)).ErrorId);
        Assert.True(WintunLimits.CanSend([0x45, 0]));
        Assert.False(WintunLimits.CanSend([]));
        Assert.False(WintunLimits.CanSend(new byte[70000]));
        Assert.False(WintunLimits.CanSend([0x20]));
    }
}
