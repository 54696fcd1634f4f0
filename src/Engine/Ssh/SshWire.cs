using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// Reads RFC 4251 §5 types from a message. Every read is bounds-checked and throws
/// <see cref="SshErrorIds.MalformedMessage"/> instead of reading past the end.
/// </summary>
internal ref struct SshReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _pos;

    public SshReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _pos = 0;
    }

    public readonly int Remaining => _data.Length - _pos;

    public readonly int Position => _pos;

    public readonly ReadOnlySpan<byte> Rest => _data[_pos..];

    public byte ReadByte()
    {
        if (_pos >= _data.Length) throw SshException.Malformed("truncated byte");
        return _data[_pos++];
    }

    public bool ReadBoolean() => ReadByte() != 0;

    public uint ReadUInt32()
    {
        if (Remaining < 4) throw SshException.Malformed("truncated uint32");
        var v = BinaryPrimitives.ReadUInt32BigEndian(_data[_pos..]);
        _pos += 4;
        return v;
    }

    public ulong ReadUInt64()
    {
        if (Remaining < 8) throw SshException.Malformed("truncated uint64");
        var v = BinaryPrimitives.ReadUInt64BigEndian(_data[_pos..]);
        _pos += 8;
        return v;
    }

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || Remaining < count) throw SshException.Malformed("truncated field");
        var s = _data.Slice(_pos, count);
        _pos += count;
        return s;
    }

    /// <summary>A string field as raw bytes (a view into the message, no copy).</summary>
    public ReadOnlySpan<byte> ReadString()
    {
        var len = ReadUInt32();
        if (len > (uint)Remaining) throw SshException.Malformed("string length beyond message end");
        return ReadBytes((int)len);
    }

    /// <summary>A string field decoded as UTF-8 (allocates; not for hot paths).</summary>
    public string ReadUtf8()
    {
        var b = ReadString();
        return Encoding.UTF8.GetString(b);
    }

    /// <summary>A name-list, split on commas.</summary>
    public string[] ReadNameList()
    {
        var s = ReadString();
        if (s.IsEmpty) return [];
        foreach (var c in s)
        {
            // Names are printable US-ASCII without commas' neighbours being empty (RFC 4251 §6).
            if (c < 0x21 || c > 0x7e) throw SshException.Malformed("name-list holds a non-printable byte");
        }
        var parts = Encoding.ASCII.GetString(s).Split(',');
        foreach (var p in parts)
        {
            if (p.Length == 0) throw SshException.Malformed("name-list holds an empty name");
        }
        return parts;
    }

    /// <summary>An mpint as unsigned big-endian magnitude; negative values are rejected.</summary>
    public ReadOnlySpan<byte> ReadMpintUnsigned()
    {
        var s = ReadString();
        if (s.IsEmpty) return s;
        if ((s[0] & 0x80) != 0) throw SshException.Malformed("negative mpint");
        var i = 0;
        while (i < s.Length && s[i] == 0) i++;
        return s[i..];
    }

    public readonly void EnsureEnd()
    {
        // Trailing bytes are tolerated by OpenSSH for some messages; callers that must be exact call this.
        if (Remaining != 0) throw SshException.Malformed("trailing bytes");
    }
}

/// <summary>
/// Builds a message in a pooled, growing buffer. Dispose returns the buffer. Used for handshake and
/// control messages; bulk data is written straight into the transport's packet buffer instead.
/// </summary>
internal sealed class SshWriter : IDisposable
{
    private byte[] _buf;
    private int _len;

    public SshWriter(int capacity = 256)
    {
        _buf = ArrayPool<byte>.Shared.Rent(capacity);
    }

    public int Length => _len;

    public ReadOnlySpan<byte> Span => _buf.AsSpan(0, _len);

    public ReadOnlyMemory<byte> Memory => _buf.AsMemory(0, _len);

    public byte[] ToArray() => Span.ToArray();

    public void Reset() => _len = 0;

