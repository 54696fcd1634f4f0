using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using KtConnect.Engine.Kube.Json;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

/// <summary>
/// Decodes a watch response body: a sequence of JSON objects <c>{"type":...,"object":{...}}</c>. The API server
/// writes one per chunk followed by '\n', but nothing here relies on that: objects are found with a streaming
/// JSON reader over a pooled buffer, so pretty-printed or arbitrarily split input decodes the same.
/// </summary>
public static class WatchStreamReader
{
    private const int InitialBuffer = 64 * 1024;

    /// <summary>Largest single event accepted; a larger one is a broken stream, not a pod.</summary>
    public const int MaxEventBytes = 64 * 1024 * 1024;

    public static async IAsyncEnumerable<WatchEvent<T>> ReadAsync<T>(Stream stream, JsonTypeInfo<T> typeInfo,
        [EnumeratorCancellation] CancellationToken cancellationToken = default) where T : KubeObject
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(typeInfo);
        var buffer = ArrayPool<byte>.Shared.Rent(InitialBuffer);
        var start = 0;
        var end = 0;
        try
        {
            while (true)
            {
                while (true)
                {
                    start += SkipWhitespace(buffer.AsSpan(start, end - start));
                    if (start == end) break;
                    var length = FindEvent(buffer.AsSpan(start, end - start));
                    if (length == 0) break;
                    var ev = ParseEvent(buffer.AsSpan(start, length), typeInfo);
                    start += length;
                    yield return ev;
                }
                if (start == end)
                {
                    start = end = 0;
                }
                else if (start > 0)
                {
                    Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                    end -= start;
                    start = 0;
                }
                if (end == buffer.Length)
                {
                    if (buffer.Length >= MaxEventBytes)
                        throw new KubeProtocolException("KubeWatchDecode", $"A watch event is larger than {MaxEventBytes} bytes.");
                    var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    Buffer.BlockCopy(buffer, 0, bigger, 0, end);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var n = await stream.ReadAsync(buffer.AsMemory(end), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    if (end - start > 0)
                        throw new KubeProtocolException("KubeWatchDecode", $"The watch stream ended inside an event ({end - start} bytes left over).");
                    yield break;
                }
                end += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static int SkipWhitespace(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length && data[i] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') i++;
        return i;
    }

    /// <summary>Length of the complete JSON object at the start of <paramref name="data"/>, or 0 when more bytes are needed.</summary>
    internal static int FindEvent(ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data, isFinalBlock: false, state: default);
        try
        {
            if (!reader.Read()) return 0;
            if (reader.TokenType != JsonTokenType.StartObject)
                throw new KubeProtocolException("KubeWatchDecode", "A watch stream must carry JSON objects; found " + reader.TokenType + ".");
            return reader.TrySkip() ? checked((int)reader.BytesConsumed) : 0;
        }
        catch (JsonException ex)
        {
            throw new KubeProtocolException("KubeWatchDecode", "The watch stream is not valid JSON: " + ex.Message, ex);
        }
    }

    /// <summary>Decodes one complete event.</summary>
    public static WatchEvent<T> ParseEvent<T>(ReadOnlySpan<byte> json, JsonTypeInfo<T> typeInfo) where T : KubeObject
    {
        ArgumentNullException.ThrowIfNull(typeInfo);
        string? type = null;
        var objectStart = -1;
        var objectEnd = -1;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw new KubeProtocolException("KubeWatchDecode", "A watch event must be a JSON object.");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    type = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else if (reader.ValueTextEquals("object"u8))
                {
                    reader.Read();
                    objectStart = checked((int)reader.TokenStartIndex);
                    reader.Skip();
                    objectEnd = checked((int)reader.BytesConsumed);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            if (objectStart < 0 || json[objectStart] != (byte)'{')
                throw new KubeProtocolException("KubeWatchDecode", $"A watch event of type {type ?? "(none)"} has no object.");
            var obj = json[objectStart..objectEnd];
            switch (type)
            {
                case "ADDED": return new(WatchEventType.Added, Deserialize(obj, typeInfo));
                case "MODIFIED": return new(WatchEventType.Modified, Deserialize(obj, typeInfo));
                case "DELETED": return new(WatchEventType.Deleted, Deserialize(obj, typeInfo));
                case "BOOKMARK": return new(WatchEventType.Bookmark, Deserialize(obj, typeInfo));
                case "ERROR":
                    var status = JsonSerializer.Deserialize(obj, KubeJsonContext.Default.KubeStatus)
                        ?? throw new KubeProtocolException("KubeWatchDecode", "An ERROR watch event carries no Status.");
                    return new(WatchEventType.Error, null, status);
                default:
                    throw new KubeProtocolException("KubeWatchDecode", $"Unknown watch event type \"{type}\".");
            }
        }
        catch (JsonException ex)
        {
            throw new KubeProtocolException("KubeWatchDecode", "A watch event could not be decoded: " + ex.Message, ex);
        }
    }

    private static T Deserialize<T>(ReadOnlySpan<byte> json, JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.Deserialize(json, typeInfo) ?? throw new KubeProtocolException("KubeWatchDecode", "A watch event's object is null.");
}
