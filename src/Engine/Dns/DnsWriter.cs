using System.Buffers.Binary;

namespace KtConnect.Engine.Dns;

/// <summary>
/// Writes a message into a span with name compression (RFC 1035 §4.1.4). Every method returns false instead of
/// writing past the end, which is how <see cref="DnsMessage.Write"/> knows to fall back to a truncated message.
/// </summary>
internal ref struct DnsWriter
{
    private const int MaxCompressionTargets = 64;

    private readonly Span<byte> _buffer;
    private int _targetCount;
    private TargetArray _targets;

    public DnsWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        Length = 0;
        _targetCount = 0;
    }

    public int Length { get; private set; }

    [System.Runtime.CompilerServices.InlineArray(MaxCompressionTargets)]
    private struct TargetArray
    {
        private ushort _element;
    }

    public bool TryWriteUInt16(ushort value)
    {
        if (Length + 2 > _buffer.Length) return false;
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[Length..], value);
        Length += 2;
        return true;
    }

    public bool TryWriteUInt32(uint value)
    {
        if (Length + 4 > _buffer.Length) return false;
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[Length..], value);
        Length += 4;
        return true;
    }

    public bool TryWriteBytes(ReadOnlySpan<byte> bytes)
    {
        if (Length + bytes.Length > _buffer.Length) return false;
        bytes.CopyTo(_buffer[Length..]);
        Length += bytes.Length;
        return true;
    }

    /// <summary>Writes an uncompressed wire name, replacing its longest already-written suffix by a pointer.</summary>
    public bool TryWriteName(ReadOnlySpan<byte> wire, bool compress)
    {
        // Offsets of this name's labels become targets only once the name is complete, so a later lookup never
        // decompresses a half-written name.
        Span<ushort> pending = stackalloc ushort[DnsFlags.MaxNameLength / 2];
        var pendingCount = 0;
        var pos = 0;
        var done = false;
        while (wire[pos] != 0)
        {
            if (compress)
            {
                var target = FindSuffix(wire[pos..]);
                if (target >= 0)
                {
                    if (!TryWriteUInt16((ushort)(0xC000 | target))) return false;
                    done = true;
                    break;
                }
                if (Length <= 0x3FFF) pending[pendingCount++] = (ushort)Length;
            }
            var len = wire[pos];
            if (!TryWriteBytes(wire.Slice(pos, 1 + len))) return false;
            pos += 1 + len;
        }
        if (!done)
        {
            if (Length + 1 > _buffer.Length) return false;
            _buffer[Length++] = 0;
        }
        for (var i = 0; i < pendingCount && _targetCount < MaxCompressionTargets; i++) _targets[_targetCount++] = pending[i];
        return true;
    }

    public bool TryWriteRecord(DnsRecord record)
    {
        if (!TryWriteName(record.Name.Wire, compress: true) || !TryWriteUInt16((ushort)record.Type)
            || !TryWriteUInt16((ushort)record.Class) || !TryWriteUInt32(record.Ttl))
            return false;
        var lengthAt = Length;
        if (!TryWriteUInt16(0)) return false;
        var data = record.Data.Span;
        Span<int> names = stackalloc int[2];
        var count = DnsRdata.CompressibleNames(record.Type, data, names);
        var p = 0;
        for (var i = 0; i < count; i++)
        {
            if (!TryWriteBytes(data[p..names[i]])) return false;
            var n = DnsRdata.NameLength(data[names[i]..]);
            if (!TryWriteName(data.Slice(names[i], n), compress: true)) return false;
            p = names[i] + n;
        }
        if (!TryWriteBytes(data[p..])) return false;
        var rdlen = Length - lengthAt - 2;
        if (rdlen > ushort.MaxValue) return false;
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[lengthAt..], (ushort)rdlen);
        return true;
    }

    public bool TryWriteOpt(DnsEdns edns)
    {
        var ttl = ((uint)edns.ExtendedRcode << 24) | ((uint)edns.Version << 16) | (edns.DnssecOk ? 0x8000u : 0u) | (edns.Z & 0x7FFFu);
        if (Length + 1 > _buffer.Length) return false;
        _buffer[Length++] = 0;
        if (!TryWriteUInt16((ushort)DnsType.OPT) || !TryWriteUInt16(edns.UdpPayloadSize) || !TryWriteUInt32(ttl)) return false;
        var lengthAt = Length;
        if (!TryWriteUInt16(0)) return false;
        foreach (var o in edns.Options)
        {
            if (!TryWriteUInt16(o.Code) || !TryWriteUInt16((ushort)o.Data.Length) || !TryWriteBytes(o.Data.Span)) return false;
        }
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[lengthAt..], (ushort)(Length - lengthAt - 2));
        return true;
    }

    private readonly int FindSuffix(ReadOnlySpan<byte> suffix)
    {
        Span<byte> scratch = stackalloc byte[DnsFlags.MaxNameLength];
        for (var i = 0; i < _targetCount; i++)
        {
            var at = _targets[i];
            // Names already written are well formed; decompress and compare case-insensitively.
            DnsNameCodec.Read(_buffer[..Length], at, scratch, out var n);
            if (DnsNameCodec.EqualsIgnoreCase(scratch[..n], suffix)) return at;
        }
        return -1;
    }
}
