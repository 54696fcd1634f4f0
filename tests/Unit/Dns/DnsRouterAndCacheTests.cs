using System.Net;
using KtConnect.Engine.Dns;

namespace KtConnect.Tests.Unit.Dns;

public sealed class DnsRouterAndCacheTests
{
    private static readonly SplitDnsOptions Options = new() { Namespace = "dev", OtherNamespaces = ["other"], ExtraClusterZones = ["96.10.in-addr.arpa"] };

    [Theory]
    [InlineData("orders.dev.svc.cluster.local", "Cluster", "orders.dev.svc.cluster.local")]
    [InlineData("cluster.local", "Cluster", "cluster.local")]
    [InlineData("20.0.96.10.in-addr.arpa", "Cluster", "20.0.96.10.in-addr.arpa")]
    [InlineData("orders", "ClusterThenUpstream", "orders.dev.svc.cluster.local,orders.svc.cluster.local,orders.cluster.local")]
    [InlineData("orders.dev", "ClusterThenUpstream", "orders.dev.svc.cluster.local")]
    [InlineData("users.other", "ClusterThenUpstream", "users.other.svc.cluster.local")]
    [InlineData("orders.dev.svc", "ClusterThenUpstream", "orders.dev.svc.cluster.local")]
    [InlineData("www.example.org", "Upstream", "")]
    [InlineData("intranet.corp.example", "Upstream", "")]
    [InlineData("devx.example", "Upstream", "")]
    [InlineData("cluster.local.example.org", "Upstream", "")]
    [InlineData("20.0.168.192.in-addr.arpa", "Upstream", "")]
    public void Names_are_routed_by_suffix_only(string name, string route, string candidates)
    {
        var router = new DnsRouter(Options);
        var list = new List<DnsName>();
        var parsed = DnsName.Parse(name);
        Assert.Equal(route, router.Classify(parsed, list).ToString());
        Assert.Equal(candidates, string.Join(',', list));
        // The allocation-free pre-check never sends a cluster name upstream.
        if (route != "Upstream") Assert.True(router.MightBeCluster(parsed.Wire));
        if (route == "Upstream") Assert.False(router.MightBeCluster(parsed.Wire));
    }

    [Fact]
    public void Short_names_can_be_left_to_the_upstream()
    {
        var router = new DnsRouter(Options with { ResolveShortNames = false });
        Assert.Equal(DnsRoute.Upstream, router.Classify(DnsName.Parse("printer"), []));
    }

    [Fact]
    public void Routed_suffixes_and_search_list_follow_the_namespace()
    {
        Assert.Equal(["cluster.local", "svc", "dev", "other", "96.10.in-addr.arpa"], Options.RoutedSuffixes());
        Assert.Equal(["dev.svc.cluster.local", "svc.cluster.local", "cluster.local"], Options.SearchList());
    }

    private sealed class ManualTime : TimeProvider
    {
        public long Ticks { get; set; } = 1_000_000;

        public override long TimestampFrequency => 1000;

        public override long GetTimestamp() => Ticks;
    }

    private static (byte[] Body, List<int> Ttls, ResponseShape Shape) Response(DnsRcode rcode, uint answerTtl, DnsSoaData? soa, uint soaTtl = 60)
    {
        var name = DnsName.Parse("orders.dev.svc.cluster.local");
        var m = DnsMessage.CreateResponse(DnsMessage.CreateQuery(1, name, DnsType.A), rcode);
        if (rcode == DnsRcode.NoError && answerTtl > 0) m.Answers.Add(DnsRecord.Address(name, IPAddress.Parse("10.96.0.20"), answerTtl));
        if (soa is not null) m.Authorities.Add(DnsRecord.Soa(DnsName.Parse("cluster.local"), soa, soaTtl));
        var body = m.ToArray();
        var ttls = new List<int>();
        Assert.True(DnsPacket.TryScanResponse(body, ttls, out var shape));
        return (body, ttls, shape);
    }

    [Fact]
    public void Negative_ttl_is_the_smaller_of_soa_ttl_and_minimum()
    {
        var soa = new DnsSoaData(DnsName.Parse("ns.cluster.local"), DnsName.Parse("h.cluster.local"), 1, 2, 3, 4, Minimum: 30);
        Assert.Equal(30u, Response(DnsRcode.NXDomain, 0, soa, soaTtl: 60).Shape.NegativeTtl);
        Assert.Equal(10u, Response(DnsRcode.NXDomain, 0, soa, soaTtl: 10).Shape.NegativeTtl);
        Assert.Null(Response(DnsRcode.NXDomain, 0, null).Shape.NegativeTtl);
        Assert.Equal(5u, Response(DnsRcode.NoError, 5, null).Shape.MinTtl);
    }

