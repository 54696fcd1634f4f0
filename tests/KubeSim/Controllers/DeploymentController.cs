using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// The deployment controller, one reconcile pass over every Deployment: a ReplicaSet
/// "&lt;deployment&gt;-&lt;pod-template-hash&gt;" per pod template (label and selector pod-template-hash, revision
/// annotations, a controller ownerReference) scaled to spec.replicas, every older ReplicaSet scaled to 0 at once
/// (a rollout is immediate, not rolling), and the status (observedGeneration, replicas, updated/ready/available/
/// unavailable replicas, conditions Available and Progressing).
/// </summary>
internal sealed class DeploymentController(ObjectStore store, EventRecorder events)
{
    public const string HashLabel = "pod-template-hash";

    public void Reconcile()
    {
        foreach (var d in store.List(ResourceTypes.Deployments, null).Items)
        {
            if (Owners.Deleting(d)) continue;
            ReconcileOne(d);
        }
    }

    private void ReconcileOne(JsonObject d)
    {
        var ns = Owners.Ns(d);
        var name = Owners.Name(d);
        var uid = Owners.Uid(d);
        var spec = d["spec"] as JsonObject ?? [];
        var desired = spec["replicas"]?.GetValue<int>() ?? 1;
        var template = spec["template"] as JsonObject ?? [];
        var hash = TemplateHash(template);
        var rsName = name + "-" + hash;
        var owned = store.List(ResourceTypes.ReplicaSets, ns).Items.Where(rs => Owners.IsControlledBy(rs, uid)).ToList();
        var current = owned.FirstOrDefault(rs => Owners.Name(rs) == rsName);
        var revisions = owned.Select(rs => int.TryParse(rs["metadata"]?["annotations"]?["deployment.kubernetes.io/revision"]?.GetValue<string>(),
            NumberStyles.None, CultureInfo.InvariantCulture, out var r) ? r : 0).DefaultIfEmpty(0).Max();
        var paused = spec["paused"]?.GetValue<bool>() ?? false;
        if (current is null && !paused)
        {
            var rsTemplate = (JsonObject)template.DeepClone();
            var tmeta = ObjectDefaults.Obj(rsTemplate, "metadata");
            var labels = ObjectDefaults.Obj(tmeta, "labels");
            labels[HashLabel] = hash;
            var selector = (JsonObject)(spec["selector"]?.DeepClone() ?? new JsonObject());
            ObjectDefaults.Obj(selector, "matchLabels")[HashLabel] = hash;
            var rs = new JsonObject
            {
                ["metadata"] = new JsonObject
                {
                    ["name"] = rsName,
                    ["labels"] = labels.DeepClone(),
                    ["annotations"] = Annotations(desired, revisions + 1),
                    ["ownerReferences"] = new JsonArray(Owners.ControllerRef(d)),
                },
                ["spec"] = new JsonObject
                {
                    ["replicas"] = desired,
                    ["selector"] = selector,
                    ["template"] = rsTemplate,
                },
            };
            if (spec["minReadySeconds"] is JsonNode mrs) ((JsonObject)rs["spec"]!)["minReadySeconds"] = mrs.DeepClone();
            current = store.Create(ResourceTypes.ReplicaSets, ns, rs);
            owned.Add(current);
            events.Record(d, EventRecorder.Normal, "ScalingReplicaSet", $"Scaled up replica set {rsName} to {desired}", "deployment-controller");
        }
        else if (current is not null && !paused && current["spec"]?["replicas"]?.GetValue<int>() != desired)
        {
            var before = current["spec"]?["replicas"]?.GetValue<int>() ?? 0;
            current = store.Mutate(ResourceTypes.ReplicaSets, ns, rsName, rs =>
            {
                ObjectDefaults.Obj(rs, "spec")["replicas"] = desired;
                ObjectDefaults.Obj(ObjectDefaults.Obj(rs, "metadata"), "annotations")["deployment.kubernetes.io/desired-replicas"] = desired.ToString(CultureInfo.InvariantCulture);
                ObjectDefaults.Obj(ObjectDefaults.Obj(rs, "metadata"), "annotations")["deployment.kubernetes.io/max-replicas"] = MaxReplicas(desired);
                return rs;
            });
            owned[owned.FindIndex(rs => Owners.Name(rs) == rsName)] = current;
            events.Record(d, EventRecorder.Normal, "ScalingReplicaSet",
                $"Scaled {(desired > before ? "up" : "down")} replica set {rsName} to {desired}", "deployment-controller");
        }
        if (!paused)
        {
            for (var i = 0; i < owned.Count; i++)
            {
                var rs = owned[i];
                if (Owners.Name(rs) == rsName || (rs["spec"]?["replicas"]?.GetValue<int>() ?? 0) == 0) continue;
                owned[i] = store.Mutate(ResourceTypes.ReplicaSets, ns, Owners.Name(rs), r =>
                {
                    ObjectDefaults.Obj(r, "spec")["replicas"] = 0;
                    return r;
                });
                events.Record(d, EventRecorder.Normal, "ScalingReplicaSet", $"Scaled down replica set {Owners.Name(rs)} to 0", "deployment-controller");
            }
        }

        // Status from the pods themselves, so it follows readiness without waiting for the ReplicaSet status.
        var pods = store.List(ResourceTypes.Pods, ns).Items.Where(Owners.IsActive).ToList();
        var rsUids = owned.ToDictionary(Owners.Uid, Owners.Name);
        var mine = pods.Where(p => rsUids.Keys.Any(u => Owners.IsControlledBy(p, u))).ToList();
        var updated = current is null ? 0 : mine.Count(p => Owners.IsControlledBy(p, Owners.Uid(current)));
        var ready = mine.Count(Owners.IsReady);
        var total = owned.Sum(rs => rs["spec"]?["replicas"]?.GetValue<int>() ?? 0);
        var unavailable = Math.Max(0, total - ready);
        var maxUnavailable = MaxUnavailable(spec, desired);
        var available = ready >= desired - maxUnavailable;
        var complete = current is not null && updated == desired && ready == desired && mine.Count == desired;
        store.Mutate(ResourceTypes.Deployments, ns, name, dep =>
        {
            if (Owners.Uid(dep) != uid) return dep;
            var old = dep["status"]?["conditions"] as JsonArray;
            var now = store.Timestamp();
            var status = new JsonObject { ["observedGeneration"] = dep["metadata"]?["generation"]?.DeepClone() };
            if (mine.Count > 0) status["replicas"] = mine.Count;
            if (updated > 0) status["updatedReplicas"] = updated;
            if (ready > 0) status["readyReplicas"] = ready;
            if (ready > 0) status["availableReplicas"] = ready;
            if (unavailable > 0) status["unavailableReplicas"] = unavailable;
            status["conditions"] = new JsonArray(
                Owners.KeepTimes(old, Condition("Available", available, available ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                    available ? "Deployment has minimum availability." : "Deployment does not have minimum availability.", now)),
                Owners.KeepTimes(old, Condition("Progressing", true, complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated",
                    complete ? $"ReplicaSet \"{rsName}\" has successfully progressed." : $"ReplicaSet \"{rsName}\" is progressing.", now)));
            dep["status"] = status;
            return dep;
        }, subresource: "status");
    }

