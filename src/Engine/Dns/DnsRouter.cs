using System.Net;

namespace KtConnect.Engine.Dns;

/// <summary>Where a question goes.</summary>
internal enum DnsRoute
{
    /// <summary>Everything that is not the cluster's: the original resolvers, unchanged.</summary>
    Upstream,

    /// <summary>A name inside the cluster's zones: the cluster answers, authoritatively for us.</summary>
    Cluster,

    /// <summary>A short or namespace-relative name: try the cluster's expansions, fall back to upstream when none exists.</summary>
    ClusterThenUpstream,
}

/// <summary>
/// Decides, from the question name alone, whether the cluster or the original resolvers answer it
/// (split DNS, never "cluster first for every name"):
/// <list type="bullet">
/// <item><c>*.cluster.local</c> and extra cluster zones → the cluster, as asked;</item>
/// <item><c>x.svc</c> → <c>x.svc.cluster.local</c>; <c>x.&lt;ns&gt;</c> → <c>x.&lt;ns&gt;.svc.cluster.local</c>;</item>
/// <item>single labels → the namespace's search list, in order;</item>
/// <item>anything else → upstream.</item>
/// </list>
/// Expanded names fall back to upstream when the cluster does not know them, so <c>printer</c> on the LAN and the
/// real <c>.dev</c> TLD keep working.
/// </summary>
internal sealed class DnsRouter
{
    private readonly DnsName[] _zones;
    private readonly DnsName _clusterDomain;
    private readonly DnsName _svcClusterDomain;
    private readonly DnsName _svc;
    private readonly DnsName[] _namespaces;
    private readonly DnsName[] _shortSearch;
    private readonly bool _shortNames;
    private readonly (DnsName Name, bool Below, IPAddress Address)[] _local;

    public DnsRouter(SplitDnsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _clusterDomain = DnsName.Parse(options.ClusterDomain);
        _svcClusterDomain = DnsName.Parse("svc").Append(_clusterDomain);
        _svc = DnsName.Parse("svc");
        _zones = [_clusterDomain, .. options.ExtraClusterZones.Select(DnsName.Parse)];
        _namespaces = [DnsName.Parse(options.Namespace), .. options.OtherNamespaces.Select(DnsName.Parse)];
        _shortSearch = options.SearchList().Select(DnsName.Parse).ToArray();
        _shortNames = options.ResolveShortNames;
        _local = options.LocalRecords
            .Select(r => r.Key.StartsWith("*.", StringComparison.Ordinal) ? (DnsName.Parse(r.Key[2..]), true, r.Value) : (DnsName.Parse(r.Key), false, r.Value))
            .ToArray();
    }

    public bool HasLocalRecords => _local.Length > 0;

    /// <summary>The fixed address of <paramref name="name"/> (<see cref="SplitDnsOptions.LocalRecords"/>); exact names win over wildcards.</summary>
    public bool TryLocal(DnsName name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IPAddress? address)
    {
        address = null;
        foreach (var (n, below, a) in _local)
        {
            if (!below && name == n)
            {
                address = a;
                return true;
            }
            if (below && address is null && name != n && name.IsSubdomainOf(n)) address = a;
        }
        return address is not null;
    }

    public DnsRoute Classify(DnsName name, List<DnsName> candidates)
    {
        candidates.Clear();
        foreach (var z in _zones)
        {
            if (name.IsSubdomainOf(z))
            {
                candidates.Add(name);
                return DnsRoute.Cluster;
            }
        }
        var labels = name.LabelCount;
        if (labels == 0) return DnsRoute.Upstream;
        if (labels == 1)
        {
            if (!_shortNames) return DnsRoute.Upstream;
            foreach (var s in _shortSearch) candidates.Add(name.Append(s));
            return DnsRoute.ClusterThenUpstream;
        }
        if (name.IsSubdomainOf(_svc))
        {
            candidates.Add(name.Append(_clusterDomain));
            return DnsRoute.ClusterThenUpstream;
        }
        foreach (var ns in _namespaces)
        {
            if (name.IsSubdomainOf(ns))
            {
                candidates.Add(name.Append(_svcClusterDomain));
                return DnsRoute.ClusterThenUpstream;
            }
        }
        return DnsRoute.Upstream;
    }

    /// <summary>Cheap pre-check on the raw question name: false means upstream for sure, without allocating.</summary>
    public bool MightBeCluster(ReadOnlySpan<byte> nameWire)
    {
        if (nameWire.Length <= 1) return false;
        if (_shortNames && nameWire[0] + 2 == nameWire.Length) return true;
        foreach (var z in _zones) if (DnsNameCodec.EndsWith(nameWire, z.Wire)) return true;
        if (DnsNameCodec.EndsWith(nameWire, _svc.Wire)) return true;
        foreach (var ns in _namespaces) if (DnsNameCodec.EndsWith(nameWire, ns.Wire)) return true;
        return false;
    }
}
