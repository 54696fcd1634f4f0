using System.Text;
using System.Text.Json.Nodes;

namespace KtConnect.Engine.Kube;

public enum KubePatchType
{
    /// <summary>RFC 7386 JSON merge patch: application/merge-patch+json.</summary>
    Merge,

    /// <summary>RFC 6902 JSON patch (an op list): application/json-patch+json.</summary>
    Json,

    /// <summary>Kubernetes strategic merge patch (lists merged by key): application/strategic-merge-patch+json.</summary>
    StrategicMerge,

    /// <summary>Server-side apply: application/apply-patch+yaml (JSON is valid YAML); needs a field manager.</summary>
    Apply,
}

/// <summary>A PATCH body and its type. Build from JSON text or a JsonNode.</summary>
public sealed class KubePatch
{
    private KubePatch(KubePatchType type, byte[] body, string? fieldManager, bool force)
    {
        Type = type;
        Body = body;
        FieldManager = fieldManager;
        Force = force;
    }

    public KubePatchType Type { get; }
    public ReadOnlyMemory<byte> Body { get; }
    public string? FieldManager { get; }
    public bool Force { get; }

    public string ContentType => ContentTypeOf(Type);

    public static string ContentTypeOf(KubePatchType type) => type switch
    {
        KubePatchType.Merge => "application/merge-patch+json",
        KubePatchType.Json => "application/json-patch+json",
        KubePatchType.StrategicMerge => "application/strategic-merge-patch+json",
        KubePatchType.Apply => "application/apply-patch+yaml",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    public static KubePatch Merge(string json) => new(KubePatchType.Merge, Utf8(json), null, false);
    public static KubePatch Merge(JsonNode patch) => new(KubePatchType.Merge, Utf8(Text(patch)), null, false);
    public static KubePatch StrategicMerge(string json) => new(KubePatchType.StrategicMerge, Utf8(json), null, false);
    public static KubePatch StrategicMerge(JsonNode patch) => new(KubePatchType.StrategicMerge, Utf8(Text(patch)), null, false);
    public static KubePatch Json(string json) => new(KubePatchType.Json, Utf8(json), null, false);
    public static KubePatch Json(JsonPatchBuilder ops) => new(KubePatchType.Json, Utf8((ops ?? throw new ArgumentNullException(nameof(ops))).ToJson()), null, false);

    /// <summary>Server-side apply of a full object (JSON or YAML text) owned by <paramref name="fieldManager"/>.</summary>
    public static KubePatch Apply(string document, string fieldManager, bool force = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(fieldManager);
        return new(KubePatchType.Apply, Utf8(document), fieldManager, force);
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s ?? throw new ArgumentNullException(nameof(s)));

    private static string Text(JsonNode node) => (node ?? throw new ArgumentNullException(nameof(node))).ToJsonString();
}

/// <summary>Builds an RFC 6902 operation list. Paths are JSON pointers; use <see cref="Escape"/> for keys with '/' or '~'.</summary>
public sealed class JsonPatchBuilder
{
    private readonly JsonArray _ops = [];

    public int Count => _ops.Count;

    public JsonPatchBuilder Add(string path, JsonNode? value) => Op("add", path, value, true);
    public JsonPatchBuilder Replace(string path, JsonNode? value) => Op("replace", path, value, true);
    public JsonPatchBuilder Test(string path, JsonNode? value) => Op("test", path, value, true);
    public JsonPatchBuilder Remove(string path) => Op("remove", path, null, false);

    public JsonPatchBuilder Move(string from, string path) => FromOp("move", from, path);
    public JsonPatchBuilder Copy(string from, string path) => FromOp("copy", from, path);

    /// <summary>Escapes one pointer segment: '~' becomes ~0 and '/' becomes ~1 (for annotation keys like "kt/selector").</summary>
    public static string Escape(string segment) =>
        (segment ?? throw new ArgumentNullException(nameof(segment))).Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    public string ToJson() => _ops.ToJsonString();

    private JsonPatchBuilder Op(string op, string path, JsonNode? value, bool hasValue)
    {
        ArgumentNullException.ThrowIfNull(path);
        var o = new JsonObject { ["op"] = op, ["path"] = path };
        if (hasValue) o["value"] = value?.DeepClone();
        _ops.Add(o);
        return this;
    }

    private JsonPatchBuilder FromOp(string op, string from, string path)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(path);
        _ops.Add(new JsonObject { ["op"] = op, ["from"] = from, ["path"] = path });
        return this;
    }
}
