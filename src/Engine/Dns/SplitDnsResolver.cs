using System.Buffers;
using System.Buffers.Binary;

namespace KtConnect.Engine.Dns;

/// <summary>Counters for diagnostics and tests (how many questions went where).</summary>
public sealed class DnsServerStatistics
{
    private long _queries;
    private long _cacheHits;
    private long _clusterQueries;
    private long _upstreamQueries;
    private long _formatErrors;
    private long _serverFailures;

    public long Queries => Interlocked.Read(ref _queries);

    public long CacheHits => Interlocked.Read(ref _cacheHits);

    /// <summary>Questions sent to the cluster resolver (one per expanded candidate).</summary>
    public long ClusterQueries => Interlocked.Read(ref _clusterQueries);

    public long UpstreamQueries => Interlocked.Read(ref _upstreamQueries);

    public long FormatErrors => Interlocked.Read(ref _formatErrors);

    public long ServerFailures => Interlocked.Read(ref _serverFailures);

    internal void Query() => Interlocked.Increment(ref _queries);

    internal void CacheHit() => Interlocked.Increment(ref _cacheHits);

    internal void Cluster() => Interlocked.Increment(ref _clusterQueries);

    internal void Upstream() => Interlocked.Increment(ref _upstreamQueries);

    internal void FormatError() => Interlocked.Increment(ref _formatErrors);

    internal void ServerFailure() => Interlocked.Increment(ref _serverFailures);
}

/// <summary>
/// Answers one client message: FORMERR for malformed input, the cache when it can (synchronously, without
/// allocating), else the cluster or the original resolvers as <see cref="DnsRouter"/> decides. Every path ends in
/// an answer: failures and deadlines become SERVFAIL, never silence or a hang.
/// </summary>
internal sealed class SplitDnsResolver : IAsyncDisposable
{
    private readonly DnsRouter _router;
    private readonly DnsCache _cache;
    private readonly ClusterDnsClient _cluster;
    private readonly UpstreamDnsClient _upstream;

    public SplitDnsResolver(SplitDnsOptions options, IClusterDnsTransport cluster, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _router = new DnsRouter(options);
        _cache = new DnsCache(options.CacheCapacity, options.MaxCacheTtl, time);
        _cluster = new ClusterDnsClient(cluster, options.ClusterTimeout, options.ClusterStreams);
        _upstream = new UpstreamDnsClient(options.Upstreams, options.UpstreamAttemptTimeout, options.UpstreamTimeout);
    }

    public DnsServerStatistics Statistics { get; } = new();

    public DnsCache Cache => _cache;

    public ClusterDnsClient Cluster => _cluster;

    /// <summary>
    /// Answers from what is known without waiting: malformed input, unsupported opcodes, cache hits. Returns false
    /// when the query needs <see cref="ResolveAsync"/>; <paramref name="length"/> 0 means drop silently.
    /// </summary>
    public bool TryAnswerNow(ReadOnlySpan<byte> query, bool udp, Span<byte> destination, out int length)
    {
        Statistics.Query();
        DnsQueryInfo q;
        try
        {
            q = DnsPacket.ReadQuery(query);
        }
        catch (DnsFormatException)
        {
            Statistics.FormatError();
            // A message with the QR bit set is never answered: that is how reflection loops start.
            length = query.Length >= 3 && (query[2] & 0x80) != 0 ? 0 : DnsPacket.WriteFormErr(query, destination);
            return true;
        }
        if (q.Opcode != 0)
        {
            length = DnsPacket.WriteEmptyReply(query, q, DnsRcode.NotImp, false, false, default, destination);
            return true;
        }
        Span<byte> key = stackalloc byte[DnsCache.MaxKeyLength];
        var k = DnsCache.MakeKey(query.Slice(DnsFlags.HeaderLength, q.NameLength), q.Type, q.Class, q.DnssecOk, q.CheckingDisabled, key);
        if (_cache.TryGet(key[..k], out var entry, out var elapsed))
        {
            Statistics.CacheHit();
            length = DnsPacket.Serve(entry.Body, entry.TtlOffsets, elapsed, query, q, udp ? q.UdpLimit : DnsFlags.MaxMessageLength, destination);
            return true;
        }
        length = 0;
        return false;
    }

