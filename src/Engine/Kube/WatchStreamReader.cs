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
        var framer = new EventFramer();
        try
        {
            while (true)
            {
                while (true)
                {
                    // The framer remembers how far it scanned, so every byte is looked at once however reads split.
                    var length = framer.Scan(buffer.AsSpan(start, end - start));
                    if (length < 0) break;
                    var ev = ParseEvent(buffer.AsSpan(start + framer.ObjectStart, length - framer.ObjectStart), typeInfo);
                    start += length;
                    framer.Reset();
                    yield return ev;
                }
                if (framer.Scanned == 0 && start == end)
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
                    if (framer.InObject)
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

    /// <summary>
    /// Finds where one top-level JSON object ends: skips whitespace before it, then tracks nesting depth and
    /// string/escape state byte by byte. The object's content is validated later by the JSON parser.
    /// </summary>
    internal struct EventFramer
    {
        private int _depth;
        private bool _inString;
        private bool _escape;

        /// <summary>Bytes of the current window already scanned.</summary>
        public int Scanned { get; private set; }

        /// <summary>Offset of the '{' that opens the event within the window.</summary>
        public int ObjectStart { get; private set; }

        public readonly bool InObject => _depth > 0;

        public void Reset() => this = default;

        /// <summary>Continues scanning <paramref name="window"/> (which starts where the event does); returns the length up to and including the closing '}', or -1 when more bytes are needed.</summary>
        public int Scan(ReadOnlySpan<byte> window)
        {
            for (var i = Scanned; i < window.Length; i++)
            {
                var b = window[i];
                if (_depth == 0)
                {
                    if (b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') continue;
                    if (b != (byte)'{')
                        throw new KubeProtocolException("KubeWatchDecode", $"A watch stream must carry JSON objects; found byte 0x{b:x2}.");
                    ObjectStart = i;
                    _depth = 1;
                    continue;
                }
                if (_inString)
                {
                    if (_escape) _escape = false;
                    else if (b == (byte)'\\') _escape = true;
                    else if (b == (byte)'"') _inString = false;
                    continue;
                }
                switch (b)
                {
                    case (byte)'"':
                        _inString = true;
                        break;
                    case (byte)'{' or (byte)'[':
                        _depth++;
                        break;
                    case (byte)'}' or (byte)']':
                        if (--_depth == 0)
                        {
                            Scanned = i + 1;
                            return i + 1;
                        }
                        break;
                }
            }
            Scanned = window.Length;
            return -1;
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
