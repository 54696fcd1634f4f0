using System.Net;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>
/// Asks the cluster which address ranges it uses, in the order of how much the answer can be trusted:
/// the Service range from the API server itself (the 422 of a dry-run Service with an out-of-range clusterIP),
/// node podCIDRs where they are set and readable, and otherwise the addresses of non-hostNetwork pods and
/// Services. Read-only: nothing is created (the probe is a dry run).
/// </summary>
public static class ClusterRanges
{
    /// <summary>A clusterIP no sane Service range contains; the API server's refusal names the real range.</summary>
    private const string ProbeClusterIp = "1.1.1.1";

    public static async Task<IReadOnlyList<Cidr>> DiscoverAsync(KubeClient client, string ns, ConnectOptions options,
        IKtOutput output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        var inputs = new CidrInputs
        {
            ServiceRanges = await ServiceRangeAsync(client, ns, output, cancellationToken).ConfigureAwait(false),
            NodePodRanges = await NodePodRangesAsync(client, output, cancellationToken).ConfigureAwait(false),
            ApiServerIps = await ApiServerAddressesAsync(client.Configuration.Server, cancellationToken).ConfigureAwait(false),
            Include = options.IncludeIps.Select(Cidr.Parse).ToList(),
            Exclude = options.ExcludeIps.Select(Cidr.Parse).ToList(),
        };
        if (inputs.ServiceRanges.Count == 0)
            inputs = inputs with { ServiceIps = await ServiceIpsAsync(client, ns, cancellationToken).ConfigureAwait(false) };
        if (inputs.NodePodRanges.Count == 0 && !options.DisablePodIp)
            inputs = inputs with { PodIps = await PodIpsAsync(client, ns, cancellationToken).ConfigureAwait(false) };
        var ranges = ClusterCidrs.Compute(inputs);
        output.Verbose("Cluster ranges: " + (ranges.Count == 0 ? "none found" : string.Join(", ", ranges)));
        return ranges;
    }

    /// <summary>The API server's own addresses (its host name resolved): never routed into the tunnel.</summary>
    public static async Task<IReadOnlyList<IPAddress>> ApiServerAddressesAsync(Uri server, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(server);
        var host = server.IdnHost.Trim('[', ']');
        if (IPAddress.TryParse(host, out var ip)) return [ip];
        try
        {
            return await System.Net.Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        }
        catch (System.Net.Sockets.SocketException)
        {
            return [];
        }
    }

    private static async Task<IReadOnlyList<Cidr>> ServiceRangeAsync(KubeClient client, string ns, IKtOutput output, CancellationToken cancellationToken)
    {
        var probe = new Service
        {
            Metadata = new ObjectMeta { Name = "kt-range-probe-" + KtConventions.RandomLowercase(), Namespace = ns },
            Spec = new ServiceSpec
            {
                ClusterIP = ProbeClusterIp,
                Ports = [new ServicePort { Port = 80 }],
            },
        };
        try
        {
            var created = await client.Services.CreateAsync(probe, ns, dryRun: true, cancellationToken).ConfigureAwait(false);
            // A server that ignores dryRun and accepted 1.1.1.1: remove what it stored, learn nothing.
            if (created.Metadata.Uid is not null && created.Metadata.CreationTimestamp is not null)
                await client.Services.DeleteIfExistsAsync(probe.Metadata.Name!, ns, cancellationToken: cancellationToken).ConfigureAwait(false);
            return [];
        }
        catch (KubeApiException e) when (e.Code == 422)
        {
            var ranges = ClusterCidrs.ParseServiceRangeMessage(e.ServerMessage);
            if (ranges.Count > 0) output.Debug("Service range from the API server: " + string.Join(", ", ranges));
            return ranges;
        }
        catch (KubeApiException e) when (e.Code is 403 or 404)
        {
            output.Debug("Cannot probe the Service range (" + e.Message + "); using Service addresses instead.");
            return [];
        }
    }

    private static async Task<IReadOnlyList<Cidr>> NodePodRangesAsync(KubeClient client, IKtOutput output, CancellationToken cancellationToken)
    {
        try
        {
            var nodes = await client.Nodes.ListAllAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            var list = new List<Cidr>();
            foreach (var node in nodes.Items)
            {
                foreach (var text in (node.Spec?.PodCIDRs ?? []).Append(node.Spec?.PodCIDR))
                {
                    if (Cidr.TryParse(text, out var c)) list.Add(c);
                }
            }
            return list;
        }
        catch (KubeApiException e) when (e.Code == 403)
        {
            output.Debug("Nodes are not readable; pod ranges come from pod addresses.");
            return [];
        }
    }

    private static async Task<IReadOnlyList<IPAddress>> ServiceIpsAsync(KubeClient client, string ns, CancellationToken cancellationToken)
    {
        var services = await ListAnywhereAsync(client.Services, ns, cancellationToken).ConfigureAwait(false);
        return services
            .SelectMany(s => s.Spec?.ClusterIPs is { Count: > 0 } ips ? ips : s.Spec?.ClusterIP is { } one ? [one] : [])
            .Where(ip => ip != "None")
            .Select(ip => IPAddress.TryParse(ip, out var a) ? a : null)
            .OfType<IPAddress>()
            .ToList();
    }

    private static async Task<IReadOnlyList<IPAddress>> PodIpsAsync(KubeClient client, string ns, CancellationToken cancellationToken)
    {
        var pods = await ListAnywhereAsync(client.Pods, ns, cancellationToken).ConfigureAwait(false);
        // hostNetwork pods carry node addresses: routing those would capture the nodes' own network.
        return pods
            .Where(p => p.Spec?.HostNetwork != true)
            .SelectMany(p => p.Status?.PodIPs is { Count: > 0 } ips ? ips.Select(i => i.Ip) : [p.Status?.PodIP])
            .Select(ip => IPAddress.TryParse(ip, out var a) ? a : null)
            .OfType<IPAddress>()
            .ToList();
    }

    /// <summary>All namespaces when allowed, else the connected one (least privilege still works).</summary>
    private static async Task<IReadOnlyList<T>> ListAnywhereAsync<T>(ResourceClient<T> resource, string ns, CancellationToken cancellationToken)
        where T : KubeObject
    {
        try
        {
            return (await resource.ListAllAsync(KubeClient.AllNamespaces, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
        }
        catch (KubeApiException e) when (e.Code == 403)
        {
            return (await resource.ListAllAsync(ns, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
        }
    }
}
