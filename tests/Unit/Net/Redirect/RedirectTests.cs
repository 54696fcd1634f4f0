using System.Net;
using KtConnect.Engine;
using KtConnect.Engine.Net.Redirect;

namespace KtConnect.Tests.Unit.Net.Redirect;

public class RedirectTests
{
    private static readonly RedirectRule Rule = new(
        [IPNetwork.Parse("10.96.0.0/12"), IPNetwork.Parse("fd00:96::/64")],
        [IPNetwork.Parse("10.96.0.1/32")], 15001, BypassMark: 0x4b54);

    [Fact]
    public void NftScript_HasOurTable_ExcludesBeforeRedirects()
    {
        Assert.Equal("""
table inet ktconnect {
  chain output {
    type nat hook output priority -100; policy accept;
    meta mark 0x4b54 return
    ip daddr { 10.96.0.1/32 } return
    ip daddr { 10.96.0.0/12 } meta l4proto tcp redirect to :15001
    ip6 daddr { fd00:96::/64 } meta l4proto tcp redirect to :15001
  }
}

""".ReplaceLineEndings("\n"), FirewallRedirect.NftScript("ktconnect", Rule));
    }

    [Fact]
    public void IptablesCommands_UseOwnChain_PerFamily()
    {
        var cmds = FirewallRedirect.IptablesCommands("ktconnect", Rule).Select(c => c.Tool + " " + string.Join(' ', c.Args)).ToList();
        Assert.Equal(
        [
            "iptables -w -t nat -N KTCONNECT",
            "iptables -w -t nat -A KTCONNECT -m mark --mark 0x4b54 -j RETURN",
            "iptables -w -t nat -A KTCONNECT -d 10.96.0.1/32 -j RETURN",
            "iptables -w -t nat -A KTCONNECT -d 10.96.0.0/12 -p tcp -j REDIRECT --to-ports 15001",
            "iptables -w -t nat -I OUTPUT -j KTCONNECT",
            "ip6tables -w -t nat -N KTCONNECT",
            "ip6tables -w -t nat -A KTCONNECT -m mark --mark 0x4b54 -j RETURN",
            "ip6tables -w -t nat -A KTCONNECT -d fd00:96::/64 -p tcp -j REDIRECT --to-ports 15001",
            "ip6tables -w -t nat -I OUTPUT -j KTCONNECT",
        ], cmds);
    }

    [Theory]
    [InlineData("kt;drop")]
    [InlineData("")]
    [InlineData("a b")]
    public void TableNames_AreValidated(string name)
    {
        var e = Assert.Throws<KtException>(() => FirewallRedirect.NftScript(name, Rule));
        Assert.Equal("FirewallTableNameInvalid", e.ErrorId);
    }

    [Fact]
    public void SockAddr_V4AndV6_AreDecoded()
    {
        var v4 = new byte[16];
        v4[0] = 2;
        v4[2] = 0x1F;
        v4[3] = 0x90;
        v4[4] = 10;
        v4[5] = 96;
        v4[7] = 10;
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.96.0.10"), 8080), TransparentListenerParse(v4));
        var v6 = new byte[28];
        v6[0] = 10;
        v6[2] = 0x01;
        v6[3] = 0xBB;
        IPAddress.Parse("fd00:96::7").GetAddressBytes().CopyTo(v6, 8);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("fd00:96::7"), 443), TransparentListenerParse(v6));
        Assert.Throws<KtException>(() => TransparentListenerParse(new byte[4]));
    }

    private static IPEndPoint TransparentListenerParse(byte[] b) =>
        OperatingSystem.IsLinux() ? TransparentListener.ParseSockAddr(b) : throw new PlatformNotSupportedException();
}
