using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Net;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Sessions.Tunnel;

namespace KtConnect.Tests.Unit.Sessions.Tunnel;

public sealed class SshFlowDialerMappingTests
{
    private static SshException OpenFailure(uint reason, string text, string desc) =>
        new(SshErrorIds.ChannelOpenFailed, KtErrorCategory.ConnectionError, $"The SSH server refused to open the channel (reason {reason}: {text}): {desc}");

    [Theory]
    [InlineData(2u, "connect failed", "Connection refused", TunnelErrorIds.DestinationRefused, SocketError.ConnectionRefused, 0x05)]
    [InlineData(2u, "connect failed", "connect failed", TunnelErrorIds.DestinationRefused, SocketError.ConnectionRefused, 0x05)]
    [InlineData(2u, "connect failed", "Name or service not known", TunnelErrorIds.DestinationNotFound, SocketError.HostNotFound, 0x04)]
    [InlineData(2u, "connect failed", "No route to host", TunnelErrorIds.DestinationUnreachable, SocketError.HostUnreachable, 0x04)]
    [InlineData(2u, "connect failed", "Connection timed out", TunnelErrorIds.DestinationUnreachable, SocketError.TimedOut, 0x06)]
    [InlineData(1u, "administratively prohibited", "open failed", TunnelErrorIds.ForwardingProhibited, SocketError.AccessDenied, 0x01)]
    public void Channel_open_failures_become_socket_errors_the_net_stack_understands(uint reason, string text, string desc, string id, SocketError code, int socksReply)
    {
        var e = SshFlowDialer.MapOpenFailure(OpenFailure(reason, text, desc), "orders.dev", 80);
        Assert.Equal(id, e.ErrorId);
        Assert.Equal(code, Assert.IsType<SocketException>(e.InnerException).SocketErrorCode);
        Assert.Equal(socksReply, Socks5Server.ReplyCode(e));
        Assert.Equal("orders.dev:80", e.Destination);
        Assert.NotNull(e.SshError);
        Assert.Contains(desc, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IPv6_destinations_are_bracketed_in_messages() =>
        Assert.Equal("[fd00::1]:443", SshFlowDialer.MapOpenFailure(OpenFailure(2, "connect failed", "Connection refused"), "fd00::1", 443).Destination);
}
