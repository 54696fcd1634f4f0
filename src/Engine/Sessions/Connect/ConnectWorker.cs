using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.MacOS;
using KtConnect.Engine.Net.Redirect;
using KtConnect.Engine.Net.Routes;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>
/// Connect: the local machine joins a namespace's network (DESIGN.md §2). Everything that can be refused is
/// checked before anything is changed (namespace, privileges, route conflicts); every change is registered with
/// the session's undo stack right as it is made, so a failure halfway, a stop or process exit leaves the cluster
/// and the machine as they were.
/// </summary>
public sealed class ConnectWorker(KubeClient client, string ns, ConnectOptions options) : ClusterWorker<ConnectOptions>(client, ns, options)
{
    /// <summary>The address the tun device carries; cluster traffic is routed to the device, not to this address.</summary>
    private const string TunAddress = "198.18.0.1/32";


    /// <summary>The tun device's actual name once it exists (on macOS the kernel chooses it).</summary>
    private string? _tunName;

    private protected override async Task RunAsync(SessionContext context, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var journal = _options.JournalOrDefault();
        var sessionId = context.JournalId;

        // Checks that change nothing (the namespace was checked by ClusterWorker).
        if (NeedsPrivileges(_options)) EnsurePrivileges(_options.Mode);
        await LocalRecovery.UndoAsync(journal, output: output, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (_options.Mode != ConnectMode.Socks && _options.DnsMode == DnsMode.Split) CheckDnsBeforeChanges(_options, DnsConfigurator(journal));
        if (_options.Mode == ConnectMode.Redirect)
            MachineClaims.EnsureFree(OperatingSystem.IsMacOS() ? PfRedirect.ClaimKey(PfRedirect.DefaultAnchor) : FirewallRedirect.ClaimKey(FirewallRedirect.DefaultTable));
        IReadOnlyList<Cidr> ranges = [];
        IReadOnlyList<IPAddress> apiServer = await ClusterRanges.ApiServerAddressesAsync(_client.Configuration.Server, cancellationToken).ConfigureAwait(false);
        if (_options.Mode != ConnectMode.Socks && !_options.SkipRoutes)
        {
            ranges = await ClusterRanges.DiscoverAsync(_client, _namespace, _options, output, cancellationToken).ConfigureAwait(false);
            if (ranges.Count == 0)
                throw new KtException("ClusterRangesNotFound", KtErrorCategory.ObjectNotFound,
                    "The cluster revealed no address ranges to route; give them with --includeIps (-IncludeIp).", target: _namespace);
            if (ChecksRouteConflicts(_options))
            {
                var table = await RouteTables.ForCurrentOs().ReadAsync(cancellationToken).ConfigureAwait(false);
                var conflicts = FindRouteConflicts(_options, ranges, table, apiServer);
                if (conflicts.Count > 0) throw new RouteConflictException(conflicts);
            }
        }

        ShadowPodSpec SpecForKey(string key) => _options.ToShadowSpec(KtConventions.ConnectShadowName(), _namespace, KtConventions.Roles.ShadowConnect, key);
        ShadowLink link;
        string podName;
        if (_options.ShareShadow)
        {
            var shared = await SharedShadowSetup.StartAsync(context, _client, _namespace, _options, SpecForKey, cancellationToken).ConfigureAwait(false);
            (link, podName) = (shared.Link, shared.PodName);
        }
        else
        {
            var connection = await ShadowSetup.StartAsync(context, _client, _options, SpecForKey, cancellationToken).ConfigureAwait(false);
            (link, podName) = (connection.Link, connection.PodName);
        }
        output.Verbose($"SSH to {_namespace}/{podName} is up");
        var dialer = new SshFlowDialer(link);

        switch (_options.Mode)
        {
            case ConnectMode.Socks:
                await StartSocksAsync(context, dialer).ConfigureAwait(false);
                break;
            case ConnectMode.Tun when TunDevices.Current is not null:
                await StartTunAsync(context, journal, dialer, ranges, apiServer, sessionId, cancellationToken).ConfigureAwait(false);
                break;
            case ConnectMode.Redirect when OperatingSystem.IsLinux() || OperatingSystem.IsMacOS():
                await StartRedirectAsync(context, journal, dialer, ranges, sessionId, cancellationToken).ConfigureAwait(false);
                break;
            default:
                throw new KtException("ConnectModeNotAvailable", KtErrorCategory.NotImplemented,
                    $"{_options.Mode} mode is not available on this operating system in this build; use --mode socks (-Mode Socks).");
        }

        if (_options.Mode != ConnectMode.Socks && _options.DnsMode == DnsMode.Split)
            await StartDnsAsync(context, journal, link, podName, sessionId, cancellationToken).ConfigureAwait(false);
        // In socks mode too, as ktctl does: a client that resolves names itself (SOCKS5 without remote names) then asks the
        // proxy for a Service's ClusterIP.
        if (_options.DnsMode == DnsMode.Hosts)
            await StartHostsAsync(context, journal, podName, sessionId, cancellationToken).ConfigureAwait(false);
        output.Progress("Connecting", "Connected", 100, completed: true);
    }

    /// <summary>
    /// Tun mode routes the cluster ranges into its device and redirect mode rewrites them in the firewall: either takes
    /// traffic away from a local network, a VPN or an address of this machine that overlaps them, so both check first.
    /// </summary>
    internal static bool ChecksRouteConflicts(ConnectOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Mode is ConnectMode.Tun or ConnectMode.Redirect && !options.SkipRoutes && !options.IgnoreRouteConflicts;
    }

    /// <summary>
    /// The conflicts that refuse the connect (<see cref="RouteConflictException"/>, ErrorId RouteConflict) before anything
    /// is changed; empty when the mode changes no routing or the check is overridden. Redirect mode has no device of its
    /// own, so every overlapping route counts (a tun device of ours is only exempt in tun mode).
    /// </summary>
    internal static IReadOnlyList<RouteConflict> FindRouteConflicts(ConnectOptions options, IReadOnlyList<Cidr> ranges, IReadOnlyList<RouteEntry> table,
        IReadOnlyList<IPAddress> apiServer)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        if (!ChecksRouteConflicts(options)) return [];
        var ourDevice = options.Mode == ConnectMode.Tun ? options.TunName : "";
        return RouteConflicts.Find(ranges.Select(ToNetwork), table, apiServer, ourDevice);
    }