    /// <summary>Resolves a query that <see cref="TryAnswerNow"/> could not answer. <paramref name="destination"/> holds 64 KiB.</summary>
    public async ValueTask<int> ResolveAsync(ReadOnlyMemory<byte> query, bool udp, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var q = DnsPacket.ReadQuery(query.Span);
        var limit = udp ? q.UdpLimit : DnsFlags.MaxMessageLength;
        var key = new byte[DnsCache.MaxKeyLength];
        var k = DnsCache.MakeKey(query.Span.Slice(DnsFlags.HeaderLength, q.NameLength), q.Type, q.Class, q.DnssecOk, q.CheckingDisabled, key);
        var cacheKey = key.AsMemory(0, k);

        if (_router.HasLocalRecords)
        {
            var asked = DnsName.FromWire(query.Span.Slice(DnsFlags.HeaderLength, q.NameLength));
            if (_router.TryLocal(asked, out var address))
                return Store(BuildLocalBody(q, asked, address), cacheKey.Span, query.Span, q, limit, destination.Span, cacheable: false);
        }
        if (_router.MightBeCluster(query.Span.Slice(DnsFlags.HeaderLength, q.NameLength)))
        {
            var name = DnsName.FromWire(query.Span.Slice(DnsFlags.HeaderLength, q.NameLength));
            var candidates = new List<DnsName>(3);
            var route = _router.Classify(name, candidates);
            if (route != DnsRoute.Upstream)
            {
                var (answer, failed) = await AskClusterAsync(route, candidates, q, cancellationToken).ConfigureAwait(false);
                if (answer is not null)
                {
                    var body = BuildClusterBody(answer, q, name, candidates);
                    return Store(body, cacheKey.Span, query.Span, q, limit, destination.Span, cacheable: true);
                }
                if (route == DnsRoute.Cluster || failed && !_upstream.HasServers)
                    return ServFail(query.Span, q, destination.Span);
                return await AskUpstreamAsync(query, q, limit, cacheKey, destination, cacheable: !failed, cancellationToken).ConfigureAwait(false);
            }
        }
        return await AskUpstreamAsync(query, q, limit, cacheKey, destination, cacheable: true, cancellationToken).ConfigureAwait(false);
    }

    private async Task<(DnsMessage? Answer, bool Failed)> AskClusterAsync(DnsRoute route, List<DnsName> candidates, DnsQueryInfo q,
        CancellationToken cancellationToken)
    {
        for (var i = 0; i < candidates.Count; i++)
        {
            DnsMessage answer;
            try
            {
                Statistics.Cluster();
                answer = await _cluster.QueryAsync(candidates[i], q.Type, q.Class, cancellationToken).ConfigureAwait(false);
            }
            catch (DnsUpstreamException)
            {
                return (null, true);
            }
            if (route == DnsRoute.Cluster)
            {
                if (answer.Rcode is (int)DnsRcode.NoError or (int)DnsRcode.NXDomain) return (answer, false);
                return (null, true);
            }
            if (answer.Rcode == (int)DnsRcode.NoError)
            {
                // Only the first expansion is a name a Service can have; an empty answer further down the list is
                // an empty non-terminal (a namespace, "svc"), which must not hide a LAN name of the same spelling.
                if (answer.Answers.Count > 0 || i == 0) return (answer, false);
            }
            else if (answer.Rcode != (int)DnsRcode.NXDomain)
            {
                return (null, true);
            }
        }
        return (null, false);
    }

    /// <summary>
    /// The answer for a name with a fixed address: the address when the type asks for its family, otherwise no data.
    /// Authoritative, with a short TTL so that a new session's records are seen quickly.
    /// </summary>
    private static byte[] BuildLocalBody(in DnsQueryInfo q, DnsName asked, System.Net.IPAddress address)
    {
        var reply = new DnsMessage { Id = q.Id, Flags = (ushort)(DnsFlags.QR | DnsFlags.AA | DnsFlags.RA | (q.Flags & (DnsFlags.RD | DnsFlags.CD))) };
        reply.Questions.Add(new DnsQuestion(asked, q.Type, q.Class));
        var wanted = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? DnsType.AAAA : DnsType.A;
        if (q.Class == DnsClass.IN && (q.Type == wanted || q.Type == DnsType.ANY)) reply.Answers.Add(DnsRecord.Address(asked, address, LocalTtl));
        return reply.ToArray();
    }

    private const uint LocalTtl = 5;

