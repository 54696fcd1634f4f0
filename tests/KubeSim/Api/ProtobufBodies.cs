using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// Decodes the <c>application/vnd.kubernetes.protobuf</c> bodies kubectl's typed clients send (kubectl 1.32 does
/// not fall back to JSON after a 415): the "k8s\0" envelope (runtime.Unknown: typeMeta, raw) and, inside it, the
/// kinds kubectl's generators and auth commands create: Namespace, ConfigMap, Secret, ServiceAccount and
/// SelfSubjectAccessReview, field numbers from k8s.io/api's generated.proto. Any other kind stays a 415.
/// Empty strings, zeros and empty messages are dropped (the Go encoder writes every optional scalar; JSON omits them).
/// </summary>
internal static class ProtobufBodies
{
    public const string MediaType = "application/vnd.kubernetes.protobuf";

    private enum F { Str, Int, Bool, Bytes, Msg, StrMap, BytesMap, StrList, MsgList, Time }

    private sealed record Field(string Name, F Kind, Msg? Type = null);

    private sealed class Msg(Dictionary<int, Field> fields)
    {
        public Dictionary<int, Field> Fields { get; } = fields;
    }

    private static readonly Msg OwnerReference = new(new()
    {
        [1] = new("kind", F.Str), [3] = new("name", F.Str), [4] = new("uid", F.Str), [5] = new("apiVersion", F.Str),
        [6] = new("controller", F.Bool), [7] = new("blockOwnerDeletion", F.Bool),
    });

    private static readonly Msg ObjectMeta = new(new()
    {
        [1] = new("name", F.Str), [2] = new("generateName", F.Str), [3] = new("namespace", F.Str), [4] = new("selfLink", F.Str),
        [5] = new("uid", F.Str), [6] = new("resourceVersion", F.Str), [7] = new("generation", F.Int), [8] = new("creationTimestamp", F.Time),
        [9] = new("deletionTimestamp", F.Time), [10] = new("deletionGracePeriodSeconds", F.Int), [11] = new("labels", F.StrMap),
        [12] = new("annotations", F.StrMap), [13] = new("ownerReferences", F.MsgList, OwnerReference), [14] = new("finalizers", F.StrList),
    });

    private static readonly Msg ObjectReference = new(new()
    {
        [1] = new("kind", F.Str), [2] = new("namespace", F.Str), [3] = new("name", F.Str), [4] = new("uid", F.Str), [5] = new("apiVersion", F.Str),
        [6] = new("resourceVersion", F.Str), [7] = new("fieldPath", F.Str),
    });

    private static readonly Msg LocalObjectReference = new(new() { [1] = new("name", F.Str) });

    private static readonly Dictionary<string, Msg> Kinds = new(StringComparer.Ordinal)
    {
        ["Namespace"] = new(new()
        {
            [1] = new("metadata", F.Msg, ObjectMeta),
            [2] = new("spec", F.Msg, new(new() { [1] = new("finalizers", F.StrList) })),
            [3] = new("status", F.Msg, new(new() { [1] = new("phase", F.Str) })),
        }),
        ["ConfigMap"] = new(new()
        {
            [1] = new("metadata", F.Msg, ObjectMeta), [2] = new("data", F.StrMap), [3] = new("binaryData", F.BytesMap), [4] = new("immutable", F.Bool),
        }),
        ["Secret"] = new(new()
        {
            [1] = new("metadata", F.Msg, ObjectMeta), [2] = new("data", F.BytesMap), [3] = new("type", F.Str), [4] = new("stringData", F.StrMap),
            [5] = new("immutable", F.Bool),
        }),
        ["ServiceAccount"] = new(new()
        {
            [1] = new("metadata", F.Msg, ObjectMeta), [2] = new("secrets", F.MsgList, ObjectReference),
            [3] = new("imagePullSecrets", F.MsgList, LocalObjectReference), [4] = new("automountServiceAccountToken", F.Bool),
        }),
        ["SelfSubjectAccessReview"] = new(new()
        {
            [1] = new("metadata", F.Msg, ObjectMeta),
            [2] = new("spec", F.Msg, new(new()
            {
                [1] = new("resourceAttributes", F.Msg, new(new()
                {
                    [1] = new("namespace", F.Str), [2] = new("verb", F.Str), [3] = new("group", F.Str), [4] = new("version", F.Str),
                    [5] = new("resource", F.Str), [6] = new("subresource", F.Str), [7] = new("name", F.Str),
                })),
                [2] = new("nonResourceAttributes", F.Msg, new(new() { [1] = new("path", F.Str), [2] = new("verb", F.Str) })),
            })),
        }),
    };

    public static bool IsProtobuf(string? contentType) =>
        string.Equals((contentType ?? "").Split(';')[0].Trim(), MediaType, StringComparison.OrdinalIgnoreCase);

