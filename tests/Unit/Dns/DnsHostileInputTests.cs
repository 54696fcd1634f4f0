using System.Buffers.Binary;
using KtConnect.Engine.Dns;

namespace KtConnect.Tests.Unit.Dns;

/// <summary>Hostile messages: each must be rejected with <see cref="DnsFormatException"/> and nothing else.</summary>
public sealed class DnsHostileInputTests
{
    private static byte[] Header(int qd, int an = 0, int ns = 0, int ar = 0, ushort flags = 0x0100)
    {
        var h = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(h, 0xBEEF);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), flags);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), (ushort)qd);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), (ushort)an);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(8), (ushort)ns);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), (ushort)ar);
        return h;
    }

    public static TheoryData<string, byte[]> Cases()
    {
        var longName = new List<byte>();
        for (var i = 0; i < 5; i++)
        {
            longName.Add(63);
            longName.AddRange(Enumerable.Repeat((byte)'a', 63));
        }
        longName.Add(0);
        // A chain of pointers, each pointing to the previous one: every jump lowers the position, but the
        // decompressed name still grows past 255 bytes.
        var growing = new List<byte>(Header(1));
        growing.AddRange([63, .. Enumerable.Repeat((byte)'x', 63), 0]);
        for (var i = 0; i < 5; i++)
        {
            var prev = 12 + (i == 0 ? 0 : 64 + 1 + (i - 1) * 66);
            growing.AddRange([63, .. Enumerable.Repeat((byte)'y', 63), (byte)(0xC0 | (prev >> 8)), (byte)prev]);
        }
        return new TheoryData<string, byte[]>
        {
            { "empty", [] },
            { "short header", [1, 2, 3] },
            { "pointer to itself", [.. Header(1), 0xC0, 12, 0, 1, 0, 1] },
            { "pointer loop", [.. Header(1), 1, (byte)'a', 0xC0, 12, 0, 1, 0, 1] },
            { "forward pointer", [.. Header(1), 0xC0, 20, 0, 1, 0, 1, 0, 0, 0, 0, 0] },
            { "pointer beyond message", [.. Header(1), 0xC3, 0xFF, 0, 1, 0, 1] },
            { "reserved label type 01", [.. Header(1), 0x41, 0, 0, 1, 0, 1] },
            { "reserved label type 10", [.. Header(1), 0x81, 0, 0, 1, 0, 1] },
            { "name over 255", [.. Header(1), .. longName, 0, 1, 0, 1] },
            { "pointer chain over 255", [.. growing, 0, 1, 0, 1] },
            { "label past end", [.. Header(1), 10, (byte)'a'] },
            { "question cut short", [.. Header(1), 0, 0, 1] },
            { "count too high", [.. Header(2), 0, 0, 1, 0, 1] },
            { "huge counts", [.. Header(65535, 65535, 65535, 65535)] },
            { "count too low (trailing bytes)", [.. Header(1), 0, 0, 1, 0, 1, 9, 9, 9] },
            { "rdata past end", [.. Header(1, an: 1), 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 200, 1] },
            { "A rdata wrong length", [.. Header(1, an: 1), 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 3, 1, 2, 3] },
            { "CNAME rdata longer than its name", [.. Header(1, an: 1), 0, 0, 5, 0, 1, 0, 0, 5, 0, 1, 0, 0, 0, 0, 0, 3, 0, 1, 2] },
            { "two OPT records", [.. Header(1, ar: 2), 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0] },
            { "OPT in answers", [.. Header(1, an: 1), 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0] },
            { "EDNS option past end", [.. Header(1, ar: 1), 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 9] },
            { "TXT strings do not fill", [.. Header(1, an: 1), 0, 0, 16, 0, 1, 0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 3, 5, 1, 2] },
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Hostile_message_is_a_typed_format_error(string what, byte[] message)
    {
        var e = Assert.Throws<DnsFormatException>(() => DnsMessage.Parse(message));
        Assert.Equal("DnsMessageMalformed", e.ErrorId);
        Assert.False(string.IsNullOrEmpty(what));
    }

    /// <summary>The server relays a query's records without reading their rdata, so only structure is checked there.</summary>
    public static TheoryData<string, byte[]> StructuralCases()
    {
        var data = new TheoryData<string, byte[]>();
        foreach (var row in Cases())
        {
            var what = (string)row[0];
            if (what.Contains("rdata", StringComparison.Ordinal) && !what.Contains("past end", StringComparison.Ordinal) || what.StartsWith("TXT", StringComparison.Ordinal)) continue;
            data.Add(what, (byte[])row[1]);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(StructuralCases))]
    public void Hostile_query_is_a_typed_format_error_for_the_server_path(string what, byte[] message)
    {
        Assert.Throws<DnsFormatException>(() => DnsPacket.ReadQuery(message));
        Assert.False(string.IsNullOrEmpty(what));
    }
}
