using System.Net;
using KtConnect.Engine.Dns;

namespace KtConnect.Tests.Unit.Dns;

public sealed class DnsMessageTests
{
    private static DnsMessage SampleResponse()
    {
        var name = DnsName.Parse("orders.dev.svc.cluster.local");
        var m = DnsMessage.CreateResponse(DnsMessage.CreateQuery(0x1234, name, DnsType.A), DnsRcode.NoError);
        m.Answers.Add(DnsRecord.Address(name, IPAddress.Parse("10.96.0.20"), 30));
        m.Answers.Add(DnsRecord.Address(name, IPAddress.Parse("fd00::20"), 30));
        m.Answers.Add(DnsRecord.NameTarget(DnsName.Parse("www.dev.svc.cluster.local"), DnsType.CNAME, name, 5));
        m.Answers.Add(new DnsRecord(DnsName.Parse("_http._tcp.orders.dev.svc.cluster.local"), DnsType.SRV, DnsClass.IN, 30,
            (byte[])[0, 10, 0, 20, 0x1F, 0x90, .. name.Wire.ToArray()]));
        m.Answers.Add(DnsRecord.NameTarget(DnsName.Parse("20.0.96.10.in-addr.arpa"), DnsType.PTR, name, 30));
        m.Answers.Add(DnsRecord.Txt(name, 30, "hello", "world"));
        m.Answers.Add(new DnsRecord(name, DnsType.MX, DnsClass.IN, 30, (byte[])[0, 5, .. DnsName.Parse("mail.cluster.local").Wire.ToArray()]));
        m.Answers.Add(DnsRecord.NameTarget(DnsName.Parse("cluster.local"), DnsType.NS, DnsName.Parse("ns.dns.cluster.local"), 30));
        m.Answers.Add(new DnsRecord(name, (DnsType)65280, DnsClass.IN, 30, new byte[] { 1, 2, 3 }));
        m.Authorities.Add(DnsRecord.Soa(DnsName.Parse("cluster.local"),
            new DnsSoaData(DnsName.Parse("ns.dns.cluster.local"), DnsName.Parse("hostmaster.cluster.local"), 1, 2, 3, 4, 5), 30));
        m.Edns = new DnsEdns { UdpPayloadSize = 4096, DnssecOk = true, Options = [new DnsEdnsOption(10, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 })] };
        return m;
    }

    [Fact]
    public void Every_record_type_survives_a_write_and_parse()
    {
        var m = SampleResponse();
        var bytes = m.ToArray();
        var back = DnsMessage.Parse(bytes);
        Assert.Equal(0x1234, back.Id);
        Assert.True(back.IsResponse);
        Assert.Equal(m.Answers.Count, back.Answers.Count);
        Assert.Equal(IPAddress.Parse("10.96.0.20"), back.Answers[0].AsAddress());
        Assert.Equal(IPAddress.Parse("fd00::20"), back.Answers[1].AsAddress());
        Assert.Equal("orders.dev.svc.cluster.local", back.Answers[2].AsName().ToString());
        var srv = back.Answers[3].AsSrv();
        Assert.Equal((10, 20, 8080, "orders.dev.svc.cluster.local"), (srv.Priority, srv.Weight, srv.Port, srv.Target.ToString()));
        Assert.Equal("orders.dev.svc.cluster.local", back.Answers[4].AsName().ToString());
        Assert.Equal(["hello", "world"], back.Answers[5].AsTxt());
        Assert.Equal("mail.cluster.local", back.Answers[6].AsMx().Exchange.ToString());
        Assert.Equal("ns.dns.cluster.local", back.Answers[7].AsName().ToString());
        Assert.Equal(new byte[] { 1, 2, 3 }, back.Answers[8].Data.ToArray());
        var soa = back.Authorities[0].AsSoa();
        Assert.Equal((1u, 2u, 3u, 4u, 5u), (soa.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minimum));
        Assert.Equal("hostmaster.cluster.local", soa.RName.ToString());
        Assert.NotNull(back.Edns);
        Assert.Equal(4096, back.Edns!.UdpPayloadSize);
        Assert.True(back.Edns.DnssecOk);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, back.Edns.Options.Single().Data.ToArray());
        // Writing the parsed message again gives the same bytes: nothing was lost or reordered.
        Assert.Equal(bytes, back.ToArray());
    }

    [Fact]
    public void Names_are_compressed_when_written()
    {
        var m = SampleResponse();
        var bytes = m.ToArray();
        var uncompressed = 12 + m.Questions.Sum(q => q.Name.WireLength + 4)
            + m.Answers.Concat(m.Authorities).Sum(r => r.Name.WireLength + 10 + r.Data.Length);
        Assert.True(bytes.Length < uncompressed * 3 / 4, $"{bytes.Length} bytes vs {uncompressed} uncompressed");
        // SRV targets are never compressed (RFC 2782): the uncompressed target is in the bytes.
        var target = DnsName.Parse("orders.dev.svc.cluster.local").Wire.ToArray();
        Assert.True(bytes.AsSpan(12 + target.Length).IndexOf(target) >= 0);
    }

    [Fact]
    public void A_message_too_big_for_the_limit_is_truncated_with_tc()
    {
        var m = SampleResponse();
        var full = m.ToArray();
        var cut = m.ToArray(maxLength: 100);
        Assert.True(cut.Length <= 100);
        var back = DnsMessage.Parse(cut);
        Assert.True(back.Truncated);
        Assert.Empty(back.Answers);
        Assert.Single(back.Questions);
        Assert.NotNull(back.Edns);
        Assert.False(DnsMessage.Parse(full).Truncated);
    }

    [Fact]
    public void Extended_rcode_and_edns_flags_round_trip()
    {
        var m = DnsMessage.CreateQuery(7, DnsName.Parse("example.org"), DnsType.TXT, new DnsEdns { Version = 0, Z = 0x0123 });
        m.IsResponse = true;
        m.Rcode = 16; // BADVERS, 12-bit
        var back = DnsMessage.Parse(m.ToArray());
        Assert.Equal(16, back.Rcode);
        Assert.Equal(0x0123, back.Edns!.Z);
    }

    [Theory]
    [InlineData("orders.dev.svc.cluster.local", "orders.dev.svc.cluster.local")]
    [InlineData("Orders.Dev.", "Orders.Dev")]
    [InlineData(".", ".")]
    [InlineData("a\\.b.c", "a\\.b.c")]
    [InlineData("a\\032b.c", "a\\032b.c")]
    public void Names_round_trip_through_text(string text, string expected)
    {
        Assert.Equal(expected, DnsName.Parse(text).ToString());
    }

    [Fact]
    public void Name_comparison_and_suffixes_ignore_case_and_respect_labels()
    {
        Assert.Equal(DnsName.Parse("ORDERS.dev"), DnsName.Parse("orders.DEV"));
        Assert.True(DnsName.Parse("a.svc.Cluster.Local").IsSubdomainOf(DnsName.Parse("cluster.local")));
        Assert.False(DnsName.Parse("a.xcluster.local").IsSubdomainOf(DnsName.Parse("cluster.local")));
        Assert.True(DnsName.Parse("cluster.local").IsSubdomainOf(DnsName.Parse("cluster.local")));
    }

    [Theory]
    [InlineData("")]
    [InlineData("a..b")]
    public void Bad_text_names_are_rejected_with_a_typed_error(string text)
    {
        if (text.Length == 0)
        {
            Assert.Equal(".", DnsName.Parse(text).ToString());
            return;
        }
        var e = Assert.Throws<DnsFormatException>(() => DnsName.Parse(text));
        Assert.Equal("DnsMessageMalformed", e.ErrorId);
    }

    [Fact]
    public void Labels_longer_than_63_and_names_longer_than_255_are_rejected()
    {
        Assert.Throws<DnsFormatException>(() => DnsName.Parse(new string('a', 64) + ".com"));
        Assert.Throws<DnsFormatException>(() => DnsName.Parse(string.Join('.', Enumerable.Repeat(new string('a', 63), 4))));
        Assert.Equal(253, DnsName.Parse(string.Join('.', Enumerable.Repeat(new string('a', 63), 3)) + "." + new string('b', 61)).ToString().Length);
    }
}
