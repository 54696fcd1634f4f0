using System.Net;
using System.Text.Json;

namespace KtConnect.Engine.Net.Routes;

/// <summary>
/// Linux routes through iproute2 (`ip -j route`), run without a shell. With a namespace name every command
/// runs inside it (`ip -n`), which is how tests keep their routes away from the machine's.
/// </summary>
public sealed class LinuxRouteTable : IRouteTable
{
    private readonly string? _netns;

    public LinuxRouteTable(string? netns = null) => _netns = netns;

    public string Platform => "linux";

    public string? Namespace => _netns;

    public async Task<IReadOnlyList<RouteEntry>> ReadAsync(CancellationToken cancellationToken)
    {
        var list = new List<RouteEntry>();
        foreach (var family in new[] { "-4", "-6" })
        {
            var r = await RunAsync(cancellationToken, family, "-j", "route", "show", "table", "all").ConfigureAwait(false);
            r.EnsureSuccess("RouteReadFailed");
            list.AddRange(Parse(r.StandardOutput, family == "-6"));
        }
        return list;
    }

    /// <summary>Parses `ip -j route show` output. Broadcast, multicast and unreachable entries are not destinations.</summary>
    public static IReadOnlyList<RouteEntry> Parse(string json, bool v6)
    {
        var list = new List<RouteEntry>();
        if (string.IsNullOrWhiteSpace(json)) return list;
        using var doc = JsonDocument.Parse(json);
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var type = e.TryGetProperty("type", out var t) ? t.GetString() : null;
            if (type is "broadcast" or "multicast" or "anycast" or "unreachable" or "prohibit" or "blackhole" or "throw") continue;
            var dst = e.TryGetProperty("dst", out var d) ? d.GetString() : null;
            if (dst is null) continue;
            IPNetwork net;
            if (dst == "default") net = v6 ? IPNetwork.Parse("::/0") : IPNetwork.Parse("0.0.0.0/0");
            else if (dst.Contains('/', StringComparison.Ordinal)) net = IPNetwork.Parse(dst);
            else net = new IPNetwork(IPAddress.Parse(dst), v6 ? 128 : 32);
            var dev = e.TryGetProperty("dev", out var dv) ? dv.GetString() : null;
            IPAddress? gw = e.TryGetProperty("gateway", out var g) && IPAddress.TryParse(g.GetString(), out var ga) ? ga : null;
            list.Add(new RouteEntry(net, dev, gw, type == "local" ? "local" : null));
        }
        return list;
    }

    public async Task AddAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        var r = await RunAsync(cancellationToken, Family(destination), "route", "add", destination.ToString(), "dev", device).ConfigureAwait(false);
        r.EnsureSuccess("RouteAddFailed");
    }

    public async Task RemoveAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        var r = await RunAsync(cancellationToken, Family(destination), "route", "del", destination.ToString(), "dev", device).ConfigureAwait(false);
        // Gone already (device removed with it, or undone before): that is the state we want.
        if (!r.Succeeded && (r.StandardError.Contains("No such process", StringComparison.Ordinal)
                             || r.StandardError.Contains("Cannot find device", StringComparison.Ordinal)
                             || r.StandardError.Contains("No such device", StringComparison.Ordinal)))
            return;
        r.EnsureSuccess("RouteRemoveFailed");
    }

    private static string Family(IPNetwork n) => n.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "-6" : "-4";

    private Task<ProcessResult> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        string[] full = _netns is null ? args : ["-n", _netns, .. args];
        return ProcessRunner.RunAsync("ip", full, cancellationToken: cancellationToken);
    }
}
