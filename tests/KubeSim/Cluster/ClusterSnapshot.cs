using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Cluster;

/// <summary>What changed between two snapshots: object keys ("Kind ns/name") added, removed and changed.</summary>
public sealed record ClusterDiff(IReadOnlyList<string> Added, IReadOnlyList<string> Removed, IReadOnlyList<string> Changed)
{
    public bool IsEmpty => Added.Count == 0 && Removed.Count == 0 && Changed.Count == 0;

    public override string ToString() =>
        string.Join("\n", Added.Select(k => "+ " + k).Concat(Removed.Select(k => "- " + k)).Concat(Changed.Select(k => "~ " + k)));
}

/// <summary>
/// The cluster's namespaced objects at one moment, without the fields that change on their own
/// (resourceVersion, managedFields, timestamps in metadata and status, container ids); Events and Leases are left
/// out unless asked for. <see cref="Diff"/> names what another snapshot added, removed or changed.
/// </summary>
public sealed class ClusterSnapshot
{
    private static readonly HashSet<string> Volatile = new(StringComparer.Ordinal)
    {
        "resourceVersion", "managedFields", "creationTimestamp", "lastTransitionTime", "lastUpdateTime", "lastProbeTime", "lastHeartbeatTime",
        "startTime", "startedAt", "finishedAt", "containerID", "imageID",
    };

    private ClusterSnapshot(IReadOnlyDictionary<string, JsonObject> objects) => Objects = objects;

    /// <summary>Key "Kind namespace/name" → the object without volatile fields.</summary>
    public IReadOnlyDictionary<string, JsonObject> Objects { get; }

    /// <summary>Takes a snapshot of every namespaced object (only <paramref name="namespace"/>'s when given).</summary>
    public static ClusterSnapshot Take(ObjectStore store, string? @namespace = null, bool includeEvents = false)
    {
        var objects = new SortedDictionary<string, JsonObject>(StringComparer.Ordinal);
        foreach (var (type, obj) in store.Snapshot())
        {
            if (!type.Namespaced) continue;
            if (!includeEvents && (type == ResourceTypes.Events || type == ResourceTypes.Leases)) continue;
            var ns = obj["metadata"]?["namespace"]?.GetValue<string>();
            if (@namespace is not null && ns != @namespace) continue;
            var clean = (JsonObject)obj.DeepClone();
            Strip(clean);
            objects[$"{type.Kind} {ns}/{obj["metadata"]?["name"]}"] = clean;
        }
        return new ClusterSnapshot(objects);
    }

    /// <summary>What <paramref name="after"/> has that this snapshot has not, the reverse, and what differs.</summary>
    public ClusterDiff Diff(ClusterSnapshot after) => new(
        [.. after.Objects.Keys.Where(k => !Objects.ContainsKey(k))],
        [.. Objects.Keys.Where(k => !after.Objects.ContainsKey(k))],
        [.. Objects.Keys.Where(k => after.Objects.TryGetValue(k, out var o) && !JsonNode.DeepEquals(o, Objects[k]))]);

    private static void Strip(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(p => p.Key).Where(Volatile.Contains).ToList()) o.Remove(key);
                foreach (var (_, v) in o) Strip(v);
                break;
            case JsonArray a:
                foreach (var v in a) Strip(v);
                break;
        }
    }
}
