using System.Globalization;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// Server-side printing: <c>Accept: application/json;as=Table;v=v1;g=meta.k8s.io</c> turns a get, list or watch
/// into a meta.k8s.io Table with the columns of kube-apiserver v1.20's printers (pkg/printers/internalversion) for
/// pods, services, deployments, replicasets, namespaces, nodes, configmaps, secrets, endpoints and events, and the
/// NAME/AGE pair for every other type. Rows carry the object as PartialObjectMetadata (the default),
/// the whole object (<c>includeObject=Object</c>) or nothing (<c>None</c>).
/// </summary>
internal static class Tables
{
    private sealed record Column(string Name, string Type, string Format, string Description, int Priority = 0);

    /// <summary>
    /// The Table version the client asked for, taking Accept entries in order (the first one KubeSim can produce
    /// wins, as Go's negotiation does): "v1", "v1beta1", or null for plain JSON.
    /// </summary>
    public static string? RequestedVersion(string? accept)
    {
        if (string.IsNullOrWhiteSpace(accept)) return null;
        foreach (var entry in accept.Split(','))
        {
            var parts = entry.Split(';').Select(p => p.Trim()).ToArray();
            var media = parts[0].ToLowerInvariant();
            if (media.Contains("protobuf", StringComparison.Ordinal)) continue;
            var parameters = parts.Skip(1).Select(p => p.Split('=', 2)).Where(p => p.Length == 2)
                .ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim(), StringComparer.Ordinal);
            if (media != "application/json" || !parameters.TryGetValue("as", out var asKind)) return null;
            if (asKind == "Table" && parameters.GetValueOrDefault("g") == "meta.k8s.io" && parameters.GetValueOrDefault("v") is "v1" or "v1beta1")
            {
                return parameters["v"];
            }
            // Another "as" (PartialObjectMetadata, ...): KubeSim does not produce it; try the next entry.
        }
        return null;
    }

    /// <summary>A Table of <paramref name="items"/>; <paramref name="listMetadata"/> is copied (resourceVersion, continue).</summary>
    public static JsonObject Build(ResourceType type, IEnumerable<JsonObject> items, JsonObject? listMetadata, string version, string? includeObject,
        DateTimeOffset now, bool withColumns = true)
    {
        var columns = ColumnsOf(type.Kind);
        var rows = new JsonArray();
        foreach (var item in items)
        {
            var row = new JsonObject { ["cells"] = new JsonArray([.. Cells(type.Kind, item, now)]) };
            switch (includeObject)
            {
                case "None":
                    break;
                case "Object":
                    var full = (JsonObject)item.DeepClone();
                    full["kind"] = type.Kind;
                    full["apiVersion"] = type.ApiVersion;
                    row["object"] = full;
                    break;
                default:
                    row["object"] = new JsonObject
                    {
                        ["kind"] = "PartialObjectMetadata",
                        ["apiVersion"] = "meta.k8s.io/" + version,
                        ["metadata"] = item["metadata"]?.DeepClone(),
                    };
                    break;
            }
            rows.Add(row);
        }
        var table = new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/" + version,
            ["metadata"] = listMetadata?.DeepClone() ?? new JsonObject(),
        };
        if (withColumns)
        {
            table["columnDefinitions"] = new JsonArray([.. columns.Select(c => (JsonNode)new JsonObject
            {
                ["name"] = c.Name,
                ["type"] = c.Type,
                ["format"] = c.Format,
                ["description"] = c.Description,
                ["priority"] = c.Priority,
            })]);
        }
        table["rows"] = rows;
        return table;
    }

    private static readonly Column NameColumn = new("Name", "string", "name", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: http://kubernetes.io/docs/user-guide/identifiers#names");

    private static readonly Column AgeColumn = new("Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata");

    private static IReadOnlyList<Column> ColumnsOf(string kind) => kind switch
    {
        "Pod" =>
        [
            NameColumn,
            new("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic."),
            new("Status", "string", "", "The aggregate status of the containers in this pod."),
            new("Restarts", "integer", "", "The number of times the containers in this pod have been restarted."),
            AgeColumn,
            new("IP", "string", "", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
            new("Node", "string", "", "NodeName is a request to schedule this pod onto a specific node. If it is non-empty, the scheduler simply schedules this pod onto that node, assuming that it fits resource requirements.", 1),
            new("Nominated Node", "string", "", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.", 1),
            new("Readiness Gates", "string", "", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
        ],
        "Service" =>
        [
            NameColumn,
            new("Type", "string", "", "type determines how the Service is exposed."),
            new("Cluster-IP", "string", "", "clusterIP is the IP address of the service and is usually assigned randomly by the master."),
            new("External-IP", "string", "", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            new("Port(s)", "string", "", "The list of ports that are exposed by this service."),
            AgeColumn,
            new("Selector", "string", "", "Route service traffic to pods with label keys and values matching this selector.", 1),
        ],
        "Deployment" =>
        [
            NameColumn,
            new("Ready", "string", "", "Number of the pod with ready state"),
            new("Up-to-date", "string", "", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            new("Available", "string", "", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AgeColumn,
            new("Containers", "string", "", "Names of each container in the template.", 1),
            new("Images", "string", "", "Images referenced by each container in the template.", 1),
            new("Selector", "string", "", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1),
        ],
        "ReplicaSet" =>
        [
            NameColumn,
            new("Desired", "integer", "", "Replicas is the number of desired replicas."),
            new("Current", "integer", "", "Replicas is the most recently oberved number of replicas."),
            new("Ready", "integer", "", "The number of ready replicas for this replica set."),
            AgeColumn,
            new("Containers", "string", "", "Names of each container in the template.", 1),
            new("Images", "string", "", "Images referenced by each container in the template.", 1),
            new("Selector", "string", "", "Selector is a label query over pods that should match the replica count.", 1),
        ],
        "Namespace" => [NameColumn, new("Status", "string", "", "The status of the namespace"), AgeColumn],
        "Node" =>
        [
            NameColumn,
            new("Status", "string", "", "The status of the node"),
            new("Roles", "string", "", "The roles of the node"),
            AgeColumn,
            new("Version", "string", "", "Kubelet Version reported by the node."),
            new("Internal-IP", "string", "", "List of addresses reachable to the node. Queried from cloud provider, if available.", 1),
            new("External-IP", "string", "", "List of addresses reachable to the node. Queried from cloud provider, if available.", 1),
            new("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
            new("Kernel-Version", "string", "", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
            new("Container-Runtime", "string", "", "ContainerRuntime Version reported by the node through runtime remote API (e.g. docker://1.5.0).", 1),
        ],
        "ConfigMap" => [NameColumn, new("Data", "integer", "", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'."), AgeColumn],
        "Secret" =>
        [
            NameColumn,
            new("Type", "string", "", "Used to facilitate programmatic handling of secret data."),
            new("Data", "integer", "", "Data contains the secret data."),
            AgeColumn,
        ],
        "Endpoints" => [NameColumn, new("Endpoints", "string", "", "Endpoints is the list of endpoints for this service."), AgeColumn],
        "Event" =>
        [
            new("Last Seen", "string", "", "The last time this event was recorded."),
            new("Type", "string", "", "Type of this event (Normal, Warning), new types could be added in the future."),
            new("Reason", "string", "", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            new("Object", "string", "", "The object that this event is about."),
            new("Subobject", "string", "", "The subobject (fieldPath) this event is about.", 1),
            new("Source", "string", "", "The component reporting this event.", 1),
            new("Message", "string", "", "A human-readable description of the status of this operation."),
            new("First Seen", "string", "", "The time at which the event was first recorded.", 1),
            new("Count", "string", "", "The number of times this event has occurred.", 1),
            new("Name", "string", "name", NameColumn.Description, 1),
        ],
        _ => [NameColumn, AgeColumn],
    };

    private static IEnumerable<JsonNode?> Cells(string kind, JsonObject o, DateTimeOffset now)
    {
        var name = Str(o["metadata"]?["name"]);
        var age = Since(o["metadata"]?["creationTimestamp"], now);
        var spec = o["spec"] as JsonObject;
        var status = o["status"] as JsonObject;
        switch (kind)
        {
            case "Pod":
                {
                    var (ready, total, restarts, reason) = PodSummary(o);
                    var ip = (status?["podIPs"] as JsonArray)?.FirstOrDefault()?["ip"] is JsonNode first ? Str(first) : Str(status?["podIP"]);
                    var gates = spec?["readinessGates"] is JsonArray { Count: > 0 } g
                        ? $"{g.Count(x => (status?["conditions"] as JsonArray ?? []).Any(c => Str(c?["type"]) == Str(x?["conditionType"]) && Str(c?["status"]) == "True"))}/{g.Count}"
                        : "<none>";
                    return [name, $"{ready}/{total}", reason, restarts, age, NoneIfEmpty(ip), NoneIfEmpty(Str(spec?["nodeName"])),
                        NoneIfEmpty(Str(status?["nominatedNodeName"])), gates];
                }
            case "Service":
                {
                    var type = Str(spec?["type"]);
                    var clusterIps = spec?["clusterIPs"] as JsonArray;
                    var clusterIp = clusterIps is { Count: > 0 } ? Str(clusterIps[0]) : NoneIfEmpty(Str(spec?["clusterIP"]));
                    return [name, type, clusterIp, ExternalIp(type, spec, status), Ports(spec), age, Selector(spec?["selector"] as JsonObject)];
                }
            case "Deployment":
                {
                    var desired = Long(spec?["replicas"]);
                    return [name, $"{Long(status?["readyReplicas"])}/{desired}", Long(status?["updatedReplicas"]), Long(status?["availableReplicas"]), age,
                        .. TemplateColumns(spec)];
                }
            case "ReplicaSet":
                return [name, Long(spec?["replicas"]), Long(status?["replicas"]), Long(status?["readyReplicas"]), age, .. TemplateColumns(spec)];
            case "Namespace":
                return [name, Str(status?["phase"]), age];
            case "Node":
                return [name, NodeStatus(o), NodeRoles(o), age, Str(status?["nodeInfo"]?["kubeletVersion"]), NodeAddress(status, "InternalIP"),
                    NodeAddress(status, "ExternalIP"), Unknown(Str(status?["nodeInfo"]?["osImage"])), Unknown(Str(status?["nodeInfo"]?["kernelVersion"])),
                    Unknown(Str(status?["nodeInfo"]?["containerRuntimeVersion"]))];
            case "ConfigMap":
                return [name, ((o["data"] as JsonObject)?.Count ?? 0) + ((o["binaryData"] as JsonObject)?.Count ?? 0), age];
            case "Secret":
                return [name, Str(o["type"]), (o["data"] as JsonObject)?.Count ?? 0, age];
            case "Endpoints":
                return [name, FormatEndpoints(o), age];
            case "Event":
                {
                    var first = o["firstTimestamp"] ?? o["eventTime"];
                    var last = o["lastTimestamp"] ?? o["eventTime"] ?? first;
                    var involved = o["involvedObject"] as JsonObject;
                    var source = o["source"] as JsonObject;
                    var sourceText = Str(source?["component"]);
                    if (Str(source?["host"]).Length > 0) sourceText += ", " + Str(source?["host"]);
                    return [Since(last, now), Str(o["type"]), Str(o["reason"]), $"{Str(involved?["kind"]).ToLowerInvariant()}/{Str(involved?["name"])}",
                        Str(involved?["fieldPath"]), sourceText, Str(o["message"]).Trim(), Since(first, now), Long(o["count"]), name];
                }
            default:
                return [name, age];
        }
    }

    /// <summary>printPod of v1.20: ready/total containers, restarts, and the STATUS reason.</summary>
    private static (int Ready, int Total, long Restarts, string Reason) PodSummary(JsonObject pod)
    {
        var status = pod["status"] as JsonObject;
        var total = (pod["spec"]?["containers"] as JsonArray)?.Count ?? 0;
        var reason = Str(status?["phase"]);
        if (Str(status?["reason"]).Length > 0) reason = Str(status?["reason"]);
        var ready = 0;
        long restarts = 0;
        var hasRunning = false;
        var statuses = (status?["containerStatuses"] as JsonArray ?? []).ToList();
        for (var i = statuses.Count - 1; i >= 0; i--)
        {
            var c = statuses[i];
            restarts += Long(c?["restartCount"]);
            var state = c?["state"] as JsonObject;
            if (state?["waiting"] is JsonObject w && Str(w["reason"]).Length > 0)
            {
                reason = Str(w["reason"]);
            }
            else if (state?["terminated"] is JsonObject t && Str(t["reason"]).Length > 0)
            {
                reason = Str(t["reason"]);
            }
            else if (state?["terminated"] is JsonObject t2)
            {
                reason = Long(t2["signal"]) != 0 ? $"Signal:{Long(t2["signal"])}" : $"ExitCode:{Long(t2["exitCode"])}";
            }
            else if (c?["ready"]?.GetValue<bool>() == true && state?["running"] is not null)
            {
                hasRunning = true;
                ready++;
            }
        }
        if (reason == "Completed" && hasRunning)
        {
            var podReady = (status?["conditions"] as JsonArray ?? []).Any(c => Str(c?["type"]) == "Ready" && Str(c?["status"]) == "True");
            reason = podReady ? "Running" : "NotReady";
        }
        if (pod["metadata"]?["deletionTimestamp"] is not null) reason = Str(status?["reason"]) == "NodeLost" ? "Unknown" : "Terminating";
        return (ready, total, restarts, reason);
    }

    private static string ExternalIp(string type, JsonObject? spec, JsonObject? status)
    {
        var external = (spec?["externalIPs"] as JsonArray ?? []).Select(Str).ToList();
        switch (type)
        {
            case "ClusterIP" or "NodePort":
                return external.Count > 0 ? string.Join(',', external) : "<none>";
            case "LoadBalancer":
                {
                    var lb = (status?["loadBalancer"]?["ingress"] as JsonArray ?? []).Select(i => Str(i?["ip"]).Length > 0 ? Str(i?["ip"]) : Str(i?["hostname"])).ToList();
                    var all = lb.Concat(external).ToList();
                    return all.Count > 0 ? string.Join(',', all) : "<pending>";
                }
            case "ExternalName":
                return Str(spec?["externalName"]);
            default:
                return "<unknown>";
        }
    }

    private static string Ports(JsonObject? spec)
    {
        var ports = (spec?["ports"] as JsonArray ?? []).Select(p =>
        {
            var port = Long(p?["port"]).ToString(CultureInfo.InvariantCulture);
            var nodePort = Long(p?["nodePort"]);
            var protocol = Str(p?["protocol"]);
            return nodePort > 0 ? $"{port}:{nodePort}/{protocol}" : $"{port}/{protocol}";
        }).ToList();
        return ports.Count > 0 ? string.Join(',', ports) : "<none>";
    }

    private static string Selector(JsonObject? selector) =>
        selector is null || selector.Count == 0 ? "<none>" : string.Join(',', selector.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + Str(p.Value)));

    private static JsonNode?[] TemplateColumns(JsonObject? spec)
    {
        var containers = (spec?["template"]?["spec"]?["containers"] as JsonArray ?? []).ToList();
        var sel = spec?["selector"] as JsonObject;
        return [string.Join(',', containers.Select(c => Str(c?["name"]))), string.Join(',', containers.Select(c => Str(c?["image"]))), LabelSelector.Format(sel)];
    }

    private static string NodeStatus(JsonObject node)
    {
        var conditions = node["status"]?["conditions"] as JsonArray ?? [];
        var ready = conditions.FirstOrDefault(c => Str(c?["type"]) == "Ready");
        var result = ready is null ? "Unknown" : Str(ready["status"]) == "True" ? "Ready" : "NotReady";
        if (node["spec"]?["unschedulable"]?.GetValue<bool>() == true) result += ",SchedulingDisabled";
        return result;
    }

    private static string NodeRoles(JsonObject node)
    {
        var roles = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in node["metadata"]?["labels"] as JsonObject ?? [])
        {
            if (key.StartsWith("node-role.kubernetes.io/", StringComparison.Ordinal)) roles.Add(key["node-role.kubernetes.io/".Length..]);
            else if (key == "kubernetes.io/role" && Str(value).Length > 0) roles.Add(Str(value));
        }
        return roles.Count > 0 ? string.Join(',', roles) : "<none>";
    }

    private static string NodeAddress(JsonObject? status, string type)
    {
        var a = (status?["addresses"] as JsonArray ?? []).FirstOrDefault(x => Str(x?["type"]) == type);
        return a is null ? "<none>" : Str(a["address"]);
    }

    /// <summary>formatEndpoints: ip:port for at most three, then " + N more...".</summary>
    private static string FormatEndpoints(JsonObject ep)
    {
        var list = new List<string>();
        var count = 0;
        foreach (var subset in ep["subsets"] as JsonArray ?? [])
        {
            var ports = (subset?["ports"] as JsonArray ?? []).ToList();
            foreach (var address in subset?["addresses"] as JsonArray ?? [])
            {
                if (ports.Count == 0)
                {
                    count++;
                    if (list.Count < 3) list.Add(Str(address?["ip"]));
                    continue;
                }
                foreach (var port in ports)
                {
                    count++;
                    if (list.Count < 3) list.Add($"{Str(address?["ip"])}:{Long(port?["port"])}");
                }
            }
        }
        if (count == 0) return "<none>";
        var text = string.Join(',', list);
        return count > list.Count ? $"{text} + {count - list.Count} more..." : text;
    }

    /// <summary>translateTimestampSince: duration.HumanDuration of now - t, "&lt;unknown&gt;" without a time.</summary>
    internal static string Since(JsonNode? timestamp, DateTimeOffset now)
    {
        if (timestamp is not JsonValue v || !v.TryGetValue<string>(out var s)
            || !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
        {
            return "<unknown>";
        }
        return HumanDuration(now - t);
    }

    /// <summary>k8s.io/apimachinery/pkg/util/duration.HumanDuration.</summary>
    internal static string HumanDuration(TimeSpan d)
    {
        var seconds = (long)Math.Truncate(d.TotalSeconds);
        if (seconds < -1) return "<invalid>";
        if (seconds < 0) return "0s";
        if (seconds < 60 * 2) return $"{seconds}s";
        var minutes = seconds / 60;
        if (minutes < 10)
        {
            var s = seconds % 60;
            return s == 0 ? $"{minutes}m" : $"{minutes}m{s}s";
        }
        if (minutes < 60 * 3) return $"{minutes}m";
        var hours = minutes / 60;
        if (hours < 8)
        {
            var m = minutes % 60;
            return m == 0 ? $"{hours}h" : $"{hours}h{m}m";
        }
        if (hours < 48) return $"{hours}h";
        if (hours < 24 * 8)
        {
            var h = hours % 24;
            return h == 0 ? $"{hours / 24}d" : $"{hours / 24}d{h}h";
        }
        if (hours < 24 * 365 * 2) return $"{hours / 24}d";
        if (hours < 24 * 365 * 8)
        {
            var dy = hours / 24 % 365;
            return dy == 0 ? $"{hours / 24 / 365}y" : $"{hours / 24 / 365}y{dy}d";
        }
        return $"{hours / 24 / 365}y";
    }

    private static string Str(JsonNode? n) => n is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";

    private static long Long(JsonNode? n) => n is JsonValue v && v.TryGetValue<long>(out var l) ? l : 0;

    private static string NoneIfEmpty(string s) => s.Length == 0 ? "<none>" : s;

    private static string Unknown(string s) => s.Length == 0 ? "<unknown>" : s;
}
