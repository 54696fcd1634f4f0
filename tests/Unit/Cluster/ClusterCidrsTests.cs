using System.Net;
using KtConnect.Engine;
using KtConnect.Engine.Cluster;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class CidrTests
{
    private static string[] S(IEnumerable<Cidr> c) => c.Select(x => x.ToString()).ToArray();

    [Theory]
    [InlineData("10.96.0.7/16", "10.96.0.0/16")]
    [InlineData("10.1.2.3", "10.1.2.3/32")]
    [InlineData("fd00:10:96::1/108", "fd00:10:96::/108")]
    [InlineData("::ffff:10.0.0.1", "10.0.0.1/32")]
    public void Parsing_normalises_host_bits(string text, string expected) => Assert.Equal(expected, Cidr.Parse(text).ToString());

    [Theory]
    [InlineData("10.0.0.0/33")]
    [InlineData("10.0.0/8")]
    [InlineData("orders")]
    [InlineData("10.0.0.0/-1")]
    public void Bad_ranges_are_a_typed_error(string text) => Assert.Equal("InvalidCidr", Assert.Throws<KtException>(() => Cidr.Parse(text)).ErrorId);

    [Fact]
    public void Subtracting_an_address_leaves_the_complementary_prefixes()
    {
        var left = Cidr.Parse("10.2.2.0/24").Subtract(Cidr.Parse("10.2.2.26"));
        Assert.Equal(["10.2.2.128/25", "10.2.2.64/26", "10.2.2.32/27", "10.2.2.0/28", "10.2.2.16/29", "10.2.2.28/30", "10.2.2.24/31", "10.2.2.27/32"], S(left));
        Assert.DoesNotContain(left, c => c.Contains(IPAddress.Parse("10.2.2.26")));
        Assert.Equal(256 - 1, left.Sum(c => 1 << (32 - c.Prefix)));
    }

    [Fact]
    public void Subtracting_a_covering_or_disjoint_range()
    {
        Assert.Empty(Cidr.Parse("10.2.2.0/24").Subtract(Cidr.Parse("10.0.0.0/8")));
        Assert.Equal(["10.2.2.0/24"], S(Cidr.Parse("10.2.2.0/24").Subtract(Cidr.Parse("192.168.0.0/16"))));
        Assert.Equal(["10.2.2.0/24"], S(Cidr.Parse("10.2.2.0/24").Subtract(Cidr.Parse("fd00::/8"))));
    }

    [Fact]
    public void Aggregation_drops_contained_ranges_and_merges_siblings()
    {
        var a = Cidr.Aggregate(new[] { "10.0.1.0/24", "10.0.0.0/24", "10.0.0.128/25", "10.0.2.0/24", "10.0.3.0/24", "fd00::/64" }.Select(Cidr.Parse));
        Assert.Equal(["10.0.0.0/22", "fd00::/64"], S(a));
    }
}

public sealed class ClusterCidrsTests
{
    private static IPAddress Ip(string s) => IPAddress.Parse(s);

    private static string[] S(IEnumerable<Cidr> c) => c.Select(x => x.ToString()).ToArray();

    [Fact]
    public void Real_ranges_win_over_sampled_addresses()
    {
        var r = ClusterCidrs.Compute(new CidrInputs
        {
            ServiceRanges = [Cidr.Parse("10.96.0.0/16")],
            ServiceIps = [Ip("10.96.0.1"), Ip("172.20.0.5")],
            NodePodRanges = [Cidr.Parse("10.244.0.0/24"), Cidr.Parse("10.244.1.0/24")],
            PodIps = [Ip("192.168.7.7")],
        });
        Assert.Equal(["10.96.0.0/16", "10.244.0.0/23"], S(r));
    }

    [Fact]
    public void Sampled_pod_addresses_become_24s_widened_to_the_16_when_several_are_used()
    {
        var r = ClusterCidrs.Compute(new CidrInputs
        {
            ServiceRanges = [Cidr.Parse("10.96.0.0/12")],
            PodIps = [Ip("10.244.0.5"), Ip("10.244.0.9"), Ip("10.244.3.2"), Ip("172.17.5.4")],
        });
        Assert.Equal(["10.96.0.0/12", "10.244.0.0/16", "172.17.5.0/24"], S(r));
    }

    [Fact]
    public void The_api_server_and_excludes_are_cut_out_and_includes_added()
    {
        var r = ClusterCidrs.Compute(new CidrInputs
        {
            ServiceRanges = [Cidr.Parse("10.96.0.0/16")],
            PodIps = [Ip("10.31.0.9"), Ip("10.31.77.2")],
            ApiServerIps = [Ip("10.31.77.15")],
            Exclude = [Cidr.Parse("10.96.128.0/17")],
            Include = [Cidr.Parse("192.168.50.0/24")],
        });
        Assert.DoesNotContain(r, c => c.Contains(Ip("10.31.77.15")));
        Assert.Contains(r, c => c.Contains(Ip("10.31.77.14")));
        Assert.Contains(r, c => c.Contains(Ip("10.31.200.1")));
        Assert.DoesNotContain(r, c => c.Contains(Ip("10.96.200.1")));
        Assert.Contains(Cidr.Parse("10.96.0.0/17"), r);
        Assert.Contains(Cidr.Parse("192.168.50.0/24"), r);
    }

    [Theory]
    [InlineData("Service \"x\" is invalid: spec.clusterIPs: Invalid value: []string{\"1.1.1.1\"}: failed to allocated ip:1.1.1.1 with error:provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16", "10.96.0.0/16")]
    [InlineData("... The range of valid IPs is 10.96.0.0/12, fd00:10:96::/108", "10.96.0.0/12,fd00:10:96::/108")]
    [InlineData("spec.clusterIPs: Invalid value: some other problem", "")]
    public void The_service_range_is_read_from_the_api_servers_message(string message, string expected) =>
        Assert.Equal(expected, string.Join(",", S(ClusterCidrs.ParseServiceRangeMessage(message))));
}
