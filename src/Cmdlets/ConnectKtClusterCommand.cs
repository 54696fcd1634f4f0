using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Connect;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>How the machine reaches cluster addresses (mirrors the engine's ConnectMode).</summary>
public enum KtConnectMode
{
    Tun,
    Redirect,
    Socks,
}

/// <summary>How cluster names resolve (mirrors the engine's DnsMode).</summary>
public enum KtDnsMode
{
    Split,
    None,
    Hosts,
}

/// <summary>Makes a namespace's Services, pods and cluster DNS names reachable from this machine.</summary>
[Cmdlet(VerbsCommunications.Connect, "KtCluster", SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class ConnectKtClusterCommand : KtClusterCmdlet
{
    [Parameter]
    public KtConnectMode Mode { get; set; } = KtConnectMode.Tun;

    [Parameter]
    public KtDnsMode DnsMode { get; set; } = KtDnsMode.Split;

    [Parameter]
    [ValidateNotNull]
    public string[] IncludeIp { get; set; } = [];

    [Parameter]
    [ValidateNotNull]
    public string[] ExcludeIp { get; set; } = [];

    [Parameter]
    [ValidateRange(0, 65535)]
    public int ProxyPort { get; set; } = 2223;

    [Parameter]
    public SwitchParameter DisablePodIp { get; set; }

    [Parameter]
    public SwitchParameter NoRoute { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ClusterDomain { get; set; }

    [Parameter]
    [ValidateNotNull]
    public string[] IncludeDomain { get; set; } = [];

    [Parameter]
    [ValidateNotNull]
    public string[] HostsNamespace { get; set; } = [];

    [Parameter]
    public System.Net.IPAddress? IngressIp { get; set; }

    [Parameter]
    public System.Net.IPAddress? ProxyAddress { get; set; }

    [Parameter]
    [ValidateRange(0, 86400)]
    public int? DnsCacheTtl { get; set; }

    [Parameter]
    public SwitchParameter SkipCleanup { get; set; }

    [Parameter]
    public SwitchParameter IgnoreRouteConflict { get; set; }

    [Parameter]
    public SwitchParameter ShadowDeployment { get; set; }

    [Parameter]
    public SwitchParameter ShareShadow { get; set; }

    /// <summary>ktctl's --podQuota (checked, as kt checks it, before any change: PodQuotaInvalid).</summary>
    [Parameter]
    public string? PodQuota { get; set; }

    protected override void EndProcessing()
    {
        ConnectOptions options;
        try
        {
            options = ((ConnectOptions)CommonOptions(new ConnectOptions())) with
            {
                Mode = Enum.Parse<ConnectMode>(Mode.ToString()),
                DnsMode = Enum.Parse<KtConnect.Engine.Sessions.Connect.DnsMode>(DnsMode.ToString()),
                IncludeIps = IncludeIp,
                ExcludeIps = ExcludeIp,
                ProxyPort = ProxyPort,
                DisablePodIp = DisablePodIp,
                IgnoreRouteConflicts = IgnoreRouteConflict,
                UseShadowDeployment = ShadowDeployment,
                ShareShadow = ShareShadow,
                PodQuota = PodQuota,
                SkipRoutes = NoRoute,
                ClusterDomain = ClusterDomain,
                IncludeDomains = IncludeDomain,
                HostsNamespaces = HostsNamespace,
                IngressIp = IngressIp,
                ProxyAddress = ProxyAddress ?? System.Net.IPAddress.Loopback,
                DnsCacheTtl = DnsCacheTtl is { } ttl ? TimeSpan.FromSeconds(ttl) : null,
                SkipCleanup = SkipCleanup,
            };
            options.Validate();
        }
        catch (KtException e)
        {
            ThrowKtError(e);
            return;
        }

        var target = $"namespace '{Namespace ?? "(context default)"}'" + (Context is null ? "" : $" in context '{Context}'");
        if (!ShouldProcess(target, $"Connect in {Mode} mode ({(ShareShadow ? "join or create the shared shadow pod" : "create a shadow pod")}{(Mode != KtConnectMode.Socks ? ", routes and DNS" : DnsMode == KtDnsMode.Hosts ? ", the hosts file" : "")})"))
            return;
        StartSession((output, ct) => Connector.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct), null);
        base.EndProcessing();
    }
}
