using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// The recorded kube-apiserver v1.20 exchanges (tests/Unit/KubeSim/Fixtures/kube-api-v1.20, a copy of
/// shared/fixtures; INDEX.md there explains each file), and a shape comparison for JSON answers.
/// </summary>
internal static class Fixtures
{
    private static string Directory([CallerFilePath] string here = "") => System.IO.Path.Combine(System.IO.Path.GetDirectoryName(here)!, "Fixtures", "kube-api-v1.20");

    /// <summary>The fixture whose file name starts with <paramref name="id"/> + "-" (for example "4a").</summary>
    public static JsonObject Load(string id)
    {
        var file = System.IO.Directory.GetFiles(Directory(), id + "-*.json").Single();
        return (JsonObject)JsonNode.Parse(File.ReadAllText(file))!;
    }

    public static byte[] Raw(string id) => File.ReadAllBytes(System.IO.Directory.GetFiles(Directory(), id + "-*.raw").Single());

    public static JsonNode? ResponseBody(string id) => Load(id)["response"]!["body"]?.DeepClone();

    public static JsonObject RequestBody(string id) => (JsonObject)Load(id)["request"]!["body"]!.DeepClone();

    /// <summary>The request body bytes as curl sent them (compact JSON, or the raw text for non-JSON bodies).</summary>
    public static byte[] RequestBytes(string id)
    {
        var body = Load(id)["request"]!["body"]!;
        return body is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? Encoding.UTF8.GetBytes(v.GetValue<string>())
            : Encoding.UTF8.GetBytes(body.ToJsonString());
    }

    public static string Path(string id) => Load(id)["request"]!["path"]!.GetValue<string>();

    public static string? ContentType(string id) => Load(id)["request"]!["headers"]!["Content-Type"]?.GetValue<string>();

    /// <summary>
    /// Every difference in shape between a recorded answer and ours: missing or extra keys, or a different JSON
    /// kind (string/number/object...), recursively; arrays compared element by element up to the shorter one.
    /// </summary>
    public static List<string> ShapeDifferences(JsonNode? expected, JsonNode? actual, params string[] ignoredKeys)
    {
        var diffs = new List<string>();
        Compare(expected, actual, "$", new HashSet<string>(ignoredKeys.Append("managedFields"), StringComparer.Ordinal), diffs);
        return diffs;
    }

    private static void Compare(JsonNode? e, JsonNode? a, string path, HashSet<string> ignored, List<string> diffs)
    {
        var ek = KindOf(e);
        var ak = KindOf(a);
        if (ek != ak)
        {
            diffs.Add($"{path}: expected {ek}, got {ak}");
            return;
        }
        if (e is JsonObject eo && a is JsonObject ao)
        {
            foreach (var (key, value) in eo)
            {
                if (ignored.Contains(key)) continue;
                if (!ao.TryGetPropertyValue(key, out var av)) diffs.Add($"{path}.{key}: missing");
                else Compare(value, av, path + "." + key, ignored, diffs);
            }
            foreach (var (key, _) in ao)
            {
                if (!ignored.Contains(key) && !eo.ContainsKey(key)) diffs.Add($"{path}.{key}: unexpected");
            }
        }
        else if (e is JsonArray ea && a is JsonArray aa)
        {
            for (var i = 0; i < Math.Min(ea.Count, aa.Count); i++) Compare(ea[i], aa[i], $"{path}[{i}]", ignored, diffs);
        }
    }

    private static string KindOf(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject => "object",
        JsonArray => "array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.True or JsonValueKind.False => "bool",
            var k => k.ToString(),
        },
        _ => "unknown",
    };

    /// <summary>A copy without the values that differ between any two servers (uid, resourceVersion, timestamps).</summary>
    public static JsonNode? WithoutVolatile(JsonNode? node, params string[] more)
    {
        var copy = node?.DeepClone();
        Strip(copy, new HashSet<string>(
            ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "managedFields", "time", "lastTransitionTime", .. more],
            StringComparer.Ordinal));
        return copy;
    }

    private static void Strip(JsonNode? node, HashSet<string> keys)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var k in o.Select(p => p.Key).Where(keys.Contains).ToList()) o.Remove(k);
                foreach (var (_, v) in o) Strip(v, keys);
                break;
            case JsonArray a:
                foreach (var v in a) Strip(v, keys);
                break;
            default:
                break;
        }
    }
}
