using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Cluster;

/// <summary>
/// What kube-proxy and the DNS see: every Service (headless too; not ExternalName) as a <see cref="ServiceLite"/>
/// with the ready addresses of its Endpoints and each port's target port as the Endpoints resolved it.
/// </summary>
public static class ServiceTable
{
    public static IReadOnlyList<ServiceLite> Build(ObjectStore store)
    {
        var endpoints = store.List(ResourceTypes.Endpoints, null).Items
            .ToDictionary(e => e["metadata"]!["namespace"]!.GetValue<string>() + "/" + e["metadata"]!["name"]!.GetValue<string>(), StringComparer.Ordinal);
        var list = new List<ServiceLite>();
        foreach (var svc in store.List(ResourceTypes.Services, null).Items)
        {
            var ns = svc["metadata"]!["namespace"]!.GetValue<string>();
            var name = svc["metadata"]!["name"]!.GetValue<string>();
            var spec = svc["spec"] as JsonObject ?? [];
            if (spec["type"]?.GetValue<string>() == "ExternalName") continue;
            var clusterIp = spec["clusterIP"]?.GetValue<string>();
            var headless = clusterIp == "None";
            endpoints.TryGetValue(ns + "/" + name, out var ep);
            var subsets = (ep?["subsets"] as JsonArray ?? []).OfType<JsonObject>().ToList();
            var ips = subsets.SelectMany(s => (s["addresses"] as JsonArray ?? []).OfType<JsonObject>())
                .Select(a => a["ip"]!.GetValue<string>()).Distinct(StringComparer.Ordinal).ToList();
            var ports = new List<ServicePortLite>();
            foreach (var p in (spec["ports"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var port = p["port"]?.GetValue<int>() ?? 0;
                var portName = p["name"]?.GetValue<string>();
                var protocol = p["protocol"]?.GetValue<string>() ?? "TCP";
                // The Endpoints carry the resolved number (named targetPorts); else the Service's own number.
                var resolved = subsets.SelectMany(s => (s["ports"] as JsonArray ?? []).OfType<JsonObject>())
                    .FirstOrDefault(e => (e["name"]?.GetValue<string>() ?? "") == (portName ?? "") && (e["protocol"]?.GetValue<string>() ?? "TCP") == protocol)?["port"]?.GetValue<int>();
                var target = resolved ?? Controllers.EndpointsController.ResolveTargetPort(p, null) ?? port;
                ports.Add(new ServicePortLite(port, target, protocol, string.IsNullOrEmpty(portName) ? null : portName));
            }
            list.Add(new ServiceLite(ns, name, headless ? null : clusterIp, ports, ips, headless));
        }
        return list;
    }

    /// <summary>A text that changes exactly when the table does (records holding lists compare by reference).</summary>
    public static string Fingerprint(IReadOnlyList<ServiceLite> services)
    {
        var sb = new StringBuilder();
        foreach (var s in services)
        {
            sb.Append(s.Namespace).Append('/').Append(s.Name).Append(' ').Append(s.ClusterIp).Append(' ').Append(s.Headless).Append(" [");
            foreach (var p in s.Ports) sb.Append(p.Port).Append(':').Append(p.TargetPort).Append('/').Append(p.Protocol).Append('/').Append(p.Name).Append(' ');
            sb.Append("] ").AppendJoin(',', s.Endpoints).Append('\n');
        }
        return sb.ToString();
    }
}