    private Span<byte> Grow(int n)
    {
        if (_len + n > _buf.Length)
        {
            var nb = ArrayPool<byte>.Shared.Rent(Math.Max(_buf.Length * 2, _len + n));
            _buf.AsSpan(0, _len).CopyTo(nb);
            ArrayPool<byte>.Shared.Return(_buf, clearArray: true);
            _buf = nb;
        }
        var s = _buf.AsSpan(_len, n);
        _len += n;
        return s;
    }

    public SshWriter Byte(byte b)
    {
        Grow(1)[0] = b;
        return this;
    }

    public SshWriter Boolean(bool b) => Byte(b ? (byte)1 : (byte)0);

    public SshWriter UInt32(uint v)
    {
        BinaryPrimitives.WriteUInt32BigEndian(Grow(4), v);
        return this;
    }

    public SshWriter Raw(ReadOnlySpan<byte> b)
    {
        b.CopyTo(Grow(b.Length));
        return this;
    }

    public SshWriter String(ReadOnlySpan<byte> b)
    {
        UInt32((uint)b.Length);
        return Raw(b);
    }

    public SshWriter String(string s)
    {
        var n = Encoding.UTF8.GetByteCount(s);
        UInt32((uint)n);
        Encoding.UTF8.GetBytes(s, Grow(n));
        return this;
    }

    public SshWriter NameList(IEnumerable<string> names) => String(string.Join(',', names));

    /// <summary>Writes an unsigned big-endian magnitude as an mpint (strip zeros, sign byte when the top bit is set).</summary>
    public SshWriter MpintUnsigned(ReadOnlySpan<byte> magnitude)
    {
        var i = 0;
        while (i < magnitude.Length && magnitude[i] == 0) i++;
        var m = magnitude[i..];
        if (m.IsEmpty) return UInt32(0);
        var pad = (m[0] & 0x80) != 0 ? 1 : 0;
        UInt32((uint)(m.Length + pad));
        if (pad == 1) Byte(0);
        return Raw(m);
    }

    public void Dispose()
    {
        var b = _buf;
        _buf = [];
        if (b.Length > 0) ArrayPool<byte>.Shared.Return(b, clearArray: true);
    }
}

/// <summary>Message numbers (RFC 4250 §4.1 and OpenSSH PROTOCOL).</summary>
internal static class SshMsg
{
    public const byte Disconnect = 1;
    public const byte Ignore = 2;
    public const byte Unimplemented = 3;
    public const byte Debug = 4;
    public const byte ServiceRequest = 5;
    public const byte ServiceAccept = 6;
    public const byte ExtInfo = 7;
    public const byte KexInit = 20;
    public const byte NewKeys = 21;
    public const byte KexEcdhInit = 30;
    public const byte KexEcdhReply = 31;
    public const byte UserauthRequest = 50;
    public const byte UserauthFailure = 51;
    public const byte UserauthSuccess = 52;
    public const byte UserauthBanner = 53;
    public const byte UserauthPkOk = 60;
    public const byte GlobalRequest = 80;
    public const byte RequestSuccess = 81;
    public const byte RequestFailure = 82;
    public const byte ChannelOpen = 90;
    public const byte ChannelOpenConfirmation = 91;
    public const byte ChannelOpenFailure = 92;
    public const byte ChannelWindowAdjust = 93;
    public const byte ChannelData = 94;
    public const byte ChannelExtendedData = 95;
    public const byte ChannelEof = 96;
    public const byte ChannelClose = 97;
    public const byte ChannelRequest = 98;
    public const byte ChannelSuccess = 99;
    public const byte ChannelFailure = 100;
    public const byte Ping = 192;
    public const byte Pong = 193;

    /// <summary>Transport-layer messages that may be sent while a key exchange is in progress (OpenSSH ssh_packet_type_is_kex).</summary>
    public static bool IsKex(byte msg) => msg is >= 1 and <= 49 and not ServiceRequest and not ServiceAccept and not ExtInfo;
}