    /// <summary>The JSON form of a protobuf body for <paramref name="type"/>, or null when KubeSim cannot decode that kind.</summary>
    public static JsonObject? TryDecode(byte[] body, ResourceType type)
    {
        if (!Kinds.TryGetValue(type.Kind, out var schema)) return null;
        if (body.Length < 4 || body[0] != (byte)'k' || body[1] != (byte)'8' || body[2] != (byte)'s' || body[3] != 0)
        {
            throw KubeApiException.BadRequest("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]");
        }
        try
        {
            string? apiVersion = null, kind = null;
            ReadOnlyMemory<byte> raw = default;
            foreach (var (number, wire, value, _) in Fields(body.AsMemory(4)))
            {
                if (number == 1 && wire == 2)
                {
                    foreach (var (n, w, v, _) in Fields(value))
                    {
                        if (n == 1 && w == 2) apiVersion = Encoding.UTF8.GetString(v.Span);
                        if (n == 2 && w == 2) kind = Encoding.UTF8.GetString(v.Span);
                    }
                }
                else if (number == 2 && wire == 2)
                {
                    raw = value;
                }
            }
            var obj = Decode(raw, schema);
            if (!string.IsNullOrEmpty(kind)) obj["kind"] = kind;
            if (!string.IsNullOrEmpty(apiVersion)) obj["apiVersion"] = apiVersion;
            return ObjectStore.Normalize(obj);
        }
        catch (FormatException e)
        {
            throw KubeApiException.BadRequest("the body of the request was in an unknown format: " + e.Message);
        }
    }

    private static JsonObject Decode(ReadOnlyMemory<byte> data, Msg schema)
    {
        var o = new JsonObject();
        foreach (var (number, wire, value, varint) in Fields(data))
        {
            if (!schema.Fields.TryGetValue(number, out var f)) continue;
            switch (f.Kind)
            {
                case F.Str when wire == 2:
                    var s = Encoding.UTF8.GetString(value.Span);
                    if (s.Length > 0) o[f.Name] = s;
                    break;
                case F.Int when wire == 0:
                    if (varint != 0) o[f.Name] = (long)varint;
                    break;
                case F.Bool when wire == 0:
                    if (varint != 0) o[f.Name] = true;
                    break;
                case F.Msg when wire == 2:
                    var child = Decode(value, f.Type!);
                    if (child.Count > 0) o[f.Name] = child;
                    break;
                case F.Time when wire == 2:
                    long seconds = 0;
                    foreach (var (n, w, _, v) in Fields(value)) if (n == 1 && w == 0) seconds = (long)v;
                    if (seconds != 0) o[f.Name] = ObjectStore.FormatTime(DateTimeOffset.FromUnixTimeSeconds(seconds));
                    break;
                case F.StrList when wire == 2:
                    List(o, f.Name).Add(Encoding.UTF8.GetString(value.Span));
                    break;
                case F.MsgList when wire == 2:
                    List(o, f.Name).Add(Decode(value, f.Type!));
                    break;
                case F.StrMap or F.BytesMap when wire == 2:
                    string key = "", val = "";
                    foreach (var (n, w, v, _) in Fields(value))
                    {
                        if (n == 1 && w == 2) key = Encoding.UTF8.GetString(v.Span);
                        if (n == 2 && w == 2) val = f.Kind == F.StrMap ? Encoding.UTF8.GetString(v.Span) : Convert.ToBase64String(v.Span);
                    }
                    if (o[f.Name] is not JsonObject map) o[f.Name] = map = new JsonObject();
                    map[key] = val;
                    break;
                default:
                    break;
            }
        }
        return o;
    }

    private static JsonArray List(JsonObject o, string name)
    {
        if (o[name] is JsonArray a) return a;
        a = [];
        o[name] = a;
        return a;
    }

    /// <summary>The fields of a protobuf message: number, wire type, the bytes of a length-delimited value, the varint value.</summary>
    private static IEnumerable<(int Number, int Wire, ReadOnlyMemory<byte> Value, ulong Varint)> Fields(ReadOnlyMemory<byte> data)
    {
        var pos = 0;
        while (pos < data.Length)
        {
            var tag = Varint(data.Span, ref pos);
            var number = (int)(tag >> 3);
            var wire = (int)(tag & 7);
            switch (wire)
            {
                case 0:
                    yield return (number, wire, default, Varint(data.Span, ref pos));
                    break;
                case 1:
                    pos += 8;
                    break;
                case 2:
                    var length = (int)Varint(data.Span, ref pos);
                    if (length < 0 || pos + length > data.Length) throw new FormatException("truncated protobuf field " + number.ToString(CultureInfo.InvariantCulture));
                    yield return (number, wire, data.Slice(pos, length), 0);
                    pos += length;
                    break;
                case 5:
                    pos += 4;
                    break;
                default:
                    throw new FormatException("unsupported protobuf wire type " + wire.ToString(CultureInfo.InvariantCulture));
            }
            if (pos > data.Length) throw new FormatException("truncated protobuf message");
        }
    }

    private static ulong Varint(ReadOnlySpan<byte> data, ref int pos)
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (pos >= data.Length) throw new FormatException("truncated varint");
            var b = data[pos++];
            result |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new FormatException("varint too long");
    }
}
