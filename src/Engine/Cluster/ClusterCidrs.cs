using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Cluster;

/// <summary>What the cluster revealed about its address ranges, and what the user asked for.</summary>
public sealed record CidrInputs
{
    /// <summary>The Service range as the API server reports it (from the 422 of an out-of-range clusterIP), if known.</summary>
    public IReadOnlyList<Cidr> ServiceRanges { get; init; } = [];

    /// <summary>ClusterIPs seen on Services, used when the range itself is not known.</summary>
    public IReadOnlyList<IPAddress> ServiceIps { get; init; } = [];

    /// <summary>Nodes' spec.podCIDR(s), where readable.</summary>
    public IReadOnlyList<Cidr> NodePodRanges { get; init; } = [];

    /// <summary>IPs of non-hostNetwork pods, used when node pod ranges are not known.</summary>
    public IReadOnlyList<IPAddress> PodIps { get; init; } = [];

    /// <summary>The API server's addresses: never routed into the tunnel, or the tunnel would carry itself.</summary>
    public IReadOnlyList<IPAddress> ApiServerIps { get; init; } = [];

    public IReadOnlyList<Cidr> Include { get; init; } = [];

    public IReadOnlyList<Cidr> Exclude { get; init; } = [];
}

/// <summary>
/// The ranges Connect routes into the tunnel: real cluster ranges where the cluster reveals them, and
/// otherwise ranges inferred from the addresses in use (a /24 per address, widened to the /16 when several
/// /24s of one /16 are in use). Includes are added; excludes and the API server's addresses are cut out of
/// every range, in every mode.
/// </summary>
public static class ClusterCidrs
{
    public static IReadOnlyList<Cidr> Compute(CidrInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var ranges = new List<Cidr>();
        ranges.AddRange(inputs.ServiceRanges.Count > 0 ? inputs.ServiceRanges : Infer(inputs.ServiceIps));
        ranges.AddRange(inputs.NodePodRanges.Count > 0 ? inputs.NodePodRanges : Infer(inputs.PodIps));
        ranges.AddRange(inputs.Include);

        var holes = inputs.Exclude.Concat(inputs.ApiServerIps.Select(Cidr.Host)).ToList();
        IEnumerable<Cidr> result = Cidr.Aggregate(ranges);
        foreach (var hole in holes)
            result = result.SelectMany(r => r.Subtract(hole)).ToList();
        return Cidr.Aggregate(result);
    }

    private static IEnumerable<Cidr> Infer(IReadOnlyList<IPAddress> addresses)
    {
        var narrow = addresses.Select(a => a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a)
            .Select(a => Cidr.Create(a, a.AddressFamily == AddressFamily.InterNetwork ? 24 : 64))
            .Distinct().ToList();
        foreach (var group in narrow.GroupBy(c => Cidr.Create(c.Address, c.Family == AddressFamily.InterNetwork ? 16 : 48)))
        {
            if (group.Count() > 1) yield return group.Key;
            else foreach (var c in group) yield return c;
        }
    }

    /// <summary>
    /// Reads the Service range out of the API server's answer to a Service with an out-of-range clusterIP:
    /// "... The range of valid IPs is 10.96.0.0/16" (dual-stack clusters list one per family).
    /// </summary>
    public static IReadOnlyList<Cidr> ParseServiceRangeMessage(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        const string marker = "range of valid IPs is";
        var at = message.IndexOf(marker, StringComparison.OrdinalIgnoreCase);
        if (at < 0) return [];
        var list = new List<Cidr>();
        foreach (var token in message[(at + marker.Length)..].Split([' ', ',', ';', '"', '\''], StringSplitOptions.RemoveEmptyEntries))
        {
            if (token.Contains('/', StringComparison.Ordinal) && Cidr.TryParse(token.TrimEnd('.'), out var c)) list.Add(c);
        }
        return list;
    }
}
