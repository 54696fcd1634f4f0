using System.Buffers.Binary;

namespace KtConnect.Engine.Dns;

/// <summary>One cached response in normalised form (no OPT, question at offset 12, counts already fixed).</summary>
internal sealed class DnsCacheEntry
{
    public required byte[] Key { get; init; }

    public required byte[] Body { get; init; }

    public required int[] TtlOffsets { get; init; }

    public required long StoredAt { get; init; }

    public required long ExpiresAt { get; init; }

    public LinkedListNode<DnsCacheEntry>? Node { get; set; }
}

/// <summary>
/// A bounded LRU cache of responses keyed by (lower-case name, type, class, DO, CD). Lookups do not allocate: the key
/// is hashed from the query's bytes and compared with the stored key. Positive answers live for their smallest TTL,
/// negative ones for min(SOA TTL, SOA MINIMUM) (RFC 2308 §5), both capped by <see cref="MaxTtl"/>; a negative answer
/// without an SOA is not cached (RFC 2308 §5).
/// </summary>
internal sealed class DnsCache
{
    private readonly Dictionary<ulong, DnsCacheEntry> _entries = [];
    private readonly LinkedList<DnsCacheEntry> _lru = new();
    private readonly object _lock = new();
    private readonly TimeProvider _time;

    public DnsCache(int capacity, uint maxTtl, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        Capacity = capacity;
        MaxTtl = maxTtl;
        _time = time ?? TimeProvider.System;
    }

    public int Capacity { get; }

    public uint MaxTtl { get; }

    public int Count
    {
        get
        {
            lock (_lock) return _entries.Count;
        }
    }

    public long Now => _time.GetTimestamp();

    /// <summary>Seconds between two timestamps of <see cref="Now"/>.</summary>
    public uint Seconds(long from, long to) => (uint)Math.Max(0, _time.GetElapsedTime(from, to).TotalSeconds);

    /// <summary>Writes the lookup key of a question into <paramref name="key"/>; returns its length.</summary>
    public static int MakeKey(ReadOnlySpan<byte> nameWire, DnsType type, DnsClass cls, bool dnssecOk, bool checkingDisabled, Span<byte> key)
    {
        for (var i = 0; i < nameWire.Length; i++) key[i] = DnsNameCodec.ToLower(nameWire[i]);
        var n = nameWire.Length;
        BinaryPrimitives.WriteUInt16BigEndian(key[n..], (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(key[(n + 2)..], (ushort)cls);
        key[n + 4] = (byte)((dnssecOk ? 1 : 0) | (checkingDisabled ? 2 : 0));
        return n + 5;
    }

    public const int MaxKeyLength = DnsFlags.MaxNameLength + 5;

    public bool TryGet(ReadOnlySpan<byte> key, out DnsCacheEntry entry, out uint elapsedSeconds)
    {
        var hash = Hash(key);
        var now = Now;
        lock (_lock)
        {
            if (_entries.TryGetValue(hash, out var e) && e.Key.AsSpan().SequenceEqual(key))
            {
                if (now < e.ExpiresAt)
                {
                    _lru.Remove(e.Node!);
                    _lru.AddFirst(e.Node!);
                    entry = e;
                    elapsedSeconds = Seconds(e.StoredAt, now);
                    return true;
                }
                Remove(hash, e);
            }
        }
        entry = null!;
        elapsedSeconds = 0;
        return false;
    }

    /// <summary>Stores a normalised body for <paramref name="ttlSeconds"/> (capped); zero means not cached.</summary>
    public void Add(ReadOnlySpan<byte> key, byte[] body, int[] ttlOffsets, uint ttlSeconds)
    {
        ttlSeconds = Math.Min(ttlSeconds, MaxTtl);
        if (ttlSeconds == 0 || Capacity == 0) return;
        var now = Now;
        var entry = new DnsCacheEntry
        {
            Key = key.ToArray(),
            Body = body,
            TtlOffsets = ttlOffsets,
            StoredAt = now,
            ExpiresAt = now + (long)(ttlSeconds * (double)_time.TimestampFrequency),
        };
        var hash = Hash(key);
        lock (_lock)
        {
            if (_entries.TryGetValue(hash, out var old)) Remove(hash, old);
            while (_entries.Count >= Capacity && _lru.Last is { } last) Remove(Hash(last.Value.Key), last.Value);
            entry.Node = _lru.AddFirst(entry);
            _entries[hash] = entry;
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            _entries.Clear();
            _lru.Clear();
        }
    }

    private void Remove(ulong hash, DnsCacheEntry e)
    {
        _entries.Remove(hash);
        if (e.Node is { List: not null }) _lru.Remove(e.Node);
    }

    /// <summary>FNV-1a, 64 bit: cheap and allocation-free; collisions only cost a miss because keys are compared.</summary>
    private static ulong Hash(ReadOnlySpan<byte> key)
    {
        var h = 14695981039346656037UL;
        foreach (var b in key)
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return h;
    }
}
