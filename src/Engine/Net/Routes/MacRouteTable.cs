using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Net.Routes;

/// <summary>macOS routes with `route` (add/delete through the utun interface) and `netstat -rn` (read).</summary>
/// <param name="run">Runs a command (tests pass one that records); <see cref="ProcessRunner"/> by default.</param>
public sealed class MacRouteTable(Func<string, IReadOnlyList<string>, CancellationToken, Task<ProcessResult>>? run = null) : IRouteTable
{
    private readonly Func<string, IReadOnlyList<string>, CancellationToken, Task<ProcessResult>> _run =
        run ?? ((file, args, ct) => ProcessRunner.RunAsync(file, args, cancellationToken: ct));

    public string Platform => "macos";

    public async Task<IReadOnlyList<RouteEntry>> ReadAsync(CancellationToken cancellationToken)
    {
        var r = await _run("netstat", ["-rn"], cancellationToken).ConfigureAwait(false);
        return Parse(r.EnsureSuccess("RouteReadFailed").StandardOutput);
    }

    public async Task AddAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        var (file, args) = Command("add", destination, device);
        (await _run(file, args, cancellationToken).ConfigureAwait(false)).EnsureSuccess("RouteAddFailed");
    }

    public async Task RemoveAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        // A utun device goes with the process that opened it, and its routes with it. Its name is soon handed to the next
        // one (the lowest free unit), whose routes to the same ranges a delete by (range, device) would remove: a crashed
        // session's entry is done once its device is gone, before another live session can take the name.
        if (!System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces().Any(n => n.Name == device)) return;
        var (file, args) = Command("delete", destination, device);
        var r = await _run(file, args, cancellationToken).ConfigureAwait(false);
        if (!r.Succeeded && (r.StandardError + r.StandardOutput).Contains("not in table", StringComparison.Ordinal)) return;
        r.EnsureSuccess("RouteRemoveFailed");
    }

    /// <summary>`route -n add|delete [-inet6] -net CIDR -interface DEV`.</summary>
    public static (string File, string[] Args) Command(string verb, IPNetwork destination, string device)
    {
        var v6 = destination.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6;
        string[] family = v6 ? ["-inet6"] : [];
        return ("route", ["-n", verb, .. family, "-net", destination.ToString(), "-interface", device]);
    }

    /// <summary>
    /// Parses `netstat -rn`. IPv4 destinations may be abbreviated: "10.8/16" is 10.8.0.0/16, "192.168.1" is
    /// 192.168.1.0/24 (one octet per missing /8), "127" is 127.0.0.0/8; a full address without a prefix is a host.
    /// </summary>
    public static IReadOnlyList<RouteEntry> Parse(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var list = new List<RouteEntry>();
        bool? v6 = null;
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith("Internet6:", StringComparison.Ordinal))
            {
                v6 = true;
                continue;
            }
            if (line.StartsWith("Internet:", StringComparison.Ordinal))
            {
                v6 = false;
                continue;
            }
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (v6 is null || f.Length < 4 || f[0] == "Destination") continue;
            var net = ParseDestination(f[0], v6.Value);
            if (net is null) continue;
            IPAddress? gw = IPAddress.TryParse(StripZone(f[1]), out var g) ? g : null;
            var flags = f[2];
            list.Add(new RouteEntry(net.Value, f[3], gw, flags.Contains('L', StringComparison.Ordinal) && flags.Contains('H', StringComparison.Ordinal) && gw is not null && net.Value.BaseAddress.Equals(gw) ? "local" : null));
        }
        return list;
    }

    internal static IPNetwork? ParseDestination(string text, bool v6)
    {
        if (text == "default") return v6 ? IPNetwork.Parse("::/0") : IPNetwork.Parse("0.0.0.0/0");
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addr = StripZone(slash < 0 ? text : text[..slash]);
        int? prefix = slash < 0 ? null : int.TryParse(text.AsSpan(slash + 1), out var p) ? p : null;
        if (v6)
        {
            if (!IPAddress.TryParse(addr, out var a6)) return null;
            return Network(a6, prefix ?? 128);
        }
        var octets = addr.Split('.');
        if (octets.Length is < 1 or > 4 || octets.Any(o => !byte.TryParse(o, out _))) return null;
        var bytes = new byte[4];
        for (var i = 0; i < octets.Length; i++) bytes[i] = byte.Parse(octets[i], System.Globalization.CultureInfo.InvariantCulture);
        return Network(new IPAddress(bytes), prefix ?? octets.Length * 8);
    }

    private static IPNetwork? Network(IPAddress address, int prefix)
    {
        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefix < 0 || prefix > max) return null;
        // IPNetwork insists on a clean base address; netstat prints hosts within prefixes sometimes.
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }
        return new IPNetwork(new IPAddress(bytes), prefix);
    }

    private static string StripZone(string s)
    {
        var pct = s.IndexOf('%', StringComparison.Ordinal);
        return pct < 0 ? s : s[..pct];
    }
}