    private static JsonObject Condition(string type, bool status, string reason, string message, string now) => new()
    {
        ["type"] = type,
        ["status"] = status ? "True" : "False",
        ["lastUpdateTime"] = now,
        ["lastTransitionTime"] = now,
        ["reason"] = reason,
        ["message"] = message,
    };

    private static JsonObject Annotations(int desired, int revision) => new()
    {
        ["deployment.kubernetes.io/desired-replicas"] = desired.ToString(CultureInfo.InvariantCulture),
        ["deployment.kubernetes.io/max-replicas"] = MaxReplicas(desired),
        ["deployment.kubernetes.io/revision"] = revision.ToString(CultureInfo.InvariantCulture),
    };

    // The default RollingUpdate maxSurge is 25%, rounded up.
    private static string MaxReplicas(int desired) => (desired + (int)Math.Ceiling(desired * 0.25)).ToString(CultureInfo.InvariantCulture);

    private static int MaxUnavailable(JsonObject spec, int desired)
    {
        var value = spec["strategy"]?["rollingUpdate"]?["maxUnavailable"];
        if (value is null) return spec["strategy"]?["type"]?.GetValue<string>() == "Recreate" ? desired : desired / 4;
        if (value.GetValueKind() == System.Text.Json.JsonValueKind.Number) return value.GetValue<int>();
        var text = value.GetValue<string>();
        return text.EndsWith('%') && int.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var pct) ? desired * pct / 100 : 0;
    }

    /// <summary>
    /// pod-template-hash: FNV-1a (32 bit) of the template with sorted keys, its decimal digits encoded with the
    /// alphabet of rand.SafeEncodeString, as the real controller encodes its hash (the hashed bytes differ).
    /// </summary>
    public static string TemplateHash(JsonObject template)
    {
        var text = Canonical(template)!.ToJsonString();
        uint h = 2166136261;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            h ^= b;
            h *= 16777619;
        }
        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        return new string(h.ToString(CultureInfo.InvariantCulture).Select(c => alphabet[c % alphabet.Length]).ToArray());
    }

    private static JsonNode? Canonical(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Canonical(p.Value)))),
        JsonArray a => new JsonArray(a.Select(Canonical).ToArray()),
        _ => node?.DeepClone(),
    };
}
