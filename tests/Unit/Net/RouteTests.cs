using System.Net;
using KtConnect.Engine;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Tests.Unit.Net;

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
    public void WindowsNetsh_IsParsed_AndCommandsAreNonPersistent()
    {
        const string output = """

Publish  Type      Met  Prefix                    Idx  Gateway/Interface Name
-------  --------  ---  ------------------------  ---  ------------------------
No       Manual    0    0.0.0.0/0                  12  192.168.1.1
No       System    256  192.168.1.0/24             12  Wi-Fi
No       Manual    1    10.96.0.0/12               40  KtConnect Tunnel
""";
        var routes = WindowsRouteTable.Parse(output);
        Assert.Equal(3, routes.Count);
        Assert.Equal(IPAddress.Parse("192.168.1.1"), routes[0].Gateway);
        Assert.Equal("KtConnect Tunnel", routes[2].Device);
        var (file, args) = WindowsRouteTable.Command("add", N("10.96.0.0/12"), "KtConnect");
        Assert.Equal("netsh", file);
        Assert.Equal(["interface", "ipv4", "add", "route", "prefix=10.96.0.0/12", "interface=KtConnect", "store=active"], args);
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
