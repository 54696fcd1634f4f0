using KtConnect.Engine;
using KtConnect.KubeSim.Images;
using KtConnect.KubeSim.Node;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>The pure parts of the node: rule and record rendering, image rules, address arithmetic.</summary>
public sealed class SimNodeRenderingTests
{
    [Fact]
    public void Service_rules_replace_the_table_atomically_and_spread_over_endpoints()
    {
        var script = ServiceRules.Render(
        [
            new ServiceLite("default", "echo", "10.96.0.20", [new ServicePortLite(80, 8080)], ["10.244.0.3", "10.244.0.2"]),
            new ServiceLite("default", "one", "10.96.0.21", [new ServicePortLite(53, 5353, "UDP")], ["10.244.0.4"]),
            new ServiceLite("default", "none", "10.96.0.22", [new ServicePortLite(80, 80)], []),
            new ServiceLite("default", "hl", null, [new ServicePortLite(80, 80)], ["10.244.0.9"], Headless: true),
            new ServiceLite("kube-system", "kube-dns", "10.96.0.10", [new ServicePortLite(53, 53, "UDP")], ["10.244.0.7"]),
        ], "10.244.0.1", "10.96.0.10");

        Assert.StartsWith("add table ip ktsim_svc\ndelete table ip ktsim_svc\ntable ip ktsim_svc {\n", script, StringComparison.Ordinal);
        Assert.Contains("ip daddr 10.96.0.20 tcp dport 80 dnat ip to numgen random mod 2 map { 0 : 10.244.0.2 . 8080, 1 : 10.244.0.3 . 8080 }\n", script, StringComparison.Ordinal);
        Assert.Contains("ip daddr 10.96.0.21 udp dport 53 dnat to 10.244.0.4:5353\n", script, StringComparison.Ordinal);
        Assert.Contains("ip daddr 10.96.0.22 tcp dport 80 reject with tcp reset\n", script, StringComparison.Ordinal);
        Assert.Contains("ip saddr 10.244.0.2 ip daddr 10.244.0.2 ct status dnat snat to 10.244.0.1\n", script, StringComparison.Ordinal);
        Assert.DoesNotContain("10.96.0.10", script, StringComparison.Ordinal);
        Assert.DoesNotContain("10.244.0.9", script, StringComparison.Ordinal);
    }

    [Fact]
    public void Dns_records_name_cluster_ips_and_headless_endpoints()
    {
        var hosts = ClusterDns.RenderHosts(
        [
            new ServiceLite("dev", "orders", "10.96.1.1", [new ServicePortLite(80, 80)], ["10.244.0.5"]),
            new ServiceLite("dev", "db", "None", [new ServicePortLite(5432, 5432)], ["10.244.0.6", "10.244.0.7"], Headless: true),
        ], "cluster.local");

        Assert.Equal("10.244.0.6 db.dev.svc.cluster.local\n10.244.0.7 db.dev.svc.cluster.local\n10.96.1.1 orders.dev.svc.cluster.local\n", hosts);
    }

    [Theory]
    [InlineData("bad name")]
    [InlineData("a;b")]
    public void Services_with_names_that_are_not_dns_labels_are_rejected(string name)
    {
        var e = Assert.Throws<KtException>(() => ServiceRules.Validate(new ServiceLite("default", name, "10.96.0.1", [], [])));
        Assert.Equal("SimInvalidService", e.ErrorId);
    }

    [Fact]
    public void Endpoints_that_are_not_ipv4_addresses_are_rejected()
    {
        var e = Assert.Throws<KtException>(() => ServiceRules.Validate(new ServiceLite("default", "x", "10.96.0.1", [], ["10.0.0.1 } ; flush ruleset"])));
        Assert.Equal("SimInvalidAddress", e.ErrorId);
    }

    [Theory]
    [InlineData("registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow:v0.3.7", "sshd")]
    [InlineData("ktconnect/shadow:0.1.0", "sshd")]
    [InlineData("docker.io/ktconnect/shadow@sha256:abcd", "sshd")]
    [InlineData("registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-router:v0.3.7", "nginx")]
    [InlineData("nginx:1.21", "echo")]
    [InlineData("my.registry:5000/team/orders:v2", "echo")]
    [InlineData("unknown/app:1", null)]
    public void The_default_catalog_picks_the_process_by_image(string image, string? launcher) =>
        Assert.Equal(launcher, new ImageCatalog().Resolve(image)?.Name);

    [Fact]
    public void A_strict_catalog_refuses_images_it_does_not_list()
    {
        var catalog = new ImageCatalog { Strict = true };
        Assert.Null(catalog.Resolve("my.registry:5000/team/orders:v2"));
        Assert.Equal("echo", catalog.Resolve("nginx:1.21")?.Name);
        Assert.Equal("sshd", catalog.Resolve("ktconnect/shadow:1")?.Name);
    }

    [Fact]
    public void Prefixes_overlap_when_either_contains_the_other()
    {
        var range = Ipv4Cidr.Parse("172.31.240.0/20");
        Assert.True(range.Overlaps(Ipv4Cidr.Parse("172.31.241.4/30")));
        Assert.True(Ipv4Cidr.Parse("172.16.0.0/12").Overlaps(range));
        Assert.False(range.Overlaps(Ipv4Cidr.Parse("172.31.0.0/20")));
        Assert.Equal("10.244.0.0/24", Ipv4Cidr.Parse("10.244.0.77/24").ToString());
        Assert.Equal("SimInvalidAddress", Assert.Throws<KtException>(() => Ipv4Cidr.Parse("10.0.0/8")).ErrorId);
    }

    [Fact]
    public void Container_paths_map_under_the_pod_directory_and_cannot_escape_it()
    {
        Assert.Equal("/p/fs/root/authorized/authorized", PodPaths.HostPath("/p", "/etc/netns/x", "/root/authorized/authorized"));
        Assert.Equal("/etc/netns/x/resolv.conf", PodPaths.HostPath("/p", "/etc/netns/x", "/etc/resolv.conf"));
        Assert.Equal("/p/fs/etc/no-such-dir-on-any-host/a", PodPaths.HostPath("/p", "/etc/netns/x", "/etc/no-such-dir-on-any-host/a"));
        Assert.Equal("SimInvalidPath", Assert.Throws<KtException>(() => PodPaths.HostPath("/p", "/etc/netns/x", "/root/../../etc/passwd")).ErrorId);
        Assert.Equal("SimInvalidPath", Assert.Throws<KtException>(() => PodPaths.HostPath("/p", "/etc/netns/x", "relative")).ErrorId);
    }
}
