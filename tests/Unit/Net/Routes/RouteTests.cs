using System.Net;
using System.Runtime.InteropServices;
using KtConnect.Engine;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Tests.Unit.Net.Routes;

public class RouteTests
{
    private static IPNetwork N(string s) => IPNetwork.Parse(s);

    private static readonly RouteEntry[] Table =
    [
        new(N("0.0.0.0/0"), "eth0", IPAddress.Parse("192.168.1.1")),
        new(N("192.168.1.0/24"), "eth0", null),
        new(N("10.8.0.0/16"), "wg0", null),
        new(N("192.168.1.20/32"), "eth0", null, "local"),
        new(N("10.96.0.0/12"), "kt0", null),
        new(N("127.0.0.0/8"), "lo", null, "local"),
    ];

    [Fact]
    public void Conflicts_ListEveryOverlap_WithReasons()
    {
        var found = RouteConflicts.Find([N("10.96.0.0/12"), N("192.168.0.0/16"), N("10.8.5.0/24"), N("172.16.0.0/12")], Table,
            [IPAddress.Parse("172.20.0.5")], "kt0");
        Assert.Equal(
        [
            "192.168.0.0/16: overlaps a local network route",
            "192.168.0.0/16: overlaps an address of this machine",
            "10.8.5.0/24: overlaps a VPN route",
            "172.16.0.0/12: contains the API server address 172.20.0.5",
        ], found.Select(c => c.ToString().Split(" [")[0]));
    }

    [Fact]
    public void DefaultRoute_LoopbackAndOurOwnDevice_AreNotConflicts()
    {
        Assert.Empty(RouteConflicts.Find([N("10.96.0.0/12"), N("127.0.0.0/16")], Table, [], "kt0"));
    }

