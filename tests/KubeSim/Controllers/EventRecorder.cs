using System.Security.Cryptography;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// Writes core/v1 Events the way the controllers and the kubelet do (name "&lt;object&gt;.&lt;16 hex&gt;",
/// involvedObject, source, first/last timestamps, count 1). Repeats are separate events (no aggregation).
/// </summary>
public sealed class EventRecorder(ObjectStore store, string nodeName)
{
    public const string Normal = "Normal";
    public const string Warning = "Warning";

    /// <summary>Records an event about <paramref name="involved"/>; a vanished namespace is ignored.</summary>
    public void Record(JsonObject involved, string type, string reason, string message, string component, string? fieldPath = null)
    {
        var meta = involved["metadata"]!;
        var ns = meta["namespace"]?.GetValue<string>() ?? "default";
        var name = meta["name"]!.GetValue<string>();
        var now = store.Timestamp();
        var reference = new JsonObject
        {
            ["kind"] = involved["kind"]?.DeepClone(),
            ["namespace"] = ns,
            ["name"] = name,
            ["uid"] = meta["uid"]?.DeepClone(),
            ["apiVersion"] = involved["apiVersion"]?.DeepClone(),
            ["resourceVersion"] = meta["resourceVersion"]?.DeepClone(),
        };
        if (fieldPath is not null) reference["fieldPath"] = fieldPath;
        var source = new JsonObject { ["component"] = component };
        if (component == "kubelet") source["host"] = nodeName;
        try
        {
            store.Create(ResourceTypes.Events, ns, new JsonObject
            {
                ["metadata"] = new JsonObject { ["name"] = name + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)) },
                ["involvedObject"] = reference,
                ["reason"] = reason,
                ["message"] = message,
                ["source"] = source,
                ["firstTimestamp"] = now,
                ["lastTimestamp"] = now,
                ["count"] = 1,
                ["type"] = type,
                ["eventTime"] = null,
                ["reportingComponent"] = "",
                ["reportingInstance"] = "",
            });
        }
        catch (KubeApiException)
        {
            // The namespace is going away: nobody will read the event.
        }
    }
}
