using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// The defaulting the real API server applies on create and update (the values fixtures 2a-2d and 5c show),
/// per kind. Only sets fields that are absent; never overwrites what the client sent.
/// </summary>
internal static class ObjectDefaults
{
    public static void Apply(ResourceType type, JsonObject obj)
    {
        switch (type.Kind)
        {
            case "Namespace":
                var nsSpec = Obj(obj, "spec");
                nsSpec["finalizers"] ??= new JsonArray("kubernetes");
                Obj(obj, "status")["phase"] ??= "Active";
                break;
            case "Service":
                ServiceSpec(Obj(obj, "spec"));
                Obj(Obj(obj, "status"), "loadBalancer");
                break;
            case "Pod":
                PodSpec(Obj(obj, "spec"), isTemplate: false);
                break;
            case "Deployment":
                var dSpec = Obj(obj, "spec");
                dSpec["replicas"] ??= 1;
                if (dSpec["strategy"] is not JsonObject strategy)
                {
                    dSpec["strategy"] = strategy = [];
                }
                strategy["type"] ??= "RollingUpdate";
                if (strategy["type"]?.GetValue<string>() == "RollingUpdate")
                {
                    var ru = Obj(strategy, "rollingUpdate");
                    ru["maxUnavailable"] ??= "25%";
                    ru["maxSurge"] ??= "25%";
                }
                dSpec["revisionHistoryLimit"] ??= 10;
                dSpec["progressDeadlineSeconds"] ??= 600;
                Template(dSpec);
                Obj(obj, "status");
                break;
            case "ReplicaSet":
                var rSpec = Obj(obj, "spec");
                rSpec["replicas"] ??= 1;
                Template(rSpec);
                Obj(obj, "status")["replicas"] ??= 0;
                break;
            case "Secret":
                obj["type"] ??= "Opaque";
                break;
            case "Endpoints":
                if (obj["subsets"] is JsonArray subsets)
                {
                    foreach (var s in subsets.OfType<JsonObject>())
                    {
                        if (s["ports"] is JsonArray ps) foreach (var p in ps.OfType<JsonObject>()) p["protocol"] ??= "TCP";
                    }
                }
                break;
            case "EndpointSlice":
                if (obj["ports"] is JsonArray eps) foreach (var p in eps.OfType<JsonObject>()) p["protocol"] ??= "TCP";
                break;
            case "Ingress":
                Obj(Obj(obj, "status"), "loadBalancer");
                break;
            default:
                break;
        }
    }

    private static void Template(JsonObject spec)
    {
        var template = Obj(spec, "template");
        var meta = Obj(template, "metadata");
        if (!meta.ContainsKey("creationTimestamp")) meta.Insert(0, "creationTimestamp", null);
        PodSpec(Obj(template, "spec"), isTemplate: true);
    }

    private static void ServiceSpec(JsonObject spec)
    {
        spec["type"] ??= "ClusterIP";
        spec["sessionAffinity"] ??= "None";
        if (spec["ports"] is JsonArray ports)
        {
            foreach (var p in ports.OfType<JsonObject>())
            {
                p["protocol"] ??= "TCP";
                if (p["targetPort"] is null && p["port"] is JsonNode port) p["targetPort"] = port.DeepClone();
            }
        }
        var type = spec["type"]?.GetValue<string>();
        if (type is "NodePort" or "LoadBalancer") spec["externalTrafficPolicy"] ??= "Cluster";
    }

    public static void PodSpec(JsonObject spec, bool isTemplate)
    {
        if (spec["containers"] is JsonArray containers)
        {
            foreach (var c in containers.OfType<JsonObject>()) Container(c);
        }
        if (spec["initContainers"] is JsonArray inits)
        {
            foreach (var c in inits.OfType<JsonObject>()) Container(c);
        }
        spec["restartPolicy"] ??= "Always";
        spec["terminationGracePeriodSeconds"] ??= 30;
        spec["dnsPolicy"] ??= "ClusterFirst";
        if (!isTemplate)
        {
            // Admission (ServiceAccount, DefaultTolerationSeconds, Priority) only touches real pods, not templates.
            spec["serviceAccountName"] ??= "default";
            spec["serviceAccount"] ??= spec["serviceAccountName"]!.DeepClone();
        }
        spec["securityContext"] ??= new JsonObject();
        spec["schedulerName"] ??= "default-scheduler";
        if (!isTemplate)
        {
            spec["tolerations"] ??= new JsonArray(
                Toleration("node.kubernetes.io/not-ready"), Toleration("node.kubernetes.io/unreachable"));
            spec["priority"] ??= 0;
            spec["enableServiceLinks"] ??= true;
            spec["preemptionPolicy"] ??= "PreemptLowerPriority";
        }
    }

    private static JsonObject Toleration(string key) => new()
    {
        ["key"] = key,
        ["operator"] = "Exists",
        ["effect"] = "NoExecute",
        ["tolerationSeconds"] = 300,
    };

    private static void Container(JsonObject c)
    {
        if (c["ports"] is JsonArray ports)
        {
            foreach (var p in ports.OfType<JsonObject>()) p["protocol"] ??= "TCP";
        }
        c["resources"] ??= new JsonObject();
        c["terminationMessagePath"] ??= "/dev/termination-log";
        c["terminationMessagePolicy"] ??= "File";
        if (c["imagePullPolicy"] is null)
        {
            var image = c["image"]?.GetValue<string>() ?? "";
            var lastSlash = image.LastIndexOf('/');
            var tagged = image.IndexOf(':', lastSlash + 1) >= 0 || image.Contains('@', StringComparison.Ordinal);
            c["imagePullPolicy"] = !tagged || image.EndsWith(":latest", StringComparison.Ordinal) ? "Always" : "IfNotPresent";
        }
    }

    /// <summary>The pod's QoS class from its containers' requests and limits (simplified: BestEffort or Burstable/Guaranteed).</summary>
    public static string QosClass(JsonObject pod)
    {
        var containers = (pod["spec"]?["containers"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
        var any = false;
        var guaranteed = containers.Count > 0;
        foreach (var c in containers)
        {
            var req = c["resources"]?["requests"] as JsonObject;
            var lim = c["resources"]?["limits"] as JsonObject;
            if ((req?.Count ?? 0) > 0 || (lim?.Count ?? 0) > 0) any = true;
            if (lim is null || lim["cpu"] is null || lim["memory"] is null) guaranteed = false;
            else if (req is not null && (!JsonNode.DeepEquals(req["cpu"] ?? lim["cpu"], lim["cpu"]) || !JsonNode.DeepEquals(req["memory"] ?? lim["memory"], lim["memory"])))
            {
                guaranteed = false;
            }
        }
        return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
    }

    public static JsonObject Obj(JsonObject parent, string key)
    {
        if (parent[key] is JsonObject o) return o;
        var created = new JsonObject();
        parent[key] = created;
        return created;
    }
}
