using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// The replicaset controller, one reconcile pass: creates pods "&lt;rs&gt;-&lt;5 random&gt;" from the template (its labels
/// and annotations, a controller ownerReference) until spec.replicas are active, deletes the surplus (not ready
/// first, then the newest), and reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas and
/// observedGeneration.
/// </summary>
internal sealed class ReplicaSetController(ObjectStore store, EventRecorder events)
{
    public void Reconcile()
    {
        foreach (var rs in store.List(ResourceTypes.ReplicaSets, null).Items)
        {
            if (Owners.Deleting(rs)) continue;
            ReconcileOne(rs);
        }
    }

    private void ReconcileOne(JsonObject rs)
    {
        var ns = Owners.Ns(rs);
        var name = Owners.Name(rs);
        var uid = Owners.Uid(rs);
        var desired = rs["spec"]?["replicas"]?.GetValue<int>() ?? 1;
        var template = rs["spec"]?["template"] as JsonObject ?? [];
        var pods = store.List(ResourceTypes.Pods, ns).Items.Where(p => Owners.IsControlledBy(p, uid) && Owners.IsActive(p)).ToList();
        for (var i = pods.Count; i < desired; i++)
        {
            var tmeta = template["metadata"] as JsonObject ?? [];
            var meta = new JsonObject { ["generateName"] = name + "-" };
            if (tmeta["labels"] is JsonNode l) meta["labels"] = l.DeepClone();
            if (tmeta["annotations"] is JsonNode a) meta["annotations"] = a.DeepClone();
            meta["ownerReferences"] = new JsonArray(Owners.ControllerRef(rs));
            var pod = store.Create(ResourceTypes.Pods, ns, new JsonObject
            {
                ["metadata"] = meta,
                ["spec"] = template["spec"]?.DeepClone() ?? new JsonObject(),
            });
            pods.Add(pod);
            events.Record(rs, EventRecorder.Normal, "SuccessfulCreate", "Created pod: " + Owners.Name(pod), "replicaset-controller");
        }
        if (pods.Count > desired)
        {
            var victims = pods.OrderBy(p => Owners.IsReady(p) ? 1 : 0)
                .ThenByDescending(p => p["metadata"]?["creationTimestamp"]?.GetValue<string>(), StringComparer.Ordinal)
                .ThenByDescending(p => long.Parse(p["metadata"]!["resourceVersion"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture))
                .Take(pods.Count - desired).ToList();
            foreach (var p in victims)
            {
                try
                {
                    store.Delete(ResourceTypes.Pods, ns, Owners.Name(p));
                    events.Record(rs, EventRecorder.Normal, "SuccessfulDelete", "Deleted pod: " + Owners.Name(p), "replicaset-controller");
                }
                catch (KubeApiException e) when (e.Code == 404)
                {
                    // Already gone.
                }
                pods.Remove(p);
            }
        }
        var selector = Owners.Selector(template["metadata"]?["labels"] is JsonObject tl ? new JsonObject { ["matchLabels"] = tl.DeepClone() } : null);
        var ready = pods.Count(Owners.IsReady);
        var labeled = selector is null ? pods.Count : pods.Count(selector.Matches);
        store.Mutate(ResourceTypes.ReplicaSets, ns, name, r =>
        {
            if (Owners.Uid(r) != uid) return r;
            var status = new JsonObject { ["replicas"] = pods.Count };
            if (labeled > 0) status["fullyLabeledReplicas"] = labeled;
            if (ready > 0)
            {
                status["readyReplicas"] = ready;
                status["availableReplicas"] = ready;
            }
            status["observedGeneration"] = r["metadata"]?["generation"]?.DeepClone();
            r["status"] = status;
            return r;
        }, subresource: "status");
    }
}
