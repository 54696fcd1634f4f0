using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>How the local machine reaches cluster addresses.</summary>
public enum ConnectMode
{
    /// <summary>A tun device and the user-space TCP/IP stack; routes for the cluster ranges. Needs privileges.</summary>
    Tun,

    /// <summary>Kernel redirect (nftables/iptables) of the cluster ranges to a transparent listener. Linux, needs privileges.</summary>
    Redirect,

    /// <summary>SOCKS5 and HTTP CONNECT on 127.0.0.1 only; no routes, no resolver change, no privileges (unless hosts DNS).</summary>
    Socks,
}

/// <summary>How cluster names are made to resolve locally.</summary>
public enum DnsMode
{
    /// <summary>Split DNS: the cluster's suffixes go to the cluster, everything else to the original resolvers.</summary>
    Split,

    /// <summary>No resolver change.</summary>
    None,

    /// <summary>The Services' names written to the hosts file (kt-connect's <c>hosts</c> mode); the resolver is left alone.</summary>
    Hosts,
}

/// <summary>Everything `kt connect` and Connect-KtCluster can ask for (kt-connect's flags where they exist).</summary>
public sealed partial record ConnectOptions : ShadowOptions
{
    public ConnectMode Mode { get; init; } = ConnectMode.Tun;

    public DnsMode DnsMode { get; init; } = DnsMode.Split;

    /// <summary>Extra ranges to route (CIDRs).</summary>
    public IReadOnlyList<string> IncludeIps { get; init; } = [];

    /// <summary>Ranges or addresses never routed (tun and redirect modes).</summary>
    public IReadOnlyList<string> ExcludeIps { get; init; } = [];

    /// <summary>Do not sample pod addresses when the cluster does not reveal its pod ranges.</summary>
    public bool DisablePodIp { get; init; }

    /// <summary>Route even when a cluster range overlaps a local network (for people who know better).</summary>
    public bool IgnoreRouteConflicts { get; init; }

    /// <summary>SOCKS5 port (socks mode); 0 picks a free one.</summary>
    public int ProxyPort { get; init; } = 2223;

    /// <summary>Where the SOCKS5 proxy listens (kt-connect's --proxyAddr): a loopback address, never a network one.</summary>
    public System.Net.IPAddress ProxyAddress { get; init; } = System.Net.IPAddress.Loopback;

    /// <summary>Tun mode without routes (kt-connect's --disableTunRoute): the device and DNS only, routes are the user's.</summary>
    public bool SkipRoutes { get; init; }

    /// <summary>The cluster domain; null takes it from the shadow pod's resolv.conf (kt-connect's --clusterDomain).</summary>
    public string? ClusterDomain { get; init; }

    /// <summary>More domain suffixes the cluster's DNS answers (kt-connect's --includeDomains), e.g. a stub domain of CoreDNS.</summary>
    public IReadOnlyList<string> IncludeDomains { get; init; } = [];

    /// <summary>
    /// kt-connect's --ingressIp: the hosts of the namespace's Ingresses (networking.k8s.io/v1, as they are at connect)
    /// resolve to this address, typically the ingress controller's. Split DNS only.
    /// </summary>
    public System.Net.IPAddress? IngressIp { get; init; }

    /// <summary>With <see cref="DnsMode.Hosts"/>: namespaces whose Services are written too, besides the connected one.</summary>
    public IReadOnlyList<string> HostsNamespaces { get; init; } = [];

    /// <summary>The longest a DNS answer is cached locally (kt-connect's --dnsCacheTtl; 60 s when null); zero caches nothing.</summary>
    public TimeSpan? DnsCacheTtl { get; init; }

    /// <summary>
    /// Name of the tun device: kt0 on Linux, the Wintun adapter's name on Windows (KtConnect). macOS names utun devices
    /// itself: "utunN" asks for unit N, "utun" (the default) takes the next free one.
    /// </summary>
    public string TunName { get; init; } = OperatingSystem.IsLinux() ? "kt0" : OperatingSystem.IsWindows() ? "KtConnect" : "utun";

    /// <summary>
    /// Where the split-DNS server listens; resolv.conf and NRPT need port 53. macOS gives its loopback only 127.0.0.1
    /// (another 127.x address cannot be bound without an alias), and its /etc/resolver files can name a port: there the
    /// server takes a free port on 127.0.0.1.
    /// </summary>
    public System.Net.IPEndPoint DnsListen { get; init; } = OperatingSystem.IsMacOS()
        ? new(System.Net.IPAddress.Loopback, 0)
        : new(System.Net.IPAddress.Parse("127.0.0.153"), 53);

