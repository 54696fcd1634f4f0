using KtConnect.Engine.Cluster.Connect;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>`kt connect`: kt-connect's flags (reference/kt-connect.md §1.3) over Connector.</summary>
internal static class ConnectVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags =
    [
        new("mode", null, true, "tun (default, needs root), redirect (Linux nftables/iptables) or socks (no privileges)", "tun"),
        new("dnsMode", null, true, "split (cluster suffixes to the cluster, the rest as before) or none", "split"),
        new("includeIps", null, true, "Extra CIDRs to route, comma separated"),
        new("excludeIps", null, true, "CIDRs or addresses never routed, comma separated"),
        new("disablePodIp", null, false, "Do not sample pod addresses to find the pod ranges"),
        new("proxyPort", null, true, "SOCKS5/HTTP CONNECT port on 127.0.0.1 (socks mode)", "2223"),
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
            "redirect" => ConnectMode.Redirect,
            "socks" => ConnectMode.Socks,
            var m => throw ParsedArgs.Usage($"--mode must be tun, redirect or socks, not '{m}'"),
        };
        var dns = a.Get("dnsMode", "split") switch
        {
            "split" or "localDNS" => DnsMode.Split,
            "none" => DnsMode.None,
            var d => throw ParsedArgs.Usage($"--dnsMode must be split or none, not '{d}'"),
        };
        foreach (var cidr in a.List("includeIps").Concat(a.List("excludeIps")))
            KtConnect.Engine.Cluster.Cidr.Parse(cidr);
        return GlobalOptions.Apply(a, new ConnectOptions()) with
        {
            Mode = mode,
            DnsMode = dns,
            IncludeIps = a.List("includeIps"),
            ExcludeIps = a.List("excludeIps"),
            DisablePodIp = a.Flag("disablePodIp"),
            ProxyPort = a.Int("proxyPort", 2223),
            IgnoreRouteConflicts = a.Flag("ignoreRouteConflicts"),
            ShareShadow = a.Flag("shareShadow"),
        };
    }
}
