using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Net.Routes;

/// <summary>
/// Windows routes with `netsh interface ipv4|ipv6` and store=active, so nothing survives a reboot even if
/// our cleanup never runs. Reading parses `netsh interface ipvX show route`.
/// </summary>
public sealed class WindowsRouteTable : IRouteTable
{
    public string Platform => "windows";

    public async Task<IReadOnlyList<RouteEntry>> ReadAsync(CancellationToken cancellationToken)
    {
        var list = new List<RouteEntry>();
        foreach (var family in new[] { "ipv4", "ipv6" })
        {
            var r = await ProcessRunner.RunAsync("netsh", ["interface", family, "show", "route"], cancellationToken: cancellationToken).ConfigureAwait(false);
            list.AddRange(Parse(r.EnsureSuccess("RouteReadFailed").StandardOutput));
        }
        return list;
    }

    public async Task AddAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        var (file, args) = Command("add", destination, device);
        (await ProcessRunner.RunAsync(file, args, cancellationToken: cancellationToken).ConfigureAwait(false)).EnsureSuccess("RouteAddFailed");
    }

    public async Task RemoveAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        var (file, args) = Command("delete", destination, device);
        var r = await ProcessRunner.RunAsync(file, args, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded && (r.StandardOutput + r.StandardError).Contains("Element not found", StringComparison.OrdinalIgnoreCase)) return;
        r.EnsureSuccess("RouteRemoveFailed");
    }

    public static (string File, string[] Args) Command(string verb, IPNetwork destination, string device)
    {
        var family = destination.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4";
        return ("netsh", ["interface", family, verb, "route", $"prefix={destination}", $"interface={device}", "store=active"]);
    }

    /// <summary>Parses the table of `netsh interface ipvX show route` (Publish, Type, Met, Prefix, Idx, Gateway/Interface).</summary>
    public static IReadOnlyList<RouteEntry> Parse(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var list = new List<RouteEntry>();
        foreach (var raw in output.Split('\n'))
        {
            var f = raw.Trim().Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 6 || !int.TryParse(f[2], out _) || !IPNetwork.TryParse(f[3], out var net)) continue;
            var last = f[5].Trim();
            var isGateway = IPAddress.TryParse(last, out var gw);
            list.Add(new RouteEntry(net, isGateway ? null : last, isGateway ? gw : null));
        }
        return list;
    }
}
