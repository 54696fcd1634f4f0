using System.Text;
using System.Text.Json;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>Recorded kube-apiserver v1.20 exchanges: tests/Fixtures/kube-api-v1.20, a copy of shared/fixtures (INDEX.md there explains each file).</summary>
internal static class KubeFixtures
{
    private static readonly Lazy<string> Dir = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "tests", "Fixtures", "kube-api-v1.20");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/Fixtures/kube-api-v1.20 not found above " + AppContext.BaseDirectory);
    });

    public static string PathOf(string file) => Path.Combine(Dir.Value, file);

    public static IEnumerable<string> Files(string pattern) =>
        Directory.EnumerateFiles(Dir.Value, pattern).Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    public static JsonElement Load(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(PathOf(file)));
        return doc.RootElement.Clone();
    }

    public static int Status(JsonElement fixture) => fixture.GetProperty("response").GetProperty("status").GetInt32();

    /// <summary>The response body as bytes: JSON bodies re-serialised compactly with a trailing newline (as the server sends), text as is.</summary>
    public static byte[] Body(JsonElement fixture)
    {
        var body = fixture.GetProperty("response").GetProperty("body");
        return body.ValueKind switch
        {
            JsonValueKind.String => Encoding.UTF8.GetBytes(body.GetString()!),
            JsonValueKind.Null => [],
            _ => Encoding.UTF8.GetBytes(body.GetRawText() + "\n"),
        };
    }

    public static byte[] Hex(string hex) => Convert.FromHexString(hex);

    /// <summary>Decodes HTTP/1.1 chunked framing (test-side reference decoder).</summary>
    public static byte[] Dechunk(byte[] raw)
    {
        var output = new MemoryStream();
        var i = 0;
        while (true)
        {
            var lineEnd = IndexOfCrlf(raw, i);
            var size = Convert.ToInt32(Encoding.ASCII.GetString(raw, i, lineEnd - i).Split(';')[0], 16);
            i = lineEnd + 2;
            if (size == 0) break;
            output.Write(raw, i, size);
            i += size + 2;
        }
        return output.ToArray();
    }

    private static int IndexOfCrlf(byte[] b, int from)
    {
        for (var i = from; i + 1 < b.Length; i++)
        {
            if (b[i] == '\r' && b[i + 1] == '\n') return i;
        }
        throw new InvalidDataException("no CRLF");
    }

    /// <summary>
    /// Structural JSON equality, ignoring property order. A property whose value is null counts as absent: the
    /// API server treats them alike (it writes "creationTimestamp": null in pod templates) and we omit nulls.
    /// </summary>
    public static bool JsonEquals(JsonElement a, JsonElement b)
    {
        if (a.ValueKind != b.ValueKind) return false;
        switch (a.ValueKind)
        {
            case JsonValueKind.Object:
                var pa = a.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null).ToDictionary(p => p.Name, p => p.Value);
                var pb = b.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null).ToDictionary(p => p.Name, p => p.Value);
                return pa.Count == pb.Count && pa.All(kv => pb.TryGetValue(kv.Key, out var v) && JsonEquals(kv.Value, v));
            case JsonValueKind.Array:
                var ea = a.EnumerateArray().ToArray();
                var eb = b.EnumerateArray().ToArray();
                return ea.Length == eb.Length && ea.Zip(eb).All(x => JsonEquals(x.First, x.Second));
            case JsonValueKind.String:
                return a.GetString() == b.GetString();
            case JsonValueKind.Number:
                return a.GetRawText() == b.GetRawText() || a.GetDecimal() == b.GetDecimal();
            default:
                return a.GetRawText() == b.GetRawText();
        }
    }
}
