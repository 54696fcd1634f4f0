using KtConnect.Engine.Sessions.Connect;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>`kt connect`: kt-connect's flags (reference/kt-connect.md §1.3) over Connector.</summary>
internal static class ConnectVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags =
    [
        new("mode", null, true, "tun (default, needs root; ktctl's tun2socks), redirect (nftables/iptables or pf; ktctl's sshuttle) or socks (no privileges, unless --dnsMode hosts)", "tun"),
        new("dnsMode", null, true, "split (cluster suffixes to the cluster, the rest as before), hosts[:ns1,ns2] (Service names in the hosts file) or none", "split"),
        new("includeIps", null, true, "Extra CIDRs to route, comma separated"),
        new("excludeIps", null, true, "CIDRs or addresses never routed, comma separated"),
        new("disablePodIp", null, false, "Do not sample pod addresses to find the pod ranges"),
        new("proxyPort", null, true, "SOCKS5/HTTP CONNECT port (socks mode)", "2223"),
        new("proxyAddr", null, true, "SOCKS5/HTTP CONNECT address (socks mode), a loopback address", "127.0.0.1"),
        new("disableTunDevice", null, false, "No tun device: the same as --mode socks"),
        new("disableTunRoute", null, false, "Tun mode without routes: the device and DNS only"),
        new("clusterDomain", null, true, "The cluster domain (default: what the shadow pod's resolv.conf says)"),
        new("includeDomains", null, true, "More domain suffixes for the cluster's DNS to answer, comma separated"),
        new("dnsCacheTtl", null, true, "Longest time in seconds a DNS answer is cached locally; 0 caches nothing", "60"),
        new("ingressIp", null, true, "Answer the hosts of the namespace's Ingresses with this address (split DNS)"),
        new("skipCleanup", null, false, "Do not undo, at start, what a crashed kt left in the namespace"),
        new("ignoreRouteConflicts", null, false, "Route even when a cluster range overlaps a local network"),
        new("shareShadow", null, false, "Share the ref-counted shadow pod kt-connect-shadow-daemon with other users (ktctl too)"),
    ];

    internal static readonly Verb Verb = new("connect", "Make the cluster's Services, pods and DNS names reachable from this machine", Flags, RunAsync);

    private static Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        ConnectOptions options;
        try
        {
            options = Parse(a);
        }
        catch (KtConnect.Engine.KtException e)
        {
            stderr.WriteLine($"kt: {e.Message} ({e.ErrorId})");
            return Task.FromResult(2);
        }
        return Foreground.RunAsync((output, ct) => Connector.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct),
            stdout, stderr, a.Flag("debug"));
    }

    internal static ConnectOptions Parse(ParsedArgs a)
    {
        if (a.Positional.Count > 0) throw ParsedArgs.Usage($"connect takes no arguments, not '{a.Positional[0]}'");
        var mode = a.Get("mode", "tun") switch
        {
            "tun" or "tun2socks" => ConnectMode.Tun,
            "redirect" or "sshuttle" => ConnectMode.Redirect,
            "socks" => ConnectMode.Socks,
            var m => throw ParsedArgs.Usage($"--mode must be tun, redirect or socks, not '{m}'"),
        };
        if (a.Flag("disableTunDevice"))
        {
            // ktctl's way to ask for a SOCKS proxy without a tun device.
            if (mode != ConnectMode.Tun) throw ParsedArgs.Usage($"--disableTunDevice goes with tun mode, not --mode {a.Get("mode")}");
            mode = ConnectMode.Socks;
        }
        if (a.Has("proxyAddr") && mode != ConnectMode.Socks) throw ParsedArgs.Usage("--proxyAddr goes with --mode socks (or --disableTunDevice)");
        if (a.Flag("disableTunRoute") && mode != ConnectMode.Tun) throw ParsedArgs.Usage("--disableTunRoute goes with tun mode");
        var proxyAddress = a.Get("proxyAddr", "127.0.0.1") switch
        {
            "localhost" => System.Net.IPAddress.Loopback,
            var text => System.Net.IPAddress.TryParse(text, out var ip) ? ip : throw ParsedArgs.Usage($"--proxyAddr must be an IP address, not '{text}'"),
        };
        var dnsText = a.Get("dnsMode", "split");
        var (dnsName, hostsNamespaces) = dnsText.IndexOf(':', StringComparison.Ordinal) is var colon and >= 0
            ? (dnsText[..colon], dnsText[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            : (dnsText, []);
        var dns = dnsName switch
        {
            "split" or "localDNS" when hostsNamespaces.Length == 0 => DnsMode.Split,
            "none" when hostsNamespaces.Length == 0 => DnsMode.None,
            "hosts" => DnsMode.Hosts,
            _ => throw ParsedArgs.Usage($"--dnsMode must be split, hosts, hosts:<ns1>,<ns2> or none, not '{dnsText}'"),
        };
        var options = GlobalOptions.Apply(a, new ConnectOptions()) with
        {
            Mode = mode,
            DnsMode = dns,
            IncludeIps = a.List("includeIps"),
            ExcludeIps = a.List("excludeIps"),
            DisablePodIp = a.Flag("disablePodIp"),
            ProxyPort = a.Int("proxyPort", 2223),
            IgnoreRouteConflicts = a.Flag("ignoreRouteConflicts"),
            ShareShadow = a.Flag("shareShadow"),
            ProxyAddress = proxyAddress,
            SkipRoutes = a.Flag("disableTunRoute"),
            ClusterDomain = a.Get("clusterDomain"),
            IncludeDomains = a.List("includeDomains"),
            HostsNamespaces = hostsNamespaces,
            DnsCacheTtl = a.Has("dnsCacheTtl") ? TimeSpan.FromSeconds(a.Int("dnsCacheTtl", 60)) : null,
            SkipCleanup = a.Flag("skipCleanup"),
            IngressIp = a.Get("ingressIp") is { } ingress
                ? System.Net.IPAddress.TryParse(ingress, out var ingressIp) ? ingressIp : throw ParsedArgs.Usage($"--ingressIp must be an IP address, not '{ingress}'")
                : null,
        };
        options.Validate();
        return options;
    }
}