    /// <summary>Socks mode needs no privileges, unless it writes the hosts file (ktctl's --disableTunDevice --dnsMode hosts).</summary>
    internal static bool NeedsPrivileges(ConnectOptions options) => options.Mode != ConnectMode.Socks || options.DnsMode == DnsMode.Hosts;

    /// <summary>Tun and redirect modes change routes, firewall and DNS: refuse early, with the way out, when not elevated.</summary>
    internal static void EnsurePrivileges(ConnectMode mode)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            if (Environment.UserName == "root" || geteuid() == 0) return;
        }
        else if (OperatingSystem.IsWindows())
        {
            using var identity = System.Security.Principal.WindowsIdentity.GetCurrent();
            if (new System.Security.Principal.WindowsPrincipal(identity).IsInRole(System.Security.Principal.WindowsBuiltInRole.Administrator)) return;
        }
        throw new KtException("ConnectNeedsPrivileges", KtErrorCategory.PermissionDenied,
            mode == ConnectMode.Socks
                ? "Socks mode with --dnsMode hosts (-DnsMode Hosts) writes the hosts file and needs root (Administrator on Windows). " +
                  "Run it elevated, or leave the DNS mode out: socks mode alone needs no privileges."
                : $"Connect in {mode.ToString().ToLowerInvariant()} mode changes routes and DNS and needs root (Administrator on Windows). " +
                  "Run it elevated, or use --mode socks (-Mode Socks), which needs no privileges.");
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = false)]
    private static extern uint geteuid();

    private async Task StartSocksAsync(SessionContext context, SshFlowDialer dialer)
    {
        var listen = new IPEndPoint(_options.ProxyAddress, _options.ProxyPort);
        var server = new Socks5Server(dialer, new ProxyOptions { Listen = listen });
        try
        {
            server.Start();
        }
        catch (SocketException e)
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw new KtException("ProxyPortInUse", KtErrorCategory.ResourceBusy,
                $"Cannot listen on {listen}: {e.Message}. Choose another with --proxyPort (-ProxyPort).", e, _options.ProxyPort);
        }
        context.Defer("stop the SOCKS5 proxy", _ => server.DisposeAsync().AsTask());
        context.AddLocalPort($"{server.LocalEndPoint} (SOCKS5, HTTP CONNECT)");
        context.Output.Verbose($"SOCKS5 and HTTP CONNECT proxy on {server.LocalEndPoint}: e.g. curl --socks5-hostname {server.LocalEndPoint} http://<service>");
    }

    private async Task StartTunAsync(SessionContext context, ChangeJournal journal, SshFlowDialer dialer, IReadOnlyList<Cidr> ranges,
        IReadOnlyList<IPAddress> apiServer, string sessionId, CancellationToken cancellationToken)
    {
        var tun = await TunDevices.CreateAsync(_options.TunName, StackOptions.RecommendedMtu, [TunAddress], cancellationToken: cancellationToken)
            .ConfigureAwait(false);
        _tunName = tun.Name;
        context.Defer($"remove tun device {tun.Name}", _ => { tun.Dispose(); return Task.CompletedTask; });
        if (tun.Name != _options.TunName)
            context.Output.Verbose($"The tun device is {tun.Name}, not {_options.TunName}: {(OperatingSystem.IsMacOS() ? "macOS names utun devices itself" : "the system named it")}.");
        var stack = new UserSpaceStack(tun, dialer, new StackOptions { Mtu = StackOptions.RecommendedMtu });
        stack.Start();
        context.Defer("stop the user-space TCP/IP stack", _ => stack.DisposeAsync().AsTask());
        // A device that stops delivering packets (deleted under us, its driver gone) leaves nothing reachable: the session
        // ends Failed and is undone, rather than showing Running. Every undo runs after Stopping is cancelled, so the
        // stack's own disposal is never taken for a loss.
        _ = stack.Completion.ContinueWith(done =>
        {
            if (context.Stopping.IsCancellationRequested) return;
            var cause = done.Exception?.InnerException;
            context.Fail(new KtException("TunDeviceLost", KtErrorCategory.DeviceError,
                $"The tun device {tun.Name} stopped delivering packets{(cause is null ? "" : $" ({cause.Message})")}; cluster addresses are no longer reachable.",
                cause, tun.Name));
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        if (_options.SkipRoutes)
        {
            context.Output.Verbose($"Device {tun.Name} is up without routes (--disableTunRoute): route the cluster's ranges to it yourself.");
            return;
        }
        var routes = await RouteSet.AddAsync(RouteTables.ForCurrentOs(), journal, tun.Name, ranges.Select(ToNetwork), apiServer,
            _options.IgnoreRouteConflicts, sessionId, cancellationToken: cancellationToken).ConfigureAwait(false);
        context.Defer("remove routes", _ => routes.DisposeAsync().AsTask());
        foreach (var r in routes.Routes) context.AddRoute($"{r} dev {tun.Name}");
        context.Output.Verbose($"Device {tun.Name} is up with {routes.Routes.Count} routes");
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    [System.Runtime.Versioning.SupportedOSPlatform("macos")]
    private async Task StartRedirectAsync(SessionContext context, ChangeJournal journal, SshFlowDialer dialer, IReadOnlyList<Cidr> ranges,
        string sessionId, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
        socket.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
        socket.Listen(1024);
        var listener = new TransparentListener(socket, dialer);
        listener.Start();
        context.Defer("stop the transparent listener", _ => listener.DisposeAsync().AsTask());
        var excludes = _options.ExcludeIps.Select(Cidr.Parse).Select(ToNetwork).ToList();
        var rule = new RedirectRule(ranges.Select(ToNetwork).ToList(), excludes, listener.LocalEndPoint.Port);
        if (OperatingSystem.IsMacOS())
        {
            var pf = await PfRedirect.ApplyAsync(rule, journal, sessionId: sessionId, cancellationToken: cancellationToken).ConfigureAwait(false);
            context.Defer($"remove the pf redirect (anchor {PfRedirect.DefaultAnchor})", _ => pf.DisposeAsync().AsTask());
        }
        else
        {
            var backend = ProcessRunner.IsOnPath("nft") ? FirewallBackend.Nftables : FirewallBackend.Iptables;
            var redirect = await FirewallRedirect.ApplyAsync(backend, FirewallRedirect.DefaultTable, rule, journal,
                sessionId: sessionId, cancellationToken: cancellationToken).ConfigureAwait(false);
            context.Defer($"remove the {backend.ToString().ToLowerInvariant()} redirect", _ => redirect.DisposeAsync().AsTask());
        }
        foreach (var r in ranges) context.AddRoute($"{r} redirect :{listener.LocalEndPoint.Port}");
    }

    /// <summary>
    /// The hosts of the namespace's Ingresses (kt-connect's --ingressIp), as they are now. A host that could not go into
    /// resolver configuration safely is left out with a warning.
    /// </summary>
    private async Task<IReadOnlyList<string>> IngressHostsAsync(IKtOutput output, CancellationToken cancellationToken)
    {
        var ingresses = (await _client.Ingresses.ListAllAsync(_namespace, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
        var hosts = new List<string>();
        foreach (var host in ingresses.SelectMany(i => i.Spec?.Rules ?? []).Select(r => r.Host).OfType<string>().Distinct(StringComparer.OrdinalIgnoreCase))
        {
            var name = host.StartsWith("*.", StringComparison.Ordinal) ? host[2..] : host;
            if (ConnectOptions.IsSafeDomain(name)) hosts.Add(host);
            else output.Warning($"Ingress host '{host}' is not a plain domain name; it is not answered.");
        }
        output.Verbose(hosts.Count == 0
            ? $"No Ingress in {_namespace} names a host; --ingressIp answers nothing."
            : $"Ingress hosts answered with {_options.IngressIp}: {string.Join(", ", hosts)}");
        return hosts;
    }

    private async Task<string> PodResolvConfAsync(string podName, CancellationToken cancellationToken) =>
        (await _client.RunAsync(podName, ["cat", "/etc/resolv.conf"], _namespace, KtConventions.ContainerName,
            cancellationToken: cancellationToken).ConfigureAwait(false)).Stdout;

    private async Task StartHostsAsync(SessionContext context, ChangeJournal journal, string podName, string sessionId, CancellationToken cancellationToken)
    {
        // The hosts file needs the cluster domain only, never the cluster's nameserver.
        var domain = _options.ClusterDomain?.TrimEnd('.') ?? ParseClusterDomain(await PodResolvConfAsync(podName, cancellationToken).ConfigureAwait(false));
        var editor = new HostsFileEditor(_options.SystemRoot is null ? DnsSystemPaths.System : new DnsSystemPaths(_options.SystemRoot), journal);
        var hosts = await HostsDns.StartAsync(_client, editor, journal, _namespace, _options.HostsNamespaces, domain, sessionId, context.Output,
            cancellationToken).ConfigureAwait(false);
        context.Defer($"remove the Services from {editor.Path}", _ => hosts.DisposeAsync().AsTask());
        context.Output.Verbose($"Service names of {string.Join(", ", _options.HostsNamespaces.Prepend(_namespace).Distinct())} are in {editor.Path}; the resolver is unchanged.");
    }

    private async Task StartDnsAsync(SessionContext context, ChangeJournal journal, ShadowLink link, string podName, string sessionId,
        CancellationToken cancellationToken)
    {
        var (nameserver, podDomain) = ParsePodResolvConf(await PodResolvConfAsync(podName, cancellationToken).ConfigureAwait(false), _namespace);
        var clusterDomain = _options.ClusterDomain?.TrimEnd('.') ?? podDomain;
        var configurator = DnsConfigurator(journal);
        var dnsOptions = new SplitDnsOptions
        {
            ListenEndPoint = _options.DnsListen,
            ClusterDomain = clusterDomain,
            Namespace = _namespace,
            ExtraClusterZones = _options.IncludeDomains,
            LocalRecords = _options.IngressIp is { } ingressIp
                ? (await IngressHostsAsync(context.Output, cancellationToken).ConfigureAwait(false)).ToDictionary(h => h, _ => ingressIp, StringComparer.OrdinalIgnoreCase)
                : new Dictionary<string, IPAddress>(),
            Upstreams = configurator.OriginalUpstreams(),
            MaxCacheTtl = (uint)(_options.DnsCacheTtl ?? TimeSpan.FromSeconds(60)).TotalSeconds,
        };
        var server = SplitDnsServer.Start(dnsOptions, new SshClusterDnsTransport(link, new IPEndPoint(nameserver, 53)));
        context.Defer("stop the split-DNS server", _ => server.DisposeAsync().AsTask());
        var request = DnsConfigurationRequest.From(dnsOptions, server.EndPoint,
            _options.Mode == ConnectMode.Tun ? _tunName ?? _options.TunName : null, sessionId);
        configurator.CheckPrerequisites(request);
        var applied = await configurator.ApplyAsync(request, cancellationToken).ConfigureAwait(false);
        context.Defer($"restore DNS ({configurator.Name})", ct => configurator.RevertAsync(applied, ct));
        foreach (var suffix in request.RoutedSuffixes) context.AddDnsSuffix(suffix);
        context.Output.Verbose($"Cluster names resolve through {server.EndPoint} ({configurator.Name}); other names as before.");
    }

    private IDnsConfigurator DnsConfigurator(ChangeJournal journal) =>
        DnsConfigurators.ForThisMachine(journal, _options.SystemRoot is null ? null : new DnsSystemPaths(_options.SystemRoot));

    /// <summary>
    /// Split DNS's checks that need nothing from the cluster, before any change: systemd-resolved needs a link to attach
    /// the cluster's names to (the tun device; redirect mode has none), resolv.conf and NRPT need port 53. They run again
    /// with the cluster domain once the shadow pod told it.
    /// </summary>
    internal static void CheckDnsBeforeChanges(ConnectOptions options, IDnsConfigurator configurator)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(configurator);
        configurator.CheckPrerequisites(new DnsConfigurationRequest
        {
            Server = options.DnsListen,
            // The cluster's domain is known only from the shadow pod, unless given.
            RoutedSuffixes = options.ClusterDomain is { } domain ? [domain.TrimEnd('.')] : [],
            LinkName = options.Mode == ConnectMode.Tun ? options.TunName : null,
        });
    }

    /// <summary>The cluster DNS address and cluster domain from the shadow pod's resolv.conf.</summary>
    internal static (IPAddress Nameserver, string ClusterDomain) ParsePodResolvConf(string text, string ns)
    {
        IPAddress? nameserver = null;
        foreach (var fields in ResolvConfLines(text))
        {
            if (fields[0] == "nameserver" && IPAddress.TryParse(fields[1], out var ip))
            {
                nameserver = ip;
                break;
            }
        }
        var domain = ParseClusterDomain(text);
        return nameserver is null
            ? throw new KtException("ClusterDnsNotFound", KtErrorCategory.ObjectNotFound,
                $"The shadow pod's /etc/resolv.conf names no nameserver, so cluster names cannot be resolved. Use --dnsMode none to connect without DNS.", target: ns)
            : (nameserver, domain);
    }

    /// <summary>The cluster domain from a pod's resolv.conf search list ("&lt;ns&gt;.svc.&lt;domain&gt; svc.&lt;domain&gt; &lt;domain&gt;"), else cluster.local.</summary>
    internal static string ParseClusterDomain(string text)
    {
        var domain = "cluster.local";
        foreach (var fields in ResolvConfLines(text))
        {
            if (fields[0] != "search") continue;
            var svc = fields.Skip(1).FirstOrDefault(f => f.StartsWith("svc.", StringComparison.Ordinal));
            if (svc is not null) domain = svc["svc.".Length..].TrimEnd('.');
        }
        return domain;
    }

    private static IEnumerable<string[]> ResolvConfLines(string text) =>
        text.Split('\n').Select(l => l.Trim().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 2);

    private static IPNetwork ToNetwork(Cidr c) => new(c.Address, c.Prefix);
}
