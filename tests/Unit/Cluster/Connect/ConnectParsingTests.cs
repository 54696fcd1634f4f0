using System.Net;
using KtConnect.Cli;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Connect;

namespace KtConnect.Tests.Unit.Cluster.Connect;

public sealed class ConnectParsingTests
{
    [Fact]
    public void The_cluster_dns_and_domain_come_from_the_shadow_pods_resolv_conf()
    {
        var (ns, domain) = ConnectWorker.ParsePodResolvConf("""
            search dev.svc.corp.example svc.corp.example corp.example
            nameserver 10.96.0.10
            options ndots:5
            """, "dev");
        Assert.Equal(IPAddress.Parse("10.96.0.10"), ns);
        Assert.Equal("corp.example", domain);
        Assert.Equal("cluster.local", ConnectWorker.ParsePodResolvConf("nameserver 10.0.0.10\n", "dev").ClusterDomain);
        Assert.Equal("ClusterDnsNotFound", Assert.Throws<KtException>(() => ConnectWorker.ParsePodResolvConf("search a\n", "dev")).ErrorId);
    }

    private static ParsedArgs Args(params string[] args) =>
        FlagParser.Parse(args, CommandLine.GlobalFlags, v => v == "connect" ? ConnectVerb.Flags : null);

    [Fact]
    public void Kt_connect_flags_map_onto_options_with_kt_connect_names()
    {
        var o = ConnectVerb.Parse(Args("connect", "-n", "dev", "--context", "kind", "--mode", "socks", "--proxyPort", "1080",
            "--excludeIps", "10.8.0.0/16", "--withLabel", "team=a", "--podQuota", "0.5c,512m", "--useShadowDeployment", "-i", "my/shadow:1"));
        Assert.Equal("dev", o.Namespace);
        Assert.Equal("kind", o.Context);
        Assert.Equal(ConnectMode.Socks, o.Mode);
        Assert.Equal(1080, o.ProxyPort);
        Assert.Equal(["10.8.0.0/16"], o.ExcludeIps);
        Assert.Equal("a", o.Labels["team"]);
        Assert.True(o.UseShadowDeployment);
        Assert.Equal("my/shadow:1", o.Image);
        Assert.Equal(ConnectMode.Tun, ConnectVerb.Parse(Args("connect", "--mode", "tun2socks")).Mode);
        Assert.False(o.ShareShadow);
        Assert.True(ConnectVerb.Parse(Args("connect", "--shareShadow")).ShareShadow);
    }

    [Theory]
    [InlineData("InvalidCommandLine", "connect", "--mode", "vpn")]
    [InlineData("InvalidCommandLine", "connect", "extra")]
    [InlineData("InvalidCidr", "connect", "--excludeIps", "10.0.0/8")]
    [InlineData("InvalidCommandLine", "connect", "--dnsMode", "podDNS")]
    public void Bad_connect_flags_are_refused_before_anything_happens(string errorId, params string[] args) =>
        Assert.Equal(errorId, Assert.Throws<KtException>(() => ConnectVerb.Parse(Args(args))).ErrorId);
}
