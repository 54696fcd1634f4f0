using System.Net;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Connect;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Tests.Unit.Sessions.Connect;

/// <summary>Which connect modes refuse an overlap with a local route before anything is changed, and what they refuse.</summary>
public sealed class RouteConflictCheckTests
{
    private static IPNetwork N(string s) => IPNetwork.Parse(s);

    private static readonly RouteEntry[] Table =
    [
        new(N("0.0.0.0/0"), "eth0", IPAddress.Parse("192.168.1.1")),
        new(N("192.168.1.0/24"), "eth0", null),
        new(N("10.96.7.0/24"), "lo", null),
        new(N("10.244.0.0/16"), "kt0", null),
    ];

    private static readonly Cidr[] Ranges = [Cidr.Parse("10.96.0.0/12"), Cidr.Parse("10.244.0.0/16")];

    [Theory]
    [InlineData(ConnectMode.Tun, true)]
    [InlineData(ConnectMode.Redirect, true)]
    [InlineData(ConnectMode.Socks, false)]
    public void Tun_and_redirect_check_socks_does_not(ConnectMode mode, bool checks)
    {
        Assert.Equal(checks, ConnectWorker.ChecksRouteConflicts(new ConnectOptions { Mode = mode }));
        Assert.False(ConnectWorker.ChecksRouteConflicts(new ConnectOptions { Mode = mode, IgnoreRouteConflicts = true }));
    }

    [Fact]
    public void Redirect_mode_finds_the_same_overlap_as_tun_mode_and_has_no_device_of_its_own()
    {
        var tun = ConnectWorker.FindRouteConflicts(new ConnectOptions { Mode = ConnectMode.Tun }, Ranges, Table, []);
        var redirect = ConnectWorker.FindRouteConflicts(new ConnectOptions { Mode = ConnectMode.Redirect }, Ranges, Table, []);

        // Tun mode: the lo route overlaps; the route through our own device kt0 does not count.
        var c = Assert.Single(tun);
        Assert.Equal(N("10.96.0.0/12"), c.Requested);
        Assert.Equal("lo", c.Existing?.Device);
        // Redirect mode: the same lo overlap, and a kt0 route is somebody else's (no tun device is ours in this mode).
        Assert.Equal(2, redirect.Count);
        Assert.Contains(redirect, r => r.Existing?.Device == "lo" && r.Requested == N("10.96.0.0/12"));
        Assert.Contains(redirect, r => r.Existing?.Device == "kt0" && r.Requested == N("10.244.0.0/16"));

        var e = new RouteConflictException(redirect);
        Assert.Equal("RouteConflict", e.ErrorId);
        Assert.Contains("10.96.7.0/24", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Redirect_mode_refuses_a_range_holding_the_api_server_and_the_override_clears_every_conflict()
    {
        var api = new[] { IPAddress.Parse("10.100.0.1") };
        var found = ConnectWorker.FindRouteConflicts(new ConnectOptions { Mode = ConnectMode.Redirect }, Ranges, Table, api);
        Assert.Contains(found, r => r.Existing is null && r.Reason.Contains("10.100.0.1", StringComparison.Ordinal));

        Assert.Empty(ConnectWorker.FindRouteConflicts(new ConnectOptions { Mode = ConnectMode.Redirect, IgnoreRouteConflicts = true }, Ranges, Table, api));
        Assert.Empty(ConnectWorker.FindRouteConflicts(new ConnectOptions { Mode = ConnectMode.Socks }, Ranges, Table, api));
    }
}
