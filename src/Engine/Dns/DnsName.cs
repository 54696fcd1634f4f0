using System.Text;

namespace KtConnect.Engine.Dns;

/// <summary>
/// A domain name held in uncompressed wire form (length-prefixed labels ending in the root label).
/// Comparison is ASCII case-insensitive (RFC 4343); the original case is kept for writing.
/// </summary>
public sealed class DnsName : IEquatable<DnsName>
{
    public static readonly DnsName Root = new([0]);

    private readonly byte[] _wire;

    private DnsName(byte[] wire) => _wire = wire;

    /// <summary>The uncompressed wire form, root label included.</summary>
    public ReadOnlySpan<byte> Wire => _wire;

    /// <summary>Length of <see cref="Wire"/> in bytes (1 for the root).</summary>
    public int WireLength => _wire.Length;

    public int LabelCount => DnsNameCodec.CountLabels(_wire);

    public static DnsName FromWire(ReadOnlySpan<byte> uncompressedWire)
    {
        DnsNameCodec.Validate(uncompressedWire);
        return new DnsName(uncompressedWire.ToArray());
    }

    /// <summary>Parses presentation form (<c>orders.dev.svc.cluster.local</c>, trailing dot optional, <c>\.</c> and <c>\DDD</c> escapes).</summary>
    public static DnsName Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Span<byte> buffer = stackalloc byte[DnsFlags.MaxNameLength];
        var n = DnsNameCodec.FromText(text, buffer);
        return new DnsName(buffer[..n].ToArray());
    }

    /// <summary>True when this name equals <paramref name="suffix"/> or lies below it, label-aligned.</summary>
    public bool IsSubdomainOf(DnsName suffix)
    {
        ArgumentNullException.ThrowIfNull(suffix);
        return DnsNameCodec.EndsWith(_wire, suffix._wire);
    }

    /// <summary>This name with <paramref name="suffix"/> appended (<c>orders</c> + <c>dev.svc.cluster.local</c>).</summary>
    public DnsName Append(DnsName suffix)
    {
        ArgumentNullException.ThrowIfNull(suffix);
        var length = _wire.Length - 1 + suffix._wire.Length;
        if (length > DnsFlags.MaxNameLength) throw new DnsFormatException("name longer than 255 bytes", 0);
        var wire = new byte[length];
        _wire.AsSpan(0, _wire.Length - 1).CopyTo(wire);
        suffix._wire.CopyTo(wire.AsSpan(_wire.Length - 1));
        return new DnsName(wire);
    }

    public bool Equals(DnsName? other) => other is not null && DnsNameCodec.EqualsIgnoreCase(_wire, other._wire);

    public override bool Equals(object? obj) => obj is DnsName n && Equals(n);

    public override int GetHashCode() => DnsNameCodec.HashIgnoreCase(_wire);

    public override string ToString() => DnsNameCodec.ToText(_wire);

    public static bool operator ==(DnsName? a, DnsName? b) => a is null ? b is null : a.Equals(b);

    public static bool operator !=(DnsName? a, DnsName? b) => !(a == b);
}

/// <summary>
/// Reading (with decompression), validation, text conversion and comparison of names in wire form.
/// Every read is bounds-checked; a malformed name is a <see cref="DnsFormatException"/>.
/// </summary>
public static class DnsNameCodec
{
    /// <summary>
    /// Reads the possibly compressed name at <paramref name="offset"/> of <paramref name="message"/> into
    /// <paramref name="destination"/> (at least 255 bytes) in uncompressed form. Returns the offset just after the
    /// name in the message; <paramref name="nameLength"/> is the uncompressed length.
    /// Loops are impossible: every pointer must point strictly before the start of the label run that holds it,
    /// so each jump lands lower than the last.
    /// </summary>
    public static int Read(ReadOnlySpan<byte> message, int offset, Span<byte> destination, out int nameLength)
    {
        var pos = offset;
        var segmentStart = offset;
        var end = -1;
        var written = 0;
        while (true)
        {
            if ((uint)pos >= (uint)message.Length) throw new DnsFormatException("name runs past the end of the message", pos);
            var b = message[pos];
            switch (b & 0xC0)
            {
                case 0x00:
                    if (b == 0)
                    {
                        if (written + 1 > DnsFlags.MaxNameLength) throw new DnsFormatException("name longer than 255 bytes", pos);
                        if (written >= destination.Length) throw new ArgumentException("destination shorter than 255 bytes", nameof(destination));
                        destination[written++] = 0;
                        nameLength = written;
                        return end < 0 ? pos + 1 : end;
                    }
                    if (pos + 1 + b > message.Length) throw new DnsFormatException("label runs past the end of the message", pos);
                    // +1 keeps room for the root label that must still follow.
                    if (written + 1 + b + 1 > DnsFlags.MaxNameLength) throw new DnsFormatException("name longer than 255 bytes", pos);
                    if (written + 1 + b > destination.Length) throw new ArgumentException("destination shorter than 255 bytes", nameof(destination));
                    message.Slice(pos, 1 + b).CopyTo(destination[written..]);
                    written += 1 + b;
                    pos += 1 + b;
                    break;
                case 0xC0:
                    if (pos + 1 >= message.Length) throw new DnsFormatException("compression pointer cut short", pos);
                    var target = ((b & 0x3F) << 8) | message[pos + 1];
                    if (target >= segmentStart) throw new DnsFormatException("compression pointer does not point backwards", pos);
                    if (end < 0) end = pos + 2;
                    pos = target;
                    segmentStart = target;
                    break;
                default:
                    throw new DnsFormatException("reserved label type", pos);
            }
        }
    }

