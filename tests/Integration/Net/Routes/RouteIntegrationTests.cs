using System.Net;
using KtConnect.Engine;
using KtConnect.Engine.Net.Routes;
using KtConnect.KubeSim.Host;

namespace KtConnect.Tests.Integration.Net.Routes;

/// <summary>Routes in a namespace of our own: conflicts read from the real table, journal, removal.</summary>
public class RouteIntegrationTests
{
    [LinuxRootFact]
    public async Task Routes_AreAddedJournaledAndRemoved_ConflictsWithRealTableAreReported()
    {
        await using var ns = await NetNs.CreateAsync("ktnet-");
        // A veth pair inside the namespace: one end is "the LAN", the other stands in for the tun device.
        var dev = "ktn" + Guid.NewGuid().ToString("N")[..8];
        var other = "ktn" + Guid.NewGuid().ToString("N")[..8];
        await ns.ExecAsync(default, "ip", "link", "add", dev, "type", "veth", "peer", "name", other);
        await ns.ExecAsync(default, "ip", "link", "set", dev, "up");
        await ns.ExecAsync(default, "ip", "link", "set", other, "up");
        await ns.ExecAsync(default, "ip", "addr", "add", "192.168.77.1/24", "dev", dev);
        var dir = Path.Combine(Path.GetTempPath(), "ktnet-journal-" + Guid.NewGuid().ToString("N"));
        try
        {
            var table = new LinuxRouteTable(ns.Name);
            var journal = new ChangeJournal(dir);
            var e = await Assert.ThrowsAsync<RouteConflictException>(() => RouteSet.AddAsync(table, journal, other,
                [IPNetwork.Parse("10.96.0.0/16"), IPNetwork.Parse("192.168.0.0/16")], [IPAddress.Parse("10.96.0.1")], ignoreConflicts: false));
            Assert.Equal("RouteConflict", e.ErrorId);
            Assert.Contains(e.Conflicts, c => c.Reason.Contains("API server", StringComparison.Ordinal));
            Assert.Contains(e.Conflicts, c => c.Reason == "overlaps a local network route");
            Assert.DoesNotContain("10.96.0.0/16", (await ns.ExecAsync(default, "ip", "route")).StandardOutput, StringComparison.Ordinal);

            await using (var set = await RouteSet.AddAsync(table, journal, other,
                             [IPNetwork.Parse("10.96.0.0/16"), IPNetwork.Parse("fd00:96::/64")], [IPAddress.Parse("172.20.0.1")], ignoreConflicts: false))
            {
                Assert.Contains($"10.96.0.0/16 dev {other}", (await ns.ExecAsync(default, "ip", "route")).StandardOutput, StringComparison.Ordinal);
                Assert.Contains("fd00:96::/64", (await ns.ExecAsync(default, "ip", "-6", "route")).StandardOutput, StringComparison.Ordinal);
                Assert.Equal(2, journal.ReadAll().Count);
            }
            Assert.DoesNotContain("10.96.0.0/16", (await ns.ExecAsync(default, "ip", "route")).StandardOutput, StringComparison.Ordinal);
            Assert.Empty(journal.ReadAll());

            // Crash: a route journaled by an owner that is gone is removed by the undo handler.
            await table.AddAsync(IPNetwork.Parse("10.97.0.0/16"), other, default);
            var entry = await journal.RecordAsync("route", new Dictionary<string, string> { ["cidr"] = "10.97.0.0/16", ["device"] = other }, "test");
            await new RouteUndoHandler(_ => table).UndoAsync(entry, default);
            await new RouteUndoHandler(_ => table).UndoAsync(entry, default); // idempotent
            Assert.DoesNotContain("10.97.0.0/16", (await ns.ExecAsync(default, "ip", "route")).StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