    /// <summary>The cluster's answer to an expanded name, re-addressed to the name the client asked.</summary>
    private static byte[] BuildClusterBody(DnsMessage answer, in DnsQueryInfo q, DnsName asked, List<DnsName> candidates)
    {
        var reply = new DnsMessage
        {
            Id = q.Id,
            Flags = (ushort)(DnsFlags.QR | DnsFlags.RA | (q.Flags & (DnsFlags.RD | DnsFlags.CD)) | (answer.Flags & DnsFlags.AA)),
        };
        reply.Rcode = answer.Rcode & 0xF;
        reply.Questions.Add(new DnsQuestion(asked, q.Type, q.Class));
        var expanded = answer.Questions[0].Name;
        var rewrite = candidates.Count > 0 && expanded != asked;
        foreach (var r in answer.Answers) reply.Answers.Add(rewrite && r.Name == expanded ? r with { Name = asked } : r);
        reply.Authorities.AddRange(answer.Authorities);
        reply.Additionals.AddRange(answer.Additionals);
        return reply.ToArray();
    }

    private async Task<int> AskUpstreamAsync(ReadOnlyMemory<byte> query, DnsQueryInfo q, int limit, ReadOnlyMemory<byte> cacheKey,
        Memory<byte> destination, bool cacheable, CancellationToken cancellationToken)
    {
        UpstreamResponse response;
        try
        {
            Statistics.Upstream();
            response = await _upstream.QueryAsync(query, q.QuestionEnd, cancellationToken).ConfigureAwait(false);
        }
        catch (DnsUpstreamException)
        {
            return ServFail(query.Span, q, destination.Span);
        }
        using (response)
        {
            return StoreUpstream(response.Span, cacheKey.Span, query.Span, q, limit, destination.Span, cacheable);
        }
    }

    private int StoreUpstream(ReadOnlySpan<byte> response, ReadOnlySpan<byte> cacheKey, ReadOnlySpan<byte> query, in DnsQueryInfo q,
        int limit, Span<byte> destination, bool cacheable)
    {
        var ttlOffsets = new List<int>();
        ResponseShape shape;
        try
        {
            if (!DnsPacket.TryScanResponse(response, ttlOffsets, out shape))
            {
                // Not representable without its OPT (an extended rcode): relay as is, never cached.
                if (response.Length > limit) return DnsPacket.WriteEmptyReply(query, q, DnsRcode.NoError, true, false, response, destination);
                response.CopyTo(destination);
                return response.Length;
            }
        }
        catch (DnsFormatException)
        {
            return ServFail(query, q, destination);
        }
        var body = response[..shape.BodyLength].ToArray();
        if (shape.OptStart >= 0)
        {
            var ar = BinaryPrimitives.ReadUInt16BigEndian(body.AsSpan(10));
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(10), (ushort)(ar - 1));
        }
        return StoreShaped(body, ttlOffsets, shape, cacheKey, query, q, limit, destination, cacheable);
    }

    private int Store(byte[] body, ReadOnlySpan<byte> cacheKey, ReadOnlySpan<byte> query, in DnsQueryInfo q, int limit, Span<byte> destination,
        bool cacheable)
    {
        var ttlOffsets = new List<int>();
        if (!DnsPacket.TryScanResponse(body, ttlOffsets, out var shape)) return ServFail(query, q, destination);
        return StoreShaped(body, ttlOffsets, shape, cacheKey, query, q, limit, destination, cacheable);
    }

    private int StoreShaped(byte[] body, List<int> ttlOffsets, in ResponseShape shape, ReadOnlySpan<byte> cacheKey, ReadOnlySpan<byte> query,
        in DnsQueryInfo q, int limit, Span<byte> destination, bool cacheable)
    {
        var offsets = ttlOffsets.ToArray();
        if (cacheable)
        {
            uint ttl = 0;
            if (shape.Rcode == DnsRcode.NoError && shape.AnswerCount > 0) ttl = shape.MinTtl;
            else if (shape.Rcode is DnsRcode.NoError or DnsRcode.NXDomain) ttl = shape.NegativeTtl ?? 0;
            _cache.Add(cacheKey, body, offsets, ttl);
        }
        return DnsPacket.Serve(body, offsets, 0, query, q, limit, destination);
    }

    private int ServFail(ReadOnlySpan<byte> query, in DnsQueryInfo q, Span<byte> destination)
    {
        Statistics.ServerFailure();
        return DnsPacket.WriteEmptyReply(query, q, DnsRcode.ServFail, false, false, default, destination);
    }

    /// <summary>Rents a buffer big enough for any answer.</summary>
    public static byte[] RentAnswerBuffer() => ArrayPool<byte>.Shared.Rent(DnsFlags.MaxMessageLength + 2);

    public async ValueTask DisposeAsync()
    {
        await _cluster.DisposeAsync().ConfigureAwait(false);
        await _upstream.DisposeAsync().ConfigureAwait(false);
    }
}