    [Fact]
    public void ConflictException_HasOneErrorIdAndListsAll()
    {
        var e = new RouteConflictException(RouteConflicts.Find([N("192.168.1.0/25"), N("10.8.0.0/24")], Table, [], "kt0"));
        Assert.Equal("RouteConflict", e.ErrorId);
        Assert.Equal(KtErrorCategory.ResourceExists, e.Category);
        Assert.Contains("192.168.1.0/25", e.Message, StringComparison.Ordinal);
        Assert.Contains("10.8.0.0/24", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LinuxJson_IsParsed()
    {
        const string json = """
[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
 {"dst":"10.251.0.0/30","dev":"vt1","protocol":"kernel","scope":"link","prefsrc":"10.251.0.1","flags":[]},
 {"type":"local","dst":"10.251.0.1","dev":"vt1","table":"local","flags":[]},
 {"type":"broadcast","dst":"10.251.0.3","dev":"vt1","table":"local","flags":[]}]
""";
        var routes = LinuxRouteTable.Parse(json, v6: false);
        Assert.Equal(["0.0.0.0/0 via 192.0.2.1 dev eth0", "10.251.0.0/30 dev vt1", "10.251.0.1/32 dev vt1 (local)"], routes.Select(r => r.ToString()));
    }

    [Fact]
    public void MacNetstat_IsParsed_WithAbbreviatedDestinations()
    {
        const string output = """
Routing tables

Internet:
Destination        Gateway            Flags           Netif Expire
default            192.168.1.1        UGScg             en0
10.8/16            link#20            UCS             utun3
127                127.0.0.1          UCS               lo0
192.168.1          link#6             UCS               en0      !
192.168.1.20/32    link#6             UCS               en0      !

Internet6:
Destination                             Gateway                                 Flags               Netif Expire
default                                 fe80::%utun0                            UGcIg               utun0
fd00:1::/64                             link#20                                 UC                  utun3
fe80::%lo0/64                           fe80::1%lo0                             UcI                   lo0
""";
        var routes = MacRouteTable.Parse(output);
        Assert.Equal(["0.0.0.0/0", "10.8.0.0/16", "127.0.0.0/8", "192.168.1.0/24", "192.168.1.20/32", "::/0", "fd00:1::/64", "fe80::/64"],
            routes.Select(r => r.Destination.ToString()));
        Assert.Equal("utun3", routes[1].Device);
        var (file, args) = MacRouteTable.Command("add", N("fd00:96::/64"), "utun7");
        Assert.Equal("route", file);
        Assert.Equal(["-n", "add", "-inet6", "-net", "fd00:96::/64", "-interface", "utun7"], args);
    }

    [Fact]
    public async Task Mac_route_of_a_utun_device_that_is_gone_is_undone_without_a_command()
    {
        var calls = new List<string>();
        var table = new MacRouteTable((file, args, _) =>
        {
            calls.Add(file + " " + string.Join(' ', args));
            return Task.FromResult(new ProcessResult(file, args, 0, "", ""));
        });
        // The routes went with the device; a delete by its name could hit the next session's device of that name.
        await table.RemoveAsync(N("10.96.0.0/12"), "utun-gone-" + Guid.NewGuid().ToString("N")[..6], CancellationToken.None);
        Assert.Empty(calls);
        var present = System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()[0].Name;
        await table.RemoveAsync(N("10.96.0.0/12"), present, CancellationToken.None);
        Assert.Equal([$"route -n delete -net 10.96.0.0/12 -interface {present}"], calls);
    }

    [Fact]
    public unsafe void WindowsIpHelperStructs_HaveTheNetioapiLayout()
    {
        Assert.Equal(28, sizeof(SockaddrInet));
        Assert.Equal(32, sizeof(IpAddressPrefix));
        Assert.Equal(28, Marshal.OffsetOf<IpAddressPrefix>(nameof(IpAddressPrefix.PrefixLength)).ToInt32());
        Assert.Equal(104, sizeof(MibIpForwardRow2));
        Assert.Equal(104, Marshal.SizeOf<MibIpForwardRow2>());
        var expected = new (string Field, int Offset)[]
        {
            ("InterfaceLuid", 0), ("InterfaceIndex", 8), ("DestinationPrefix", 12), ("NextHop", 44), ("SitePrefixLength", 72),
            ("ValidLifetime", 76), ("PreferredLifetime", 80), ("Metric", 84), ("Protocol", 88), ("Loopback", 92),
            ("AutoconfigureAddress", 93), ("Publish", 94), ("Immortal", 95), ("Age", 96), ("Origin", 100),
        };
        foreach (var (field, offset) in expected) Assert.Equal((field, offset), (field, Marshal.OffsetOf<MibIpForwardRow2>(field).ToInt32()));
    }

    [Fact]
    public unsafe void WindowsRouteRow_IsWrittenByteForByte_AndReadBack()
    {
        var row = default(MibIpForwardRow2);
        row.ValidLifetime = row.PreferredLifetime = uint.MaxValue; // as InitializeIpForwardEntry leaves them
        row.SetRoute(N("10.96.0.0/12"), 0x0006_0000_0123_4567UL);
        var b = new ReadOnlySpan<byte>(&row, sizeof(MibIpForwardRow2));
        Assert.Equal(new byte[] { 0x67, 0x45, 0x23, 0x01, 0, 0, 0x06, 0 }, b[..8].ToArray());
        Assert.Equal(new byte[] { 2, 0, 0, 0, 10, 96, 0, 0 }, b[12..20].ToArray()); // AF_INET, port 0, 10.96.0.0
        Assert.Equal(12, b[12 + 28]);
        Assert.Equal(new byte[] { 2, 0, 0, 0, 0, 0, 0, 0 }, b[44..52].ToArray()); // on-link: 0.0.0.0 of the same family
        Assert.Equal(new byte[] { 0, 0, 0, 0, 3, 0, 0, 0 }, b[84..92].ToArray()); // metric 0, MIB_IPPROTO_NETMGMT
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, b[76..80].ToArray());
        Assert.Equal(new RouteEntry(N("10.96.0.0/12"), "KtConnect", null), row.ToEntry(l => l == 0x0006_0000_0123_4567UL ? "KtConnect" : null));

        // Bytes as GetIpForwardTable2 would hand them over: an IPv6 route via a gateway.
        var raw = new byte[104];
        raw[0] = 9;
        raw[12] = 23; // AF_INET6
        IPAddress.Parse("fd00:96::").GetAddressBytes().CopyTo(raw, 12 + 8);
        raw[12 + 28] = 64;
        raw[44] = 23;
        IPAddress.Parse("fe80::1").GetAddressBytes().CopyTo(raw, 44 + 8);
        raw[44 + 24] = 7; // scope id
        var back = MemoryMarshal.Read<MibIpForwardRow2>(raw);
        var entry = back.ToEntry(l => l == 9 ? "Ethernet" : null);
        Assert.Equal(N("fd00:96::/64"), entry.Destination);
        Assert.Equal("Ethernet", entry.Device);
        Assert.Equal(IPAddress.Parse("fe80::1%7"), entry.Gateway);
        var six = default(MibIpForwardRow2);
        six.SetRoute(N("fd00:96::/64"), 9);
        var sb = new ReadOnlySpan<byte>(&six, sizeof(MibIpForwardRow2));
        Assert.Equal(raw.AsSpan(12, 29).ToArray(), sb[12..41].ToArray());
        raw[12] = 99;
        Assert.Throws<KtException>(() => MemoryMarshal.Read<MibIpForwardRow2>(raw).ToEntry(_ => null));
    }

    private sealed class FakeTable : IRouteTable
    {
        public List<IPNetwork> Routes { get; } = [];
        public string Platform => "fake";
        public IPNetwork? FailOn { get; init; }

        public Task<IReadOnlyList<RouteEntry>> ReadAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<RouteEntry>>([new(N("192.168.1.0/24"), "eth0", null)]);

        public Task AddAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
        {
            if (destination == FailOn) throw new KtException("RouteAddFailed", KtErrorCategory.InvalidOperation, "boom");
            Routes.Add(destination);
            return Task.CompletedTask;
        }

        public Task RemoveAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
        {
            Routes.Remove(destination);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task RouteSet_JournalsBeforeAdding_RemovesOnDispose_AndRefusesConflictsWithoutChanging()
    {
        var dir = Path.Combine(Path.GetTempPath(), "ktnet-journal-" + Guid.NewGuid().ToString("N"));
        try
        {
            var journal = new ChangeJournal(dir);
            var table = new FakeTable();
            var e = await Assert.ThrowsAsync<RouteConflictException>(() =>
                RouteSet.AddAsync(table, journal, "kt0", [N("10.96.0.0/12"), N("192.168.0.0/16")], [], ignoreConflicts: false));
            Assert.Single(e.Conflicts);
            Assert.Empty(table.Routes);
            Assert.Empty(journal.ReadAll());

            var set = await RouteSet.AddAsync(table, journal, "kt0", [N("10.96.0.0/12"), N("192.168.0.0/16")], [], ignoreConflicts: true);
            Assert.Equal(2, table.Routes.Count);
            Assert.Equal(2, journal.ReadAll().Count);
            Assert.All(journal.ReadAll(), j => Assert.Equal("route", j.Kind));
            await set.DisposeAsync();
            Assert.Empty(table.Routes);
            Assert.Empty(journal.ReadAll());

            // A failure half-way removes what was added and leaves no journal entry behind.
            var failing = new FakeTable { FailOn = N("10.100.0.0/16") };
            await Assert.ThrowsAsync<KtException>(() =>
                RouteSet.AddAsync(failing, journal, "kt0", [N("10.96.0.0/16"), N("10.100.0.0/16")], [], ignoreConflicts: false));
            Assert.Empty(failing.Routes);
            Assert.Empty(journal.ReadAll());

            // Crash recovery: entries left by a dead owner are undone by the handler.
            var leftover = await journal.RecordAsync("route", new Dictionary<string, string> { ["cidr"] = "10.97.0.0/16", ["device"] = "kt0" }, "route");
            table.Routes.Add(N("10.97.0.0/16"));
            await new RouteUndoHandler(_ => table).UndoAsync(leftover, CancellationToken.None);
            Assert.Empty(table.Routes);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
