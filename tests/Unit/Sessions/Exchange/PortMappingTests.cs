using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Tests.Unit.Sessions.Exchange;

public sealed class PortMappingTests
{
    private static Service Orders(params ServicePort[] ports) => new()
    {
        Metadata = new ObjectMeta { Name = "orders", Namespace = "dev" },
        Spec = new ServiceSpec { Selector = new() { ["app"] = "orders" }, Ports = [.. ports] },
    };

    [Theory]
    [InlineData("8080", 8080, 8080)]
    [InlineData("8080:80", 8080, 80)]
    [InlineData(" 1:65535 ", 1, 65535)]
    public void Expose_entries_are_port_or_local_colon_remote(string text, int local, int remote)
    {
        var p = ExposedPort.Parse(text.Trim());
        Assert.Equal((local, remote), (p.Local, p.Remote));
    }

    [Fact]
    public void A_list_is_comma_separated_and_keeps_its_order()
    {
        var list = ExposedPort.ParseList("8080:80, 9090");
        Assert.Equal([new ExposedPort(8080, 80), new ExposedPort(9090, 9090)], list);
        Assert.Equal("8080:80", list[0].ToString());
        Assert.Equal("9090", list[1].ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("80:")]
    [InlineData(":80")]
    [InlineData("1:2:3")]
    [InlineData("-1")]
    [InlineData("+80")]
    [InlineData("80,")]
    [InlineData("8080:80,9090:80")]
    public void Malformed_expose_values_are_refused_with_one_typed_error(string text)
    {
        var e = Assert.Throws<ExposeFormatException>(() => ExposedPort.ParseList(text));
        Assert.Equal("InvalidExposePort", e.ErrorId);
        Assert.Equal(KtErrorCategory.InvalidArgument, e.Category);
    }

    [Fact]
    public void The_remote_port_may_be_the_target_port_or_the_service_port_and_the_mapping_says_which()
    {
        var svc = Orders(new ServicePort { Name = "http", Port = 80, TargetPort = 8080 }, new ServicePort { Name = "admin", Port = 81, TargetPort = 8081 });
        var m = PortMapper.Map(svc, [new ExposedPort(18080, 80), new ExposedPort(18081, 8081)]);
        Assert.Equal(new PortMapping(18080, 80, 8080, "http", PortMatch.ServicePort), m[0]);
        Assert.Equal(new PortMapping(18081, 81, 8081, "admin", PortMatch.TargetPort), m[1]);
        Assert.Contains("remote 80 is the Service port; its targetPort is 8080", m[0].Describe("orders"), StringComparison.Ordinal);
        Assert.Contains("remote 8081 is the targetPort", m[1].Describe("orders"), StringComparison.Ordinal);
    }

    [Fact]
    public void A_target_port_match_wins_over_a_service_port_of_the_same_number()
    {
        // Port 80 -> 8080 and port 8080 -> 9090: "8080" means the targetPort 8080 (kt-connect's rule).
        var svc = Orders(new ServicePort { Port = 80, TargetPort = 8080 }, new ServicePort { Port = 8080, TargetPort = 9090 });
        var m = Assert.Single(PortMapper.Map(svc, [new ExposedPort(1, 8080)]));
        Assert.Equal((80, 8080, PortMatch.TargetPort), (m.ServicePort!.Value, m.TargetPort, m.MatchedBy));
    }

    [Fact]
    public void Named_and_missing_target_ports_resolve_through_container_ports_or_default_to_the_port()
    {
        var svc = Orders(new ServicePort { Port = 80, TargetPort = "web" }, new ServicePort { Port = 90 });
        var named = new Dictionary<string, int> { ["web"] = 8080 };
        var m = PortMapper.Map(svc, [new ExposedPort(1, 80), new ExposedPort(3, 90)], named);
        Assert.Equal([8080, 90], m.Select(x => x.TargetPort));
        Assert.Equal(PortMatch.ServicePort, m[0].MatchedBy);
        Assert.Equal(PortMatch.TargetPort, m[1].MatchedBy);
        Assert.Equal(PortMatch.TargetPort, Assert.Single(PortMapper.Map(svc, [new ExposedPort(2, 8080)], named)).MatchedBy);
        // Without the container port names, a named targetPort cannot be listened on.
        Assert.Equal("TargetPortUnresolved", Assert.ThrowsAny<KtException>(() => PortMapper.Map(svc, [new ExposedPort(1, 80)])).ErrorId);
    }

    [Fact]
    public void Unknown_ports_and_a_target_port_taken_twice_are_refused_naming_what_exists()
    {
        var svc = Orders(new ServicePort { Port = 80, TargetPort = 8080 });
        var e = Assert.ThrowsAny<KtException>(() => PortMapper.Map(svc, [new ExposedPort(1, 9999)]));
        Assert.Equal("PortNotInService", e.ErrorId);
        Assert.Contains("80->8080", e.Message, StringComparison.Ordinal);
        Assert.Equal("PortExposedTwice", Assert.ThrowsAny<KtException>(() => PortMapper.Map(svc, [new ExposedPort(1, 80), new ExposedPort(2, 8080)])).ErrorId);
        Assert.Equal("ServiceHasNoPorts", Assert.ThrowsAny<KtException>(() => PortMapper.Map(Orders(), [new ExposedPort(1, 80)])).ErrorId);
    }

    [Fact]
    public void Preview_ports_are_the_remote_number_as_port_and_target_port()
    {
        var m = PortMapper.MapPreview([new ExposedPort(18080, 80), new ExposedPort(9090, 9090)]);
        Assert.Equal(new PortMapping(18080, 80, 80, "kt-80", PortMatch.Preview), m[0]);
        Assert.Equal(9090, m[1].TargetPort);
    }

    [Fact]
    public void Uncovered_lists_the_ports_no_expose_takes_and_says_which_can_be_relayed()
    {
        var svc = Orders(new ServicePort { Name = "http", Port = 80, TargetPort = 8080 }, new ServicePort { Name = "admin", Port = 81, TargetPort = 8081 },
            new ServicePort { Name = "dns", Port = 53, Protocol = "UDP" }, new ServicePort { Name = "web", Port = 82, TargetPort = "web" });
        var mappings = PortMapper.Map(svc, [new ExposedPort(18080, 8080)]);
        var uncovered = PortMapper.Uncovered(svc, mappings);
        Assert.Equal([81, 53, 82], uncovered.Select(u => u.ServicePort));
        Assert.Equal([true, false, false], uncovered.Select(u => u.CanRelay));
        Assert.Equal("81 (admin) -> targetPort 8081", uncovered[0].Label);
        Assert.Equal("53 (dns)/UDP -> targetPort 53", uncovered[1].Label);
        Assert.Equal("UDP is not relayed", uncovered[1].Reason);
        Assert.Equal("its named targetPort 'web' is declared by no pod", uncovered[2].Reason);
        Assert.Equal("orders:81 -> shadow :8081 -> relayed to the original pods (app=orders) :8081 (not exposed)",
            uncovered[0].DescribeRelayed("orders", new Dictionary<string, string> { ["app"] = "orders" }));
        // A named targetPort the pods declare is relayable; a port given as its Service port counts as covered.
        var named = PortMapper.Uncovered(svc, PortMapper.Map(svc, [new ExposedPort(18081, 81)]), new Dictionary<string, int> { ["web"] = 9000 });
        Assert.Equal([80, 53, 82], named.Select(u => u.ServicePort));
        Assert.Equal((9000, "web", true), (named[2].TargetPort!.Value, named[2].NamedTarget!, named[2].CanRelay));
        // Every TCP port exposed: only the UDP one is left (it cannot be exposed).
        Assert.Equal([53], PortMapper.Uncovered(svc, PortMapper.Map(svc, [new ExposedPort(1, 80), new ExposedPort(2, 81)],
            new Dictionary<string, int> { ["web"] = 9000 }).Concat(PortMapper.Map(svc, [new ExposedPort(4, 9000)], new Dictionary<string, int> { ["web"] = 9000 })).ToList(),
            new Dictionary<string, int> { ["web"] = 9000 }).Select(u => u.ServicePort));
    }

    [Fact]
    public void Only_tcp_ports_are_exposed_and_a_udp_port_of_the_same_number_stays_uncovered()
    {
        var web = Orders(new ServicePort { Name = "https", Port = 443, TargetPort = 8443 },
            new ServicePort { Name = "quic", Port = 443, TargetPort = 8443, Protocol = "UDP" }, new ServicePort { Name = "syslog", Port = 514, Protocol = "UDP" });
        var m = Assert.Single(PortMapper.Map(web, [ExposedPort.Parse("18443:443")]));
        Assert.Equal(("https", 8443), (m.ServicePortName, m.TargetPort));
        // HTTP/3's UDP 443 is not carried by the exchange: it is listed with the ports left out, not taken for covered.
        Assert.Equal([(443, "UDP"), (514, "UDP")], PortMapper.Uncovered(web, [m]).Select(u => (u.ServicePort, u.Protocol)));
        Assert.Equal("PortNotTcp", Assert.Throws<KtException>(() => PortMapper.Map(web, [ExposedPort.Parse("514")])).ErrorId);
        // Auto mesh points the whole Service at the router, which carries TCP only: refused.
        Assert.Equal("MeshPortNotTcp", Assert.Throws<KtException>(() => MeshWorker.ThrowIfNotAllTcp(web)).ErrorId);
        MeshWorker.ThrowIfNotAllTcp(Orders(new ServicePort { Port = 80, TargetPort = 8080 }));
    }
}
