using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>Small helpers the workload controllers share: owner references, labels, pod readiness, timestamps.</summary>
internal static class Owners
{
    public static string Ns(JsonObject o) => o["metadata"]!["namespace"]!.GetValue<string>();

    public static string Name(JsonObject o) => o["metadata"]!["name"]!.GetValue<string>();

    public static string Uid(JsonObject o) => o["metadata"]!["uid"]!.GetValue<string>();

    public static bool Deleting(JsonObject o) => o["metadata"]?["deletionTimestamp"] is not null;

    /// <summary>The ownerReference a controller puts on what it creates (controller, blockOwnerDeletion).</summary>
    public static JsonObject ControllerRef(JsonObject owner) => new()
    {
        ["apiVersion"] = owner["apiVersion"]!.DeepClone(),
        ["kind"] = owner["kind"]!.DeepClone(),
        ["name"] = Name(owner),
        ["uid"] = Uid(owner),
        ["controller"] = true,
        ["blockOwnerDeletion"] = true,
    };

    public static bool IsControlledBy(JsonObject o, string ownerUid) =>
        (o["metadata"]?["ownerReferences"] as JsonArray ?? []).OfType<JsonObject>()
            .Any(r => r["uid"]?.GetValue<string>() == ownerUid && (r["controller"]?.GetValue<bool>() ?? false));

    public static bool IsReady(JsonObject pod) =>
        (pod["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>()
            .Any(c => c["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True");

    /// <summary>Pods that count for a ReplicaSet: not being deleted, not finished.</summary>
    public static bool IsActive(JsonObject pod) =>
        !Deleting(pod) && pod["status"]?["phase"]?.GetValue<string>() is not ("Succeeded" or "Failed");

    /// <summary>A label selector (matchLabels + matchExpressions) as a <see cref="LabelSelector"/>; null selector matches nothing.</summary>
    public static LabelSelector? Selector(JsonNode? selector) =>
        selector is JsonObject s ? LabelSelector.Parse(LabelSelector.Format(s)) : null;

    /// <summary>A plain label map (Service.spec.selector) as a selector; empty map or none → null.</summary>
    public static LabelSelector? MapSelector(JsonNode? map)
    {
        if (map is not JsonObject m || m.Count == 0) return null;
        return LabelSelector.Parse(string.Join(",", m.Select(kv => kv.Key + "=" + kv.Value?.GetValue<string>())));
    }

    /// <summary>Keeps a condition's timestamps while its status, reason and message stay the same.</summary>
    public static JsonObject KeepTimes(JsonArray? old, JsonObject condition)
    {
        var previous = (old ?? []).OfType<JsonObject>().FirstOrDefault(c => c["type"]?.GetValue<string>() == condition["type"]!.GetValue<string>());
        if (previous is null) return condition;
        var same = previous["status"]?.GetValue<string>() == condition["status"]?.GetValue<string>();
        var sameText = same && previous["reason"]?.GetValue<string>() == condition["reason"]?.GetValue<string>()
            && previous["message"]?.GetValue<string>() == condition["message"]?.GetValue<string>();
        if (sameText && previous["lastUpdateTime"] is JsonNode u) condition["lastUpdateTime"] = u.DeepClone();
        if (same && previous["lastTransitionTime"] is JsonNode t) condition["lastTransitionTime"] = t.DeepClone();
        return condition;
    }
}
