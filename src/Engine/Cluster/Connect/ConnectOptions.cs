namespace KtConnect.Engine.Cluster.Connect;

/// <summary>How the local machine reaches cluster addresses.</summary>
public enum ConnectMode
{
    /// <summary>A tun device and the user-space TCP/IP stack; routes for the cluster ranges. Needs privileges.</summary>
    Tun,

    /// <summary>Kernel redirect (nftables/iptables) of the cluster ranges to a transparent listener. Linux, needs privileges.</summary>
    Redirect,

    /// <summary>SOCKS5 and HTTP CONNECT on 127.0.0.1 only; no privileges, no routes, no DNS change.</summary>
    Socks,
}

/// <summary>How cluster names are made to resolve locally.</summary>
public enum DnsMode
{
    /// <summary>Split DNS: the cluster's suffixes go to the cluster, everything else to the original resolvers.</summary>
    Split,

    /// <summary>No resolver change.</summary>
    None,
}

/// <summary>Everything `kt connect` and Connect-KtCluster can ask for (kt-connect's flags where they exist).</summary>
public sealed record ConnectOptions : ShadowOptions
{
    public ConnectMode Mode { get; init; } = ConnectMode.Tun;

    public DnsMode DnsMode { get; init; } = DnsMode.Split;

    /// <summary>Extra ranges to route (CIDRs).</summary>
    public IReadOnlyList<string> IncludeIps { get; init; } = [];

    /// <summary>Ranges or addresses never routed, in every mode.</summary>
    public IReadOnlyList<string> ExcludeIps { get; init; } = [];

    /// <summary>Do not sample pod addresses when the cluster does not reveal its pod ranges.</summary>
    public bool DisablePodIp { get; init; }

    /// <summary>Route even when a cluster range overlaps a local network (for people who know better).</summary>
    public bool IgnoreRouteConflicts { get; init; }

    /// <summary>SOCKS5 port on 127.0.0.1 (socks mode); 0 picks a free one.</summary>
    public int ProxyPort { get; init; } = 2223;

    /// <summary>
    /// Name of the tun device: kt0 on Linux, the Wintun adapter's name on Windows (KtConnect). macOS names utun devices
    /// itself: "utunN" asks for unit N, "utun" (the default) takes the next free one.
    /// </summary>
    public string TunName { get; init; } = OperatingSystem.IsLinux() ? "kt0" : OperatingSystem.IsWindows() ? "KtConnect" : "utun";

    /// <summary>Where the split-DNS server listens; resolv.conf and NRPT need port 53.</summary>
    public System.Net.IPEndPoint DnsListen { get; init; } = new(System.Net.IPAddress.Parse("127.0.0.153"), 53);

    /// <summary>
    /// kt-connect's --shareShadow: join (or create) the ref-counted shadow <c>kt-connect-shadow-daemon</c>, logging in with
    /// the RSA key kept in its ConfigMap, so several users (ktctl too) share one pod.
    /// </summary>
    public bool ShareShadow { get; init; }

    /// <summary>Root under which resolver files live (tests give a temporary root).</summary>
    public string? SystemRoot { get; init; }
}
