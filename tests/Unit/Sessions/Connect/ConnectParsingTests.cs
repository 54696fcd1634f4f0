using System.Net;
using KtConnect.Cli;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Connect;

namespace KtConnect.Tests.Unit.Sessions.Connect;

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
        // The hosts DNS mode needs the domain only: no nameserver is no error there.
        Assert.Equal("corp.example", ConnectWorker.ParseClusterDomain("search dev.svc.corp.example svc.corp.example corp.example\n"));
        Assert.Equal("cluster.local", ConnectWorker.ParseClusterDomain("search a\n"));
    }

    private static ParsedArgs Args(params string[] args) =>
        FlagParser.Parse(args, CommandLine.GlobalFlags, v => v == "connect" ? ConnectVerb.Flags : null);

    [Fact]
    public void Kt_connect_flags_map_onto_options_with_kt_connect_names()
    {
        var o = ConnectVerb.Parse(Args("connect", "-n", "dev", "--context", "kind", "--mode", "socks", "--proxyPort", "1080",
            "--withLabel", "team=a", "--podQuota", "0.5c,512m", "--useShadowDeployment", "-i", "my/shadow:1"));
        Assert.Equal("dev", o.Namespace);
        Assert.Equal("kind", o.Context);
        Assert.Equal(ConnectMode.Socks, o.Mode);
        Assert.Equal(1080, o.ProxyPort);
        Assert.Equal(["10.8.0.0/16"], ConnectVerb.Parse(Args("connect", "--excludeIps", "10.8.0.0/16")).ExcludeIps);
        Assert.Equal("a", o.Labels["team"]);
        Assert.True(o.UseShadowDeployment);
        Assert.Equal("my/shadow:1", o.Image);
        Assert.Equal(ConnectMode.Tun, ConnectVerb.Parse(Args("connect", "--mode", "tun2socks")).Mode);
        Assert.False(o.ShareShadow);
        Assert.True(ConnectVerb.Parse(Args("connect", "--shareShadow")).ShareShadow);
    }

    [Fact]
    public void Ktctl_connect_flags_of_its_other_modes_and_dns_map_onto_ours()
    {
        Assert.Equal(ConnectMode.Redirect, ConnectVerb.Parse(Args("connect", "--mode", "sshuttle")).Mode);
        var socks = ConnectVerb.Parse(Args("connect", "--disableTunDevice", "--proxyAddr", "127.0.0.2", "--proxyPort", "1081"));
        Assert.Equal(ConnectMode.Socks, socks.Mode);
        Assert.Equal((IPAddress.Parse("127.0.0.2"), 1081), (socks.ProxyAddress, socks.ProxyPort));
        Assert.Equal(IPAddress.Loopback, ConnectVerb.Parse(Args("connect", "--mode", "socks", "--proxyAddr", "localhost")).ProxyAddress);
        Assert.Equal(IPAddress.IPv6Loopback, ConnectVerb.Parse(Args("connect", "--mode", "socks", "--proxyAddr", "::1")).ProxyAddress);

        var tun = ConnectVerb.Parse(Args("connect", "--disableTunRoute", "--clusterDomain", "corp.example", "--includeDomains", "db.internal,_tcp.svc.example.",
            "--dnsCacheTtl", "0", "--skipCleanup", "--useLocalTime", "--ipVersion", "6"));
        Assert.Equal(ConnectMode.Tun, tun.Mode);
        Assert.True(tun.SkipRoutes);
        Assert.Equal("corp.example", tun.ClusterDomain);
        Assert.Equal(["db.internal", "_tcp.svc.example."], tun.IncludeDomains);
        Assert.Equal(TimeSpan.Zero, tun.DnsCacheTtl);
        Assert.True(tun.SkipCleanup);
        Assert.Equal(IPAddress.Parse("10.0.0.80"), ConnectVerb.Parse(Args("connect", "--ingressIp", "10.0.0.80")).IngressIp);

        var defaults = ConnectVerb.Parse(Args("connect"));
        Assert.Equal((IPAddress.Loopback, false, (string?)null, (TimeSpan?)null, false),
            (defaults.ProxyAddress, defaults.SkipRoutes, defaults.ClusterDomain, defaults.DnsCacheTtl, defaults.SkipCleanup));
    }

    [Fact]
    public void Dns_mode_hosts_takes_ktctls_extra_namespaces()
    {
        var hosts = ConnectVerb.Parse(Args("connect", "-n", "dev", "--dnsMode", "hosts:payments, shared"));
        Assert.Equal(DnsMode.Hosts, hosts.DnsMode);
        Assert.Equal(["payments", "shared"], hosts.HostsNamespaces);
        Assert.Empty(ConnectVerb.Parse(Args("connect", "--dnsMode", "hosts")).HostsNamespaces);
        Assert.Equal(DnsMode.Split, ConnectVerb.Parse(Args("connect", "--dnsMode", "localDNS")).DnsMode);
    }

    [Fact]
    public void The_hosts_block_names_every_service_with_a_cluster_ip_short_names_only_for_the_connected_namespace()
    {
        static KtConnect.Engine.Kube.Models.Service Svc(string ns, string name, string? ip) => new()
        {
            Metadata = new() { Name = name, Namespace = ns },
            Spec = new() { ClusterIP = ip },
        };
        var entries = HostsDns.BuildEntries(
            [Svc("shared", "cache", "10.96.0.30"), Svc("dev", "orders", "10.96.0.20"), Svc("dev", "headless", "None"), Svc("dev", "external", null)],
            "dev", "cluster.local.");
        Assert.Equal(2, entries.Count);
        Assert.Equal(IPAddress.Parse("10.96.0.20"), entries[0].Address);
        Assert.Equal(["orders", "orders.dev", "orders.dev.svc", "orders.dev.svc.cluster.local"], entries[0].Names);
        Assert.Equal(["cache.shared", "cache.shared.svc", "cache.shared.svc.cluster.local"], entries[1].Names);
    }

    [Theory]
    [InlineData("InvalidCommandLine", "connect", "--dnsMode", "split:dev")]
    [InlineData("InvalidConnectOption", "connect", "--dnsMode", "hosts:Payments")]
    [InlineData("InvalidConnectOption", "connect", "--dnsMode", "hosts:a b")]
    [InlineData("InvalidConnectOption", "connect", "--mode", "socks", "--proxyAddr", "0.0.0.0")]
    [InlineData("InvalidConnectOption", "connect", "--disableTunDevice", "--proxyAddr", "192.168.1.10")]
    [InlineData("InvalidCommandLine", "connect", "--mode", "socks", "--proxyAddr", "my-laptop")]
    [InlineData("InvalidCommandLine", "connect", "--proxyAddr", "127.0.0.1")]
    [InlineData("InvalidCommandLine", "connect", "--mode", "redirect", "--disableTunDevice")]
    [InlineData("InvalidCommandLine", "connect", "--mode", "socks", "--disableTunRoute")]
    [InlineData("InvalidConnectOption", "connect", "--includeDomains", "corp.example,bad domain")]
    [InlineData("InvalidConnectOption", "connect", "--includeDomains", "a..b")]
    [InlineData("InvalidConnectOption", "connect", "--clusterDomain", "x;rm")]
    [InlineData("InvalidCommandLine", "connect", "--dnsCacheTtl=-1")]
    [InlineData("InvalidCommandLine", "connect", "--ipVersion", "5")]
    [InlineData("InvalidConnectOption", "connect", "--dnsMode", "hosts", "--includeDomains", "corp.internal")]
    [InlineData("InvalidConnectOption", "connect", "--mode", "socks", "--dnsCacheTtl", "10")]
    [InlineData("InvalidConnectOption", "connect", "--disableTunRoute", "--excludeIps", "10.8.0.0/16")]
    [InlineData("InvalidCommandLine", "connect", "--ingressIp", "ingress.local")]
    [InlineData("InvalidConnectOption", "connect", "--ingressIp", "10.0.0.1", "--dnsMode", "hosts")]
    [InlineData("InvalidConnectOption", "connect", "--ingressIp", "10.0.0.1", "--mode", "socks")]
    [InlineData("InvalidConnectOption", "connect", "--mode", "socks", "--excludeIps", "10.8.0.0/16")]
    [InlineData("InvalidConnectOption", "connect", "--disableTunDevice", "--includeIps", "10.9.0.0/16")]
    [InlineData("InvalidConnectOption", "connect", "--mode", "socks", "--disablePodIp")]
    public void Bad_ktctl_flag_values_are_refused_before_anything_happens(string errorId, params string[] args) =>
        Assert.Equal(errorId, Assert.Throws<KtException>(() => ConnectVerb.Parse(Args(args))).ErrorId);

    [Theory]
    [InlineData(false, "connect", "--mode", "socks")]
    [InlineData(true, "connect", "--mode", "socks", "--dnsMode", "hosts")]
    [InlineData(true, "connect", "--disableTunDevice", "--dnsMode", "hosts")]
    [InlineData(true, "connect", "--mode", "redirect")]
    [InlineData(true, "connect")]
    public void Privileges_are_needed_unless_socks_mode_leaves_the_hosts_file_alone(bool needed, params string[] args) =>
        Assert.Equal(needed, ConnectWorker.NeedsPrivileges(ConnectVerb.Parse(Args(args))));

    [Theory]
    [InlineData("InvalidCommandLine", "connect", "--mode", "vpn")]
    [InlineData("InvalidCommandLine", "connect", "extra")]
    [InlineData("InvalidCidr", "connect", "--excludeIps", "10.0.0/8")]
    [InlineData("InvalidCommandLine", "connect", "--dnsMode", "podDNS")]
    public void Bad_connect_flags_are_refused_before_anything_happens(string errorId, params string[] args) =>
        Assert.Equal(errorId, Assert.Throws<KtException>(() => ConnectVerb.Parse(Args(args))).ErrorId);
}
