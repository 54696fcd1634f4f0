using System.Net;
using System.Text;

namespace KtConnect.Engine.Dns;

/// <summary>The parts of a resolv.conf that matter here (resolv.conf(5)).</summary>
public sealed record ResolvConf(IReadOnlyList<IPAddress> Nameservers, IReadOnlyList<string> Search, IReadOnlyList<string> OtherLines)
{
    public static ResolvConf Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ns = new List<IPAddress>();
        List<string>? search = null;
        string? domain = null;
        var other = new List<string>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var t = line.Trim();
            if (t.Length == 0 || t[0] is '#' or ';') continue;
            var parts = t.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            switch (parts[0])
            {
                case "nameserver" when parts.Length > 1:
                    // A scoped IPv6 address (fe80::1%eth0) parses with its scope.
                    if (IPAddress.TryParse(parts[1], out var ip)) ns.Add(ip);
                    break;
                case "search":
                    search = parts.Skip(1).ToList(); // the last search/domain line wins (resolv.conf(5))
                    domain = null;
                    break;
                case "domain" when parts.Length > 1:
                    domain = parts[1];
                    search = null;
                    break;
                default:
                    other.Add(line);
                    break;
            }
        }
        return new ResolvConf(ns, search ?? (domain is null ? [] : [domain]), other);
    }

    /// <summary>The nameservers as endpoints (resolv.conf has no ports: always 53).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints() => Nameservers.Select(a => new IPEndPoint(a, 53)).ToList();

    public string Render(string header, string newLine)
    {
        var sb = new StringBuilder();
        sb.Append(header).Append(newLine);
        foreach (var n in Nameservers) sb.Append("nameserver ").Append(n).Append(newLine);
        if (Search.Count > 0) sb.Append("search ").Append(string.Join(' ', Search)).Append(newLine);
        foreach (var o in OtherLines) sb.Append(o).Append(newLine);
        return sb.ToString();
    }
}
