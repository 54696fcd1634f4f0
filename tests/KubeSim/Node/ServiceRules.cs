using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// Renders Services as one nftables script for the node namespace: table <c>ip ktsim_svc</c> is deleted
/// and rebuilt in the same transaction (`nft -f` applies a file atomically), so readers never see a half
/// programmed set. Each ClusterIP port DNATs to its ready endpoints, chosen by <c>numgen random mod N</c>;
/// a port without endpoints rejects (TCP reset), as kube-proxy does; a pod that reaches a Service that
/// lands on itself is SNATed to the gateway so the reply comes back through the node (hairpin).
/// </summary>
public static partial class ServiceRules
{
    public const string TableName = "ktsim_svc";

    public static string Render(IEnumerable<ServiceLite> services, string gatewayIp, string? excludedClusterIp)
    {
        var b = new StringBuilder();
        b.Append("add table ip ").Append(TableName).Append('\n');
        b.Append("delete table ip ").Append(TableName).Append('\n');
        b.Append("table ip ").Append(TableName).Append(" {\n");
        b.Append("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n");
        var endpoints = new SortedSet<uint>();
        foreach (var svc in services.OrderBy(s => s.Namespace, StringComparer.Ordinal).ThenBy(s => s.Name, StringComparer.Ordinal))
        {
            Validate(svc);
            if (svc.Headless || string.IsNullOrEmpty(svc.ClusterIp) || svc.ClusterIp == "None" || svc.ClusterIp == excludedClusterIp) continue;
            var eps = svc.Endpoints.Select(Ipv4Cidr.ParseAddress).Distinct().Order().ToArray();
            foreach (var e in eps) endpoints.Add(e);
            b.Append("    # ").Append(svc.Namespace).Append('/').Append(svc.Name).Append('\n');
            foreach (var port in svc.Ports)
            {
                var proto = port.Protocol.ToUpperInvariant() == "UDP" ? "udp" : "tcp";
                b.Append("    ip daddr ").Append(svc.ClusterIp).Append(' ').Append(proto).Append(" dport ")
                    .Append(port.Port.ToString(CultureInfo.InvariantCulture)).Append(' ');
                if (eps.Length == 0)
                {
                    b.Append(proto == "tcp" ? "reject with tcp reset\n" : "reject\n");
                    continue;
                }
                var target = port.TargetPort.ToString(CultureInfo.InvariantCulture);
                if (eps.Length == 1)
                {
                    b.Append("dnat to ").Append(Ipv4Cidr.Format(eps[0])).Append(':').Append(target).Append('\n');
                    continue;
                }
                b.Append("dnat ip to numgen random mod ").Append(eps.Length.ToString(CultureInfo.InvariantCulture)).Append(" map { ");
                for (var i = 0; i < eps.Length; i++)
                {
                    if (i > 0) b.Append(", ");
                    b.Append(i.ToString(CultureInfo.InvariantCulture)).Append(" : ").Append(Ipv4Cidr.Format(eps[i])).Append(" . ").Append(target);
                }
                b.Append(" }\n");
            }
        }
        b.Append("  }\n");
        b.Append("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        foreach (var e in endpoints)
        {
            var ip = Ipv4Cidr.Format(e);
            b.Append("    ip saddr ").Append(ip).Append(" ip daddr ").Append(ip).Append(" ct status dnat snat to ").Append(gatewayIp).Append('\n');
        }
        b.Append("  }\n}\n");
        return b.ToString();
    }

    /// <summary>Rejects anything that is not a DNS label, an IPv4 address or a port before it reaches nft or dnsmasq.</summary>
    public static void Validate(ServiceLite svc)
    {
        if (!DnsLabel().IsMatch(svc.Name) || !DnsLabel().IsMatch(svc.Namespace))
            throw Invalid(svc, "its name and namespace must be DNS labels");
        if (!svc.Headless && !string.IsNullOrEmpty(svc.ClusterIp) && svc.ClusterIp != "None") _ = Ipv4Cidr.ParseAddress(svc.ClusterIp);
        foreach (var e in svc.Endpoints) _ = Ipv4Cidr.ParseAddress(e);
        foreach (var p in svc.Ports)
        {
            if (p.Port is < 1 or > 65535 || p.TargetPort is < 1 or > 65535) throw Invalid(svc, "ports must be 1-65535");
            if (p.Protocol.ToUpperInvariant() is not ("TCP" or "UDP")) throw Invalid(svc, "only TCP and UDP ports are simulated");
        }
    }

    private static KtException Invalid(ServiceLite svc, string why) =>
        new("SimInvalidService", KtErrorCategory.InvalidArgument, $"Service {svc.Namespace}/{svc.Name}: {why}.", target: svc);

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();
}
