using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace KtConnect.KubeSim.Cluster;

/// <summary>
/// Manifest text as objects: a JSON object, a JSON or YAML `kind: List` (its items), or YAML documents separated by
/// `---`. YAML plain scalars become numbers, booleans and null where they read as such (YAML 1.2 core schema);
/// quoted scalars stay strings, as kubectl reads them.
/// </summary>
public static class Manifests
{
    public static IReadOnlyList<JsonObject> Parse(string text)
    {
        var trimmed = text.TrimStart();
        var docs = new List<JsonNode?>();
        if (trimmed.StartsWith('{') || trimmed.StartsWith('['))
        {
            docs.Add(JsonNode.Parse(text));
        }
        else
        {
            var stream = new YamlStream();
            try
            {
                stream.Load(new StringReader(text));
            }
            catch (YamlException e)
            {
                throw new FormatException("the manifest is not valid YAML: " + e.Message, e);
            }
            docs.AddRange(stream.Documents.Select(d => ToJson(d.RootNode)));
        }
        var result = new List<JsonObject>();
        foreach (var doc in docs)
        {
            switch (doc)
            {
                case JsonObject o when o["kind"]?.GetValue<string>() == "List":
                    result.AddRange((o["items"] as JsonArray ?? []).OfType<JsonObject>().Select(i => (JsonObject)i.DeepClone()));
                    break;
                case JsonObject o:
                    result.Add(o);
                    break;
                case JsonArray a:
                    result.AddRange(a.OfType<JsonObject>().Select(i => (JsonObject)i.DeepClone()));
                    break;
                case null:
                    break;
                default:
                    throw new FormatException("a manifest document must be an object");
            }
        }
        return result;
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode s => new JsonArray([.. s.Children.Select(ToJson)]),
        YamlScalarNode sc => Scalar(sc),
        _ => null,
    };

    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style is not (ScalarStyle.Plain or ScalarStyle.Any)) return JsonValue.Create(v);
        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL": return null;
            case "true" or "True" or "TRUE": return JsonValue.Create(true);
            case "false" or "False" or "FALSE": return JsonValue.Create(false);
        }
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && v.Any(char.IsDigit) && !v.Contains(':', StringComparison.Ordinal))
            return JsonValue.Create(d);
        return JsonValue.Create(v);
    }
}
