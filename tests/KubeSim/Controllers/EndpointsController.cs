using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// The endpoints and endpointslice controllers, one reconcile pass over every Service with a selector: the
/// Endpoints of the same name (ready pod IPs in addresses, the others in notReadyAddresses, ports resolved per
/// pod, named targetPorts through the pods' container ports) and one EndpointSlice (discovery.k8s.io/v1,
/// generateName "&lt;service&gt;-", labels kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by,
/// owned by the Service). Pods being deleted or without an IP are left out. Endpoints this controller made for a
/// Service that is gone are deleted (slices go by ownerReference GC).
/// </summary>
internal sealed class EndpointsController(ObjectStore store)
{
    public const string ManagedBy = "endpointslice-controller.k8s.io";
    private readonly HashSet<string> _made = new(StringComparer.Ordinal);

    public void Reconcile()
    {
        var services = store.List(ResourceTypes.Services, null).Items;
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var svc in services)
        {
            if (Owners.Deleting(svc) || svc["spec"]?["type"]?.GetValue<string>() == "ExternalName") continue;
            var selector = Owners.MapSelector(svc["spec"]?["selector"]);
            if (selector is null) continue;
            live.Add(Owners.Ns(svc) + "/" + Owners.Name(svc));
            ReconcileOne(svc, selector);
        }
        foreach (var key in _made.Where(k => !live.Contains(k)).ToList())
        {
            var (ns, name) = (key[..key.IndexOf('/', StringComparison.Ordinal)], key[(key.IndexOf('/', StringComparison.Ordinal) + 1)..]);
            try
            {
                if (store.Get(ResourceTypes.Endpoints, ns, name) is not null) store.Delete(ResourceTypes.Endpoints, ns, name);
            }
            catch (KubeApiException e) when (e.Code == 404)
            {
                // Gone with its namespace.
            }
            _made.Remove(key);
        }
    }

    private void ReconcileOne(JsonObject svc, LabelSelector selector)
    {
        var ns = Owners.Ns(svc);
        var name = Owners.Name(svc);
        var svcPorts = (svc["spec"]?["ports"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        var publishNotReady = svc["spec"]?["publishNotReadyAddresses"]?.GetValue<bool>() ?? false;
        var pods = store.List(ResourceTypes.Pods, ns, selector).Items
            .Where(p => !Owners.Deleting(p) && p["status"]?["podIP"]?.GetValue<string>() is { Length: > 0 }
                && p["status"]?["phase"]?.GetValue<string>() is not ("Succeeded" or "Failed"))
            .OrderBy(p => p["status"]!["podIP"]!.GetValue<string>(), StringComparer.Ordinal)
            .ToList();

        // Pods with the same resolved ports share a subset, as in the real controller.
        var subsets = new List<(string Key, JsonArray Ports, JsonArray Ready, JsonArray NotReady)>();
        var slicePorts = new JsonArray();
        var sliceEndpoints = new JsonArray();
        foreach (var pod in pods)
        {
            var ports = new JsonArray();
            foreach (var sp in svcPorts)
            {
                if (ResolveTargetPort(sp, pod) is not int target) continue;
                var ep = new JsonObject();
                if (sp["name"] is JsonNode n && n.GetValue<string>().Length > 0) ep["name"] = n.DeepClone();
                ep["port"] = target;
                ep["protocol"] = sp["protocol"]?.DeepClone() ?? "TCP";
                ports.Add(ep);
            }
            if (ports.Count == 0) continue;
            var key = ports.ToJsonString();
            var subset = subsets.FirstOrDefault(s => s.Key == key);
            if (subset.Key is null)
            {
                subset = (key, ports, [], []);
                subsets.Add(subset);
            }
            if (slicePorts.Count == 0) slicePorts = (JsonArray)ports.DeepClone();
            var ip = pod["status"]!["podIP"]!.GetValue<string>();
            var ready = Owners.IsReady(pod) || publishNotReady;
            var address = new JsonObject
            {
                ["ip"] = ip,
                ["nodeName"] = pod["spec"]?["nodeName"]?.DeepClone(),
                ["targetRef"] = TargetRef(pod),
            };
            (ready ? subset.Ready : subset.NotReady).Add(address);
            sliceEndpoints.Add(new JsonObject
            {
                ["addresses"] = new JsonArray(ip),
                ["conditions"] = new JsonObject { ["ready"] = ready, ["serving"] = ready, ["terminating"] = false },
                ["targetRef"] = TargetRef(pod),
                ["nodeName"] = pod["spec"]?["nodeName"]?.DeepClone(),
            });
        }
        var subsetArray = new JsonArray();
        foreach (var s in subsets)
        {
            var o = new JsonObject();
            if (s.Ready.Count > 0) o["addresses"] = s.Ready;
            if (s.NotReady.Count > 0) o["notReadyAddresses"] = s.NotReady;
            o["ports"] = s.Ports;
            subsetArray.Add(o);
        }
        var labels = (svc["metadata"]?["labels"] as JsonObject)?.DeepClone() as JsonObject ?? [];
        var headless = svc["spec"]?["clusterIP"]?.GetValue<string>() == "None";
        var epLabels = (JsonObject)labels.DeepClone();
        if (headless) epLabels["service.kubernetes.io/headless"] = "";

        var existing = store.Get(ResourceTypes.Endpoints, ns, name);
        if (existing is null)
        {
            var body = new JsonObject { ["metadata"] = new JsonObject { ["name"] = name } };
            if (epLabels.Count > 0) body["metadata"]!["labels"] = epLabels;
            if (subsetArray.Count > 0) body["subsets"] = subsetArray;
            store.Create(ResourceTypes.Endpoints, ns, body);
        }
        else
        {
            store.Mutate(ResourceTypes.Endpoints, ns, name, ep =>
            {
                var meta = (JsonObject)ep["metadata"]!;
                if (epLabels.Count > 0) meta["labels"] = epLabels.DeepClone();
                else meta.Remove("labels");
                if (subsetArray.Count > 0) ep["subsets"] = subsetArray.DeepClone();
                else ep.Remove("subsets");
                return ep;
            });
        }
        _made.Add(ns + "/" + name);

        var sliceLabels = (JsonObject)epLabels.DeepClone();
        sliceLabels["kubernetes.io/service-name"] = name;
        sliceLabels["endpointslice.kubernetes.io/managed-by"] = ManagedBy;
        var slices = store.List(ResourceTypes.EndpointSlices, ns,
            LabelSelector.Parse($"kubernetes.io/service-name={name},endpointslice.kubernetes.io/managed-by={ManagedBy}")).Items
            .Where(s => Owners.IsControlledBy(s, Owners.Uid(svc))).ToList();
        if (slices.Count == 0)
        {
            var body = new JsonObject
            {
                ["metadata"] = new JsonObject
                {
                    ["generateName"] = name + "-",
                    ["labels"] = sliceLabels,
                    ["ownerReferences"] = new JsonArray(Owners.ControllerRef(svc)),
                },
                ["addressType"] = "IPv4",
                ["endpoints"] = sliceEndpoints,
                ["ports"] = slicePorts,
            };
            store.Create(ResourceTypes.EndpointSlices, ns, body);
        }
        else
        {
            store.Mutate(ResourceTypes.EndpointSlices, ns, Owners.Name(slices[0]), s =>
            {
                ((JsonObject)s["metadata"]!)["labels"] = sliceLabels.DeepClone();
                s["endpoints"] = sliceEndpoints.DeepClone();
                s["ports"] = slicePorts.DeepClone();
                return s;
            });
            foreach (var extra in slices.Skip(1)) store.Delete(ResourceTypes.EndpointSlices, ns, Owners.Name(extra));
        }
    }

    private static JsonObject TargetRef(JsonObject pod) => new()
    {
        ["kind"] = "Pod",
        ["namespace"] = Owners.Ns(pod),
        ["name"] = Owners.Name(pod),
        ["uid"] = Owners.Uid(pod),
    };

    /// <summary>targetPort as a number, or a name looked up in the pod's container ports; null when the pod lacks that name.</summary>
    internal static int? ResolveTargetPort(JsonObject servicePort, JsonObject? pod)
    {
        var target = servicePort["targetPort"];
        if (target is null) return servicePort["port"]?.GetValue<int>();
        if (target.GetValueKind() == System.Text.Json.JsonValueKind.Number) return target.GetValue<int>();
        var name = target.GetValue<string>();
        if (int.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)) return n;
        foreach (var c in (pod?["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>())
        {
            foreach (var p in (c["ports"] as JsonArray ?? []).OfType<JsonObject>())
            {
                if (p["name"]?.GetValue<string>() == name) return p["containerPort"]?.GetValue<int>();
            }
        }
        return null;
    }
}
