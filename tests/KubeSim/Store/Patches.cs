using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// The three PATCH flavours of the API server, on JSON trees: RFC 7386 merge patch, RFC 6902 JSON patch and
/// Kubernetes' strategic merge patch (lists merged by their patchMergeKey; <c>$patch: delete/replace</c>,
/// <c>$retainKeys</c> ignored, <c>$deleteFromPrimitiveList</c>, <c>$setElementOrder</c> skipped).
/// </summary>
public static class Patches
{
    /// <summary>RFC 7386: objects merge recursively, null deletes, anything else replaces.</summary>
    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject po) return patch?.DeepClone();
        var result = target as JsonObject is { } to ? (JsonObject)to.DeepClone() : [];
        foreach (var (key, value) in po)
        {
            if (value is null) result.Remove(key);
            else result[key] = MergePatch(result[key], value);
        }
        return result;
    }

    /// <summary>RFC 6902. A failed <c>test</c> or a bad path throws the generic 422 the real server gives (3g).</summary>
    public static JsonNode? JsonPatch(JsonNode? target, JsonArray operations)
    {
        var doc = target?.DeepClone();
        foreach (var opNode in operations)
        {
            if (opNode is not JsonObject op) throw KubeApiException.InvalidGeneric();
            var name = op["op"]?.GetValue<string>();
            var path = op["path"]?.GetValue<string>() ?? throw KubeApiException.InvalidGeneric();
            switch (name)
            {
                case "add":
                    doc = Add(doc, path, Required(op, "value")?.DeepClone());
                    break;
                case "remove":
                    doc = Remove(doc, path, out _);
                    break;
                case "replace":
                    doc = Remove(doc, path, out _);
                    doc = Add(doc, path, Required(op, "value")?.DeepClone());
                    break;
                case "move":
                    {
                        var from = op["from"]?.GetValue<string>() ?? throw KubeApiException.InvalidGeneric();
                        doc = Remove(doc, from, out var moved);
                        doc = Add(doc, path, moved);
                        break;
                    }
                case "copy":
                    {
                        var from = op["from"]?.GetValue<string>() ?? throw KubeApiException.InvalidGeneric();
                        doc = Add(doc, path, Resolve(doc, from)?.DeepClone());
                        break;
                    }
                case "test":
                    if (!JsonNode.DeepEquals(Resolve(doc, path), Required(op, "value"))) throw KubeApiException.InvalidGeneric();
                    break;
                default:
                    throw KubeApiException.InvalidGeneric();
            }
        }
        return doc;
    }

    private static JsonNode? Required(JsonObject op, string key) =>
        op.TryGetPropertyValue(key, out var v) ? v : throw KubeApiException.InvalidGeneric();

    private static List<string> Pointer(string path)
    {
        if (path.Length == 0) return [];
        if (path[0] != '/') throw KubeApiException.InvalidGeneric();
        return path[1..].Split('/').Select(s => s.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToList();
    }

    private static JsonNode? Resolve(JsonNode? doc, string path)
    {
        var node = doc;
        foreach (var seg in Pointer(path))
        {
            node = node switch
            {
                JsonObject o when o.TryGetPropertyValue(seg, out var v) => v,
                JsonArray a when int.TryParse(seg, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count => a[i],
                _ => throw KubeApiException.InvalidGeneric(),
            };
        }
        return node;
    }

    private static JsonNode? Add(JsonNode? doc, string path, JsonNode? value)
    {
        var segs = Pointer(path);
        if (segs.Count == 0) return value;
        var parent = segs.Count == 1 ? doc : Resolve(doc, "/" + string.Join('/', segs.Take(segs.Count - 1).Select(Escape)));
        var last = segs[^1];
        switch (parent)
        {
            case JsonObject o:
                o[last] = value;
                break;
            case JsonArray a:
                if (last == "-") a.Add(value);
                else if (int.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i <= a.Count) a.Insert(i, value);
                else throw KubeApiException.InvalidGeneric();
                break;
            default:
                throw KubeApiException.InvalidGeneric();
        }
        return doc;
    }

    private static JsonNode? Remove(JsonNode? doc, string path, out JsonNode? removed)
    {
        var segs = Pointer(path);
        if (segs.Count == 0) throw KubeApiException.InvalidGeneric();
        var parent = segs.Count == 1 ? doc : Resolve(doc, "/" + string.Join('/', segs.Take(segs.Count - 1).Select(Escape)));
        var last = segs[^1];
        switch (parent)
        {
            case JsonObject o when o.TryGetPropertyValue(last, out var v):
                o.Remove(last);
                removed = v;
                break;
            case JsonArray a when int.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < a.Count:
                removed = a[i];
                a.RemoveAt(i);
                break;
            default:
                throw KubeApiException.InvalidGeneric();
        }
        return doc;
    }

    private static string Escape(string s) => s.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    // ------------------------------------------------------------------ strategic merge patch

    /// <summary>The patchMergeKey of the lists KtConnect patches (from the Kubernetes API types' struct tags).</summary>
    private static readonly Dictionary<string, string> MergeKeys = new(StringComparer.Ordinal)
    {
        ["containers"] = "name",
        ["initContainers"] = "name",
        ["ephemeralContainers"] = "name",
        ["env"] = "name",
        ["volumes"] = "name",
        ["volumeMounts"] = "mountPath",
        ["volumeDevices"] = "devicePath",
        ["imagePullSecrets"] = "name",
        ["hostAliases"] = "ip",
        ["conditions"] = "type",
        ["ownerReferences"] = "uid",
        ["topologySpreadConstraints"] = "topologyKey",
        ["addresses"] = "type",
        ["taints"] = "key",
    };

    /// <summary>Lists whose "ports" are merged by "port" (Service) vs "containerPort" (containers).</summary>
    private static string? MergeKeyFor(string field, JsonArray patchList, JsonArray? original)
    {
        if (field == "ports")
        {
            var sample = patchList.OfType<JsonObject>().FirstOrDefault() ?? original?.OfType<JsonObject>().FirstOrDefault();
            if (sample is null) return null;
            return sample.ContainsKey("containerPort") ? "containerPort" : "port";
        }
        if (field == "finalizers") return null;
        return MergeKeys.GetValueOrDefault(field);
    }

    /// <summary>Strategic merge patch over a whole object.</summary>
    public static JsonNode? StrategicMergePatch(JsonNode? target, JsonNode? patch) => StrategicMerge(target, patch);

    private static JsonNode? StrategicMerge(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject po) return patch?.DeepClone();
        if (po["$patch"]?.GetValue<string>() == "replace")
        {
            var replaced = (JsonObject)po.DeepClone();
            replaced.Remove("$patch");
            return replaced;
        }
        if (po["$patch"]?.GetValue<string>() == "delete") return null;
        var result = target is JsonObject to ? (JsonObject)to.DeepClone() : [];
        foreach (var (key, value) in po)
        {
            if (key.StartsWith("$setElementOrder/", StringComparison.Ordinal) || key == "$retainKeys") continue;
            if (key.StartsWith("$deleteFromPrimitiveList/", StringComparison.Ordinal))
            {
                var listName = key["$deleteFromPrimitiveList/".Length..];
                if (result[listName] is JsonArray prim && value is JsonArray del)
                {
                    foreach (var item in prim.Where(i => del.Any(d => JsonNode.DeepEquals(d, i))).ToList()) prim.Remove(item);
                }
                continue;
            }
            if (value is null)
            {
                result.Remove(key);
                continue;
            }
            if (value is JsonArray pa)
            {
                var mk = MergeKeyFor(key, pa, result[key] as JsonArray);
                if (mk is not null || IsPrimitiveMergeList(key))
                {
                    result[key] = MergeList(result[key] as JsonArray, pa, mk);
                    continue;
                }
                result[key] = pa.DeepClone();
                continue;
            }
            var merged = StrategicMerge(result[key], value);
            if (merged is null) result.Remove(key);
            else result[key] = merged;
        }
        return result;
    }

    private static bool IsPrimitiveMergeList(string field) => field is "finalizers";

    private static JsonArray MergeList(JsonArray? original, JsonArray patch, string? mergeKey)
    {
        var result = original is null ? new JsonArray() : (JsonArray)original.DeepClone();
        if (patch.Any(p => p is JsonObject o && o["$patch"]?.GetValue<string>() == "replace"))
        {
            return new JsonArray(patch.Where(p => !(p is JsonObject o && o.ContainsKey("$patch"))).Select(p => p?.DeepClone()).ToArray());
        }
        if (mergeKey is null)
        {
            // Primitive merge list (finalizers): union keeping order.
            foreach (var p in patch)
            {
                if (!result.Any(r => JsonNode.DeepEquals(r, p))) result.Add(p?.DeepClone());
            }
            return result;
        }
        // The real merge orders the patch's items first (in patch order), then the items only the server had (3c).
        var merged = new JsonArray();
        var used = new HashSet<JsonNode>(ReferenceEqualityComparer.Instance);
        foreach (var p in patch)
        {
            if (p is not JsonObject po)
            {
                merged.Add(p?.DeepClone());
                continue;
            }
            var keyValue = po[mergeKey];
            var existing = result.OfType<JsonObject>().FirstOrDefault(r => !used.Contains(r) && JsonNode.DeepEquals(r[mergeKey], keyValue));
            if (existing is not null) used.Add(existing);
            if (po["$patch"]?.GetValue<string>() == "delete") continue;
            merged.Add(StrategicMerge(existing, po));
        }
        foreach (var r in result)
        {
            if (r is null || !used.Contains(r)) merged.Add(r?.DeepClone());
        }
        return merged;
    }

    /// <summary>Parses a JSON body the way the PATCH handler needs (null for malformed).</summary>
    public static JsonNode? TryParse(byte[] body)
    {
        try
        {
            return KubeJson.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
