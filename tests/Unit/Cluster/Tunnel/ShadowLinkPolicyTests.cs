using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Cluster.Tunnel;

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
