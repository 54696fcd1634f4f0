using System.Net;

namespace KtConnect.Engine.Dns;

/// <summary>What the split-DNS server needs: where to listen, which names belong to the cluster, where the rest go.</summary>
public sealed record SplitDnsOptions
{
    /// <summary>Loopback address and port to listen on (UDP and TCP); port 0 picks a free one.</summary>
    public IPEndPoint ListenEndPoint { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>The cluster domain (<c>cluster.local</c> unless the cluster says otherwise).</summary>
    public string ClusterDomain { get; init; } = "cluster.local";

    /// <summary>The connected namespace: its short names and <c>&lt;svc&gt;.&lt;ns&gt;</c> go to the cluster.</summary>
    public required string Namespace { get; init; }

    /// <summary>Other namespaces whose <c>&lt;svc&gt;.&lt;ns&gt;</c> names go to the cluster too.</summary>
    public IReadOnlyList<string> OtherNamespaces { get; init; } = [];

    /// <summary>Extra zones answered by the cluster (for example the reverse zone of the service range).</summary>
    public IReadOnlyList<string> ExtraClusterZones { get; init; } = [];

    /// <summary>
    /// Names answered here with a fixed address, never asked of anyone (kt-connect's --ingressIp for the namespace's
    /// ingress hosts). A key <c>*.example.com</c> answers every name below <c>example.com</c>.
    /// </summary>
    public IReadOnlyDictionary<string, IPAddress> LocalRecords { get; init; } = new Dictionary<string, IPAddress>();

    /// <summary>The machine's original resolvers, in order.</summary>
    public IReadOnlyList<IPEndPoint> Upstreams { get; init; } = [];

    /// <summary>Send single-label names to the cluster first (through the namespace's search list).</summary>
    public bool ResolveShortNames { get; init; } = true;

    public TimeSpan ClusterTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Streams to the cluster resolver used side by side (each an SSH channel in the product).</summary>
    public int ClusterStreams { get; init; } = 2;

    public TimeSpan UpstreamAttemptTimeout { get; init; } = TimeSpan.FromSeconds(1.5);

    public TimeSpan UpstreamTimeout { get; init; } = TimeSpan.FromSeconds(3);

    public int CacheCapacity { get; init; } = 10_000;

    public uint MaxCacheTtl { get; init; } = 3600;

    /// <summary>Queries a TCP connection may have in flight at once.</summary>
    public int MaxTcpPipeline { get; init; } = 32;

    /// <summary>The suffixes an OS resolver should route to this server (routing domains, NRPT namespaces, /etc/resolver files).</summary>
    public IReadOnlyList<string> RoutedSuffixes()
    {
        var list = new List<string> { ClusterDomain.TrimEnd('.'), "svc", Namespace };
        list.AddRange(OtherNamespaces);
        list.AddRange(ExtraClusterZones.Select(z => z.TrimEnd('.')));
        list.AddRange(LocalRecords.Keys.Select(k => (k.StartsWith("*.", StringComparison.Ordinal) ? k[2..] : k).TrimEnd('.')));
        return list.Distinct(StringComparer.OrdinalIgnoreCase).ToList();
    }

    /// <summary>The namespace's search list, as a pod in it sees it.</summary>
    public IReadOnlyList<string> SearchList()
    {
        var cd = ClusterDomain.TrimEnd('.');
        return [$"{Namespace}.svc.{cd}", $"svc.{cd}", cd];
    }
}
