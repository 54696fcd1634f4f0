using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Net;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Sessions.Tunnel;

namespace KtConnect.Tests.Unit.Cluster.Tunnel;

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

public sealed class ShadowLinkPolicyTests
{
    private static ShadowLinkOptions Options(Action<ShadowLinkOptionsBuilder>? tweak = null)
    {
        var b = new ShadowLinkOptionsBuilder();
        tweak?.Invoke(b);
        return b.Build();
    }

    [Fact]
    public void Backoff_starts_at_half_a_second_and_doubles_to_five()
    {
        var o = Options();
        Assert.Equal(
            [500, 1000, 2000, 4000, 5000, 5000],
            Enumerable.Range(0, 6).Select(i => (int)o.BackoffAfter(i).TotalMilliseconds).ToArray());
        Assert.Equal(TimeSpan.FromSeconds(5), o.BackoffAfter(1000));
    }

    [Theory]
    [InlineData(SshErrorIds.HostKeyMismatch, true)]
    [InlineData(SshErrorIds.HostKeySignatureInvalid, true)]
    [InlineData(SshErrorIds.AuthenticationFailed, true)]
    [InlineData(SshErrorIds.NoCommonAlgorithm, true)]
    [InlineData(SshErrorIds.ConnectionLost, false)]
    [InlineData(SshErrorIds.KeepaliveTimeout, false)]
    [InlineData(SshErrorIds.HandshakeTimeout, false)]
    [InlineData(SshErrorIds.Disconnected, false)]
    public void Only_errors_a_retry_cannot_fix_are_fatal(string id, bool fatal) =>
        Assert.Equal(fatal, ShadowLink.IsFatal(new SshException(id, KtErrorCategory.ConnectionError, "x")));

    [Fact]
    public void Transport_errors_are_not_fatal()
    {
        Assert.False(ShadowLink.IsFatal(new IOException("broken pipe")));
        Assert.False(ShadowLink.IsFatal(new SocketException((int)SocketError.ConnectionRefused)));
    }

    [Fact]
    public void Options_require_host_keys_and_a_sane_pool()
    {
        Assert.Throws<ArgumentException>(() => Options(b => b.HostKeys = []).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => Options(b => b.Connections = 0).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => Options(b => b.Connections = 17).Validate());
        Options().Validate();
    }

    [Fact]
    public void Ssh_options_carry_identity_host_keys_user_and_keepalive()
    {
        var o = Options();
        var ssh = o.ToSshOptions();
        Assert.Same(o.Identity, ssh.Identity);
        Assert.Same(o.ExpectedHostKeys, ssh.ExpectedHostKeys);
        Assert.Equal("root", ssh.User);
        Assert.Equal(TimeSpan.FromSeconds(10), ssh.KeepaliveInterval);
        Assert.Equal(2, ssh.KeepaliveCountMax);
    }

    [Fact]
    public async Task Start_retries_transient_transport_failures_then_gives_a_typed_error()
    {
        var attempts = 0;
        var options = Options(b =>
        {
            b.StartTimeout = TimeSpan.FromSeconds(1);
            b.InitialBackoff = TimeSpan.FromMilliseconds(20);
        });
        var e = await Assert.ThrowsAsync<ShadowLinkException>(() => ShadowLink.StartAsync(_ =>
        {
            Interlocked.Increment(ref attempts);
            return Task.FromException<Stream>(new IOException("pod port 22: connection refused"));
        }, options));
        Assert.Equal(TunnelErrorIds.LinkUnavailable, e.ErrorId);
        Assert.IsType<IOException>(e.InnerException);
        Assert.True(attempts > 1, $"attempts: {attempts}");
    }

    [Fact]
    public async Task Start_does_not_retry_a_fatal_error()
    {
        var attempts = 0;
        var e = await Assert.ThrowsAsync<SshException>(() => ShadowLink.StartAsync(_ =>
        {
            Interlocked.Increment(ref attempts);
            return Task.FromException<Stream>(new SshException(SshErrorIds.AuthenticationFailed, KtErrorCategory.AuthenticationError, "refused"));
        }, Options()));
        Assert.Equal(SshErrorIds.AuthenticationFailed, e.ErrorId);
        Assert.Equal(1, attempts);
    }

    /// <summary>Builds valid options with one generated key; tests change one thing at a time.</summary>
    private sealed class ShadowLinkOptionsBuilder
    {
        private static readonly SshKeyPair Key = SshKeyPair.GenerateEcdsa();

        public IReadOnlyList<SshPublicKey> HostKeys { get; set; } = [Key.PublicKey];

        public int Connections { get; set; } = 2;

        public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);

        public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(500);

        public ShadowLinkOptions Build() => new()
        {
            PodName = "shadow",
            Identity = Key,
            ExpectedHostKeys = HostKeys,
            Connections = Connections,
            StartTimeout = StartTimeout,
            InitialBackoff = InitialBackoff,
        };
    }
}
