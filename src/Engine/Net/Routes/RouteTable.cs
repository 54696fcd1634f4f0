using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Net.Routes;

/// <summary>One route of the local routing table, as far as conflict detection needs it.</summary>
public sealed record RouteEntry(IPNetwork Destination, string? Device, IPAddress? Gateway, string? Kind = null)
{
    public bool IsDefault => Destination.PrefixLength == 0;

    public override string ToString() =>
        $"{Destination}{(Gateway is null ? "" : $" via {Gateway}")}{(Device is null ? "" : $" dev {Device}")}{(Kind is null ? "" : $" ({Kind})")}";
}

/// <summary>The OS routing table: read it, add and remove routes through a device. One implementation per OS.</summary>
public interface IRouteTable
{
    /// <summary>Which OS this table drives; stored in journal entries so the right undo runs.</summary>
    string Platform { get; }

    /// <summary>The network namespace the table is in when it is not this process's own (tests' tables), else null.</summary>
    string? Namespace => null;

    Task<IReadOnlyList<RouteEntry>> ReadAsync(CancellationToken cancellationToken);

    Task AddAsync(IPNetwork destination, string device, CancellationToken cancellationToken);

    /// <summary>Removes the route; a route already gone is not an error.</summary>
    Task RemoveAsync(IPNetwork destination, string device, CancellationToken cancellationToken);
}

/// <summary>Why a requested route was not added.</summary>
public sealed record RouteConflict(IPNetwork Requested, string Reason, RouteEntry? Existing = null)
{
    public override string ToString() => $"{Requested}: {Reason}{(Existing is null ? "" : $" [{Existing}]")}";
}

/// <summary>One error listing every conflict found before anything was changed.</summary>
public sealed class RouteConflictException : KtException
{
    public RouteConflictException(IReadOnlyList<RouteConflict> conflicts)
        : base("RouteConflict", KtErrorCategory.ResourceExists,
            "Routing these ranges into the tunnel would take traffic away from where it goes now; nothing was changed:" +
            Environment.NewLine + string.Join(Environment.NewLine, conflicts.Select(c => "  " + c)) + Environment.NewLine +
            "Exclude the ranges, or override the check if you know the overlap is harmless.", target: conflicts)
    {
        Conflicts = conflicts;
    }

    public IReadOnlyList<RouteConflict> Conflicts { get; }
}

/// <summary>Pure functions over CIDRs: overlap and conflict detection.</summary>
public static class RouteConflicts
{
    /// <summary>Interface name prefixes of VPN and overlay software.</summary>
    private static readonly string[] VpnPrefixes = ["tun", "utun", "wg", "ppp", "tailscale", "zt", "ipsec", "nordlynx", "tap", "gpd", "cscotun"];

    public static bool Overlaps(IPNetwork a, IPNetwork b) =>
        a.BaseAddress.AddressFamily == b.BaseAddress.AddressFamily && (a.Contains(b.BaseAddress) || b.Contains(a.BaseAddress));

    public static bool IsVpnDevice(string? device) =>
        device is not null && VpnPrefixes.Any(p => device.StartsWith(p, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Conflicts of <paramref name="requested"/> with the table: overlap with any non-default route not through
    /// <paramref name="ourDevice"/> (a local network, a VPN, an address of this machine) and any range that
    /// contains one of <paramref name="protectedAddresses"/> (the API server: its traffic must not enter the tunnel).
    /// </summary>
    public static IReadOnlyList<RouteConflict> Find(IEnumerable<IPNetwork> requested, IReadOnlyList<RouteEntry> table,
        IEnumerable<IPAddress> protectedAddresses, string ourDevice)
    {
        ArgumentNullException.ThrowIfNull(requested);
        ArgumentNullException.ThrowIfNull(table);
        var protect = (protectedAddresses ?? []).ToList();
        var conflicts = new List<RouteConflict>();
        foreach (var r in requested)
        {
            foreach (var a in protect.Where(a => a.AddressFamily == r.BaseAddress.AddressFamily && r.Contains(a)))
                conflicts.Add(new RouteConflict(r, $"contains the API server address {a}"));
            foreach (var e in table)
            {
                if (e.IsDefault || string.Equals(e.Device, ourDevice, StringComparison.Ordinal) || !Overlaps(r, e.Destination)) continue;
                if (IsIgnorable(e)) continue;
                var reason = e.Kind == "local" ? "overlaps an address of this machine"
                    : IsVpnDevice(e.Device) ? "overlaps a VPN route"
                    : "overlaps a local network route";
                conflicts.Add(new RouteConflict(r, reason, e));
            }
        }
        return conflicts;
    }

    /// <summary>Loopback, link-local and multicast never collide with cluster ranges in a way that matters.</summary>
    private static bool IsIgnorable(RouteEntry e)
    {
        var a = e.Destination.BaseAddress;
        if (IPAddress.IsLoopback(a)) return true;
        if (a.AddressFamily == AddressFamily.InterNetworkV6 && (a.IsIPv6LinkLocal || a.IsIPv6Multicast)) return true;
        return a.AddressFamily == AddressFamily.InterNetwork && (IPNetwork.Parse("169.254.0.0/16").Contains(a) || IPNetwork.Parse("224.0.0.0/4").Contains(a));
    }
}