    [Fact]
    public void Cached_answers_age_and_expire_with_their_ttl()
    {
        var time = new ManualTime();
        var cache = new DnsCache(10, 3600, time);
        var (body, ttls, _) = Response(DnsRcode.NoError, 30, null);
        var query = DnsMessage.CreateQuery(0x4242, DnsName.Parse("ORDERS.dev.svc.cluster.local"), DnsType.A).ToArray();
        var q = DnsPacket.ReadQuery(query);
        Span<byte> key = stackalloc byte[DnsCache.MaxKeyLength];
        var k = DnsCache.MakeKey(query.AsSpan(12, q.NameLength), q.Type, q.Class, false, false, key);
        cache.Add(key[..k], body, [.. ttls], 30);

        time.Ticks += 12_000; // 12 s later
        Assert.True(cache.TryGet(key[..k], out var entry, out var elapsed));
        Assert.Equal(12u, elapsed);
        var output = new byte[512];
        var n = DnsPacket.Serve(entry.Body, entry.TtlOffsets, elapsed, query, q, 512, output);
        var served = DnsMessage.Parse(output.AsSpan(0, n));
        Assert.Equal(0x4242, served.Id);
        Assert.Equal("ORDERS.dev.svc.cluster.local", served.Questions[0].Name.ToString());
        Assert.Equal(18u, served.Answers[0].Ttl);

        time.Ticks += 18_000;
        Assert.False(cache.TryGet(key[..k], out _, out _));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void The_cache_is_bounded_and_evicts_the_least_recently_used()
    {
        var cache = new DnsCache(3, 3600, new ManualTime());
        var (body, ttls, _) = Response(DnsRcode.NoError, 30, null);
        byte[] Key(int i) => [(byte)i, 0, 1, 0, 1, 0];
        for (var i = 0; i < 3; i++) cache.Add(Key(i), body, [.. ttls], 30);
        Assert.True(cache.TryGet(Key(0), out _, out _)); // 0 is now the most recent
        cache.Add(Key(3), body, [.. ttls], 30);
        Assert.Equal(3, cache.Count);
        Assert.True(cache.TryGet(Key(0), out _, out _));
        Assert.False(cache.TryGet(Key(1), out _, out _));
        cache.Add(Key(9), body, [.. ttls], 0); // a zero TTL is never cached
        Assert.False(cache.TryGet(Key(9), out _, out _));
    }

    [Fact]
    public void A_cached_answer_larger_than_the_clients_limit_is_served_truncated()
    {
        var name = DnsName.Parse("big.corp.example");
        var m = DnsMessage.CreateResponse(DnsMessage.CreateQuery(1, name, DnsType.TXT), DnsRcode.NoError);
        for (var i = 0; i < 4; i++) m.Answers.Add(DnsRecord.Txt(name, 60, new string('x', 250)));
        var body = m.ToArray();
        var ttls = new List<int>();
        Assert.True(DnsPacket.TryScanResponse(body, ttls, out _));
        var plain = DnsMessage.CreateQuery(9, name, DnsType.TXT).ToArray();
        var edns = DnsMessage.CreateQuery(9, name, DnsType.TXT, new DnsEdns { UdpPayloadSize = 4096, DnssecOk = true }).ToArray();
        var output = new byte[65535];

        var n = DnsPacket.Serve(body, [.. ttls], 0, plain, DnsPacket.ReadQuery(plain), 512, output);
        var cut = DnsMessage.Parse(output.AsSpan(0, n));
        Assert.True(cut.Truncated);
        Assert.Empty(cut.Answers);
        Assert.Null(cut.Edns);

        n = DnsPacket.Serve(body, [.. ttls], 0, edns, DnsPacket.ReadQuery(edns), DnsPacket.ReadQuery(edns).UdpLimit, output);
        var whole = DnsMessage.Parse(output.AsSpan(0, n));
        Assert.False(whole.Truncated);
        Assert.Equal(4, whole.Answers.Count);
        Assert.True(whole.Edns!.DnssecOk);
        Assert.Equal(1232, whole.Edns.UdpPayloadSize);
    }
}