    /// <summary>Skips a possibly compressed name after validating it completely; returns the offset after it.</summary>
    public static int Skip(ReadOnlySpan<byte> message, int offset)
    {
        Span<byte> scratch = stackalloc byte[DnsFlags.MaxNameLength];
        return Read(message, offset, scratch, out _);
    }

    /// <summary>Checks that <paramref name="wire"/> is exactly one uncompressed name.</summary>
    public static void Validate(ReadOnlySpan<byte> wire)
    {
        if (wire.Length is 0 or > DnsFlags.MaxNameLength) throw new DnsFormatException("name length out of range", 0);
        var pos = 0;
        while (true)
        {
            var b = wire[pos];
            if (b == 0)
            {
                if (pos != wire.Length - 1) throw new DnsFormatException("bytes after the root label", pos);
                return;
            }
            if (b > DnsFlags.MaxLabelLength) throw new DnsFormatException("compressed or reserved label in an uncompressed name", pos);
            pos += 1 + b;
            if (pos >= wire.Length) throw new DnsFormatException("label runs past the end of the name", pos);
        }
    }

    public static int CountLabels(ReadOnlySpan<byte> wire)
    {
        var count = 0;
        for (var pos = 0; pos < wire.Length && wire[pos] != 0; pos += 1 + wire[pos]) count++;
        return count;
    }

    /// <summary>Presentation form without the trailing dot; the root is ".".</summary>
    public static string ToText(ReadOnlySpan<byte> wire)
    {
        if (wire.Length == 0 || wire[0] == 0) return ".";
        var sb = new StringBuilder(wire.Length + 8);
        var pos = 0;
        while (pos < wire.Length && wire[pos] != 0)
        {
            if (sb.Length > 0) sb.Append('.');
            var len = wire[pos];
            foreach (var c in wire.Slice(pos + 1, len))
            {
                if (c is (byte)'.' or (byte)'\\') sb.Append('\\').Append((char)c);
                else if (c is > 0x20 and < 0x7F) sb.Append((char)c);
                else sb.Append('\\').Append(c.ToString("D3", System.Globalization.CultureInfo.InvariantCulture));
            }
            pos += 1 + len;
        }
        return sb.ToString();
    }

    /// <summary>Converts presentation form into wire form; returns the number of bytes written.</summary>
    public static int FromText(string text, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (destination.Length < DnsFlags.MaxNameLength) throw new ArgumentException("destination shorter than 255 bytes", nameof(destination));
        if (text.Length == 0 || text == ".")
        {
            destination[0] = 0;
            return 1;
        }
        var labelStart = 0;
        var labelLength = 0;
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '.')
            {
                if (labelLength == 0) throw new DnsFormatException("empty label", i);
                destination[labelStart] = (byte)labelLength;
                labelStart += 1 + labelLength;
                labelLength = 0;
                i++;
                continue;
            }
            byte value;
            if (c == '\\')
            {
                if (i + 1 >= text.Length) throw new DnsFormatException("dangling escape", i);
                if (IsDigits(text, i + 1))
                {
                    var v = (text[i + 1] - '0') * 100 + (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
                    if (v > 255) throw new DnsFormatException("escape out of range", i);
                    value = (byte)v;
                    i += 4;
                }
                else
                {
                    if (text[i + 1] > 0x7F) throw new DnsFormatException("non-ASCII character in a name", i);
                    value = (byte)text[i + 1];
                    i += 2;
                }
            }
            else
            {
                if (c > 0x7F) throw new DnsFormatException("non-ASCII character in a name", i);
                value = (byte)c;
                i++;
            }
            if (labelLength == DnsFlags.MaxLabelLength) throw new DnsFormatException("label longer than 63 bytes", i);
            // Room for this byte, the label's length byte and the root label.
            if (labelStart + 1 + labelLength + 1 + 1 > DnsFlags.MaxNameLength) throw new DnsFormatException("name longer than 255 bytes", i);
            destination[labelStart + 1 + labelLength] = value;
            labelLength++;
        }
        if (labelLength > 0)
        {
            destination[labelStart] = (byte)labelLength;
            labelStart += 1 + labelLength;
        }
        destination[labelStart] = 0;
        return labelStart + 1;
    }

    private static bool IsDigits(string text, int at) =>
        at + 2 < text.Length && char.IsAsciiDigit(text[at]) && char.IsAsciiDigit(text[at + 1]) && char.IsAsciiDigit(text[at + 2]);

    public static byte ToLower(byte b) => b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b | 0x20) : b;

    public static bool EqualsIgnoreCase(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) return false;
        for (var i = 0; i < a.Length; i++)
        {
            if (a[i] != b[i] && ToLower(a[i]) != ToLower(b[i])) return false;
        }
        return true;
    }

    public static int HashIgnoreCase(ReadOnlySpan<byte> wire)
    {
        var h = new HashCode();
        foreach (var b in wire) h.Add(ToLower(b));
        return h.ToHashCode();
    }

    /// <summary>True when <paramref name="name"/> equals <paramref name="suffix"/> or ends with it on a label boundary.</summary>
    public static bool EndsWith(ReadOnlySpan<byte> name, ReadOnlySpan<byte> suffix)
    {
        if (suffix.Length > name.Length) return false;
        var pos = 0;
        while (true)
        {
            if (name.Length - pos == suffix.Length) return EqualsIgnoreCase(name[pos..], suffix);
            if (pos >= name.Length || name[pos] == 0) return false;
            pos += 1 + name[pos];
        }
    }
}
