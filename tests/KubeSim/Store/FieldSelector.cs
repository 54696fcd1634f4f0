using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// Field selectors: comma-separated <c>path=value</c>, <c>path==value</c>, <c>path!=value</c> over dotted JSON
/// paths (metadata.name, metadata.namespace, status.phase, spec.nodeName, type, involvedObject.name, ...).
/// A missing field compares as the empty string, as the real field sets do.
/// </summary>
public sealed class FieldSelector
{
    private readonly List<(string Path, bool Equal, string Value)> _terms;

    private FieldSelector(List<(string, bool, string)> terms) => _terms = terms;

    public static FieldSelector Everything { get; } = new([]);

    public bool IsEmpty => _terms.Count == 0;

    public static FieldSelector Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return Everything;
        var terms = new List<(string, bool, string)>();
        foreach (var part in SplitUnescaped(text, ','))
        {
            if (part.Length == 0) continue;
            int idx;
            string path, value;
            bool equal;
            if ((idx = part.IndexOf("!=", StringComparison.Ordinal)) > 0)
            {
                path = part[..idx];
                value = part[(idx + 2)..];
                equal = false;
            }
            else if ((idx = part.IndexOf("==", StringComparison.Ordinal)) > 0)
            {
                path = part[..idx];
                value = part[(idx + 2)..];
                equal = true;
            }
            else if ((idx = part.IndexOf('=', StringComparison.Ordinal)) > 0)
            {
                path = part[..idx];
                value = part[(idx + 1)..];
                equal = true;
            }
            else
            {
                throw KubeApiException.BadRequest($"invalid selector: '{text}'; can't understand '{part}'");
            }
            terms.Add((path.Trim(), equal, Unescape(value)));
        }
        return new FieldSelector(terms);
    }

    public bool Matches(JsonObject obj)
    {
        foreach (var (path, equal, value) in _terms)
        {
            var actual = Lookup(obj, path);
            if (string.Equals(actual, value, StringComparison.Ordinal) != equal) return false;
        }
        return true;
    }

    private static string Lookup(JsonObject obj, string path)
    {
        JsonNode? node = obj;
        foreach (var seg in path.Split('.'))
        {
            node = node is JsonObject o ? o[seg] : null;
            if (node is null) return "";
        }
        return node is JsonValue v
            ? v.GetValueKind() switch
            {
                JsonValueKind.String => v.GetValue<string>(),
                JsonValueKind.True => "true",
                JsonValueKind.False => "false",
                _ => v.ToJsonString(),
            }
            : "";
    }

    private static List<string> SplitUnescaped(string s, char sep)
    {
        var parts = new List<string>();
        var sb = new StringBuilder();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                sb.Append(s[i]).Append(s[i + 1]);
                i++;
            }
            else if (s[i] == sep)
            {
                parts.Add(sb.ToString());
                sb.Clear();
            }
            else
            {
                sb.Append(s[i]);
            }
        }
        parts.Add(sb.ToString());
        return parts;
    }

    private static string Unescape(string s)
    {
        if (!s.Contains('\\', StringComparison.Ordinal)) return s;
        var sb = new StringBuilder();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length) i++;
            sb.Append(s[i]);
        }
        return sb.ToString();
    }
}
