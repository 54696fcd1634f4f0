using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// JSON as the Go API server writes it: compact, escaping only what encoding/json escapes (", \, control
/// characters, &lt; &gt; &amp;, U+2028/U+2029) and leaving other non-ASCII text as UTF-8.
/// </summary>
public static class KubeJson
{
    public static JsonSerializerOptions Options { get; } = new() { Encoder = GoJsonEncoder.Instance, WriteIndented = false };

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = GoJsonEncoder.Instance, Indented = false, SkipValidation = true };

    /// <summary>Compact JSON followed by '\n', as every JSON body and watch event line of the real server.</summary>
    public static byte[] ToBytesWithNewline(JsonNode node)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            node.WriteTo(w);
        }
        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    public static string ToJson(JsonNode node) => node.ToJsonString(Options);

    /// <summary>Parses a request body; a malformed body throws <see cref="JsonException"/>.</summary>
    public static JsonNode? Parse(ReadOnlySpan<byte> body) =>
        JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = false, MaxDepth = 256 });
}

/// <summary>An encoder reproducing Go's encoding/json escaping, so bodies compare byte for byte with the fixtures.</summary>
internal sealed class GoJsonEncoder : JavaScriptEncoder
{
    public static readonly GoJsonEncoder Instance = new();

    public override int MaxOutputCharactersPerInputCharacter => 6;

    public override bool WillEncode(int unicodeScalar) =>
        unicodeScalar < 0x20 || unicodeScalar is '"' or '\\' or '<' or '>' or '&' or 0x2028 or 0x2029;

    public override unsafe int FindFirstCharacterToEncode(char* text, int textLength)
    {
        for (var i = 0; i < textLength; i++)
        {
            var c = text[i];
            if (c < 0x20 || c is '"' or '\\' or '<' or '>' or '&' or '\u2028' or '\u2029') return i;
            if (char.IsHighSurrogate(c) && (i + 1 >= textLength || !char.IsLowSurrogate(text[i + 1]))) return i;
            if (char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(text[i - 1]))) return i;
        }
        return -1;
    }

    public override unsafe bool TryEncodeUnicodeScalar(int unicodeScalar, char* buffer, int bufferLength, out int numberOfCharactersWritten)
    {
        ReadOnlySpan<char> shortForm = unicodeScalar switch
        {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            _ => default,
        };
        var dest = new Span<char>(buffer, bufferLength);
        if (!shortForm.IsEmpty)
        {
            if (!shortForm.TryCopyTo(dest))
            {
                numberOfCharactersWritten = 0;
                return false;
            }
            numberOfCharactersWritten = shortForm.Length;
            return true;
        }
        if (!WillEncode(unicodeScalar))
        {
            // Lone surrogates and other scalars we pass through: Go writes them as U+FFFD; the writer gives us scalars only.
            if (unicodeScalar > 0xFFFF)
            {
                if (bufferLength < 2)
                {
                    numberOfCharactersWritten = 0;
                    return false;
                }
                var s = char.ConvertFromUtf32(unicodeScalar);
                s.AsSpan().CopyTo(dest);
                numberOfCharactersWritten = 2;
                return true;
            }
            if (bufferLength < 1)
            {
                numberOfCharactersWritten = 0;
                return false;
            }
            buffer[0] = (char)unicodeScalar;
            numberOfCharactersWritten = 1;
            return true;
        }
        if (bufferLength < 6)
        {
            numberOfCharactersWritten = 0;
            return false;
        }
        const string hex = "0123456789abcdef";
        buffer[0] = '\\';
        buffer[1] = 'u';
        buffer[2] = hex[(unicodeScalar >> 12) & 0xF];
        buffer[3] = hex[(unicodeScalar >> 8) & 0xF];
        buffer[4] = hex[(unicodeScalar >> 4) & 0xF];
        buffer[5] = hex[unicodeScalar & 0xF];
        numberOfCharactersWritten = 6;
        return true;
    }
}