    /// <summary>
    /// kt-connect's --shareShadow: join (or create) the ref-counted shadow <c>kt-connect-shadow-daemon</c>, logging in with
    /// the RSA key kept in its ConfigMap, so several users (ktctl too) share one pod.
    /// </summary>
    public bool ShareShadow { get; init; }

    /// <summary>Root under which resolver files live (tests give a temporary root).</summary>
    public string? SystemRoot { get; init; }

    [System.Text.RegularExpressions.GeneratedRegex(@"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")]
    private static partial System.Text.RegularExpressions.Regex DomainPattern();

    /// <summary>
    /// A name that may go into resolver files, routing domains and NRPT rules: letters, digits, '-' and '_' labels only
    /// (names read from the cluster, such as Ingress hosts, are checked with it too).
    /// </summary>
    public static bool IsSafeDomain(string domain) => domain.Length <= 253 && DomainPattern().IsMatch(domain);

    public override string? ModeName => Mode.ToString().ToLowerInvariant();

    /// <summary>Checks what can be checked without the cluster or the machine; throws InvalidConnectOption.</summary>
    protected override void ValidateKind()
    {
        static KtException Invalid(string message, object? target) => new("InvalidConnectOption", KtErrorCategory.InvalidArgument, message, target: target);
        if (!System.Net.IPAddress.IsLoopback(ProxyAddress))
            throw Invalid($"The SOCKS5 proxy listens on a loopback address only (it lets whoever reaches it into the cluster), not {ProxyAddress}.", ProxyAddress);
        if (ProxyPort is < 0 or > 65535) throw Invalid($"The proxy port must be 0-65535, not {ProxyPort}.", ProxyPort);
        if (SkipRoutes && Mode != ConnectMode.Tun) throw Invalid("Connecting without routes applies to tun mode only.", Mode);
        if (HostsNamespaces.Count > 0 && DnsMode != DnsMode.Hosts) throw Invalid("Extra namespaces for the hosts file go with the hosts DNS mode.", DnsMode);
        foreach (var ns in HostsNamespaces)
        {
            if (!KtConventions.IsDnsLabel(ns)) throw Invalid($"'{ns}' is not a namespace name.", ns);
        }
        if (IngressIp is not null && DnsMode != DnsMode.Split) throw Invalid("Ingress hosts are answered by the split DNS: --ingressIp goes with --dnsMode split.", DnsMode);
        if (IngressIp is not null && Mode == ConnectMode.Socks) throw Invalid("Socks mode resolves names in the cluster: --ingressIp needs tun or redirect mode.", Mode);
        var splitDns = DnsMode == DnsMode.Split && Mode != ConnectMode.Socks;
        if (!splitDns && (IncludeDomains.Count > 0 || DnsCacheTtl is not null))
            throw Invalid("More domains and the DNS cache's TTL are for the split DNS (tun or redirect mode, --dnsMode split).", DnsMode);
        if (SkipRoutes && (IncludeIps.Count > 0 || ExcludeIps.Count > 0 || IgnoreRouteConflicts))
            throw Invalid("Without routes there is nothing for --includeIps, --excludeIps or --ignoreRouteConflicts to change.", SkipRoutes);
        if (Mode == ConnectMode.Socks && (IncludeIps.Count > 0 || ExcludeIps.Count > 0 || IgnoreRouteConflicts || DisablePodIp))
            throw Invalid("Socks mode routes nothing (the proxy dials any address through the cluster): --includeIps, --excludeIps, " +
                "--ignoreRouteConflicts and --disablePodIp are for tun and redirect modes.", Mode);
        if (DnsCacheTtl < TimeSpan.Zero) throw Invalid($"The DNS cache TTL cannot be negative ({DnsCacheTtl.Value.TotalSeconds} s).", DnsCacheTtl);
        foreach (var cidr in IncludeIps.Concat(ExcludeIps)) Cidr.Parse(cidr);
        foreach (var domain in IncludeDomains.Append(ClusterDomain ?? "cluster.local"))
        {
            if (!IsSafeDomain(domain)) throw Invalid($"'{domain}' is not a domain name.", domain);
        }
    }
}
