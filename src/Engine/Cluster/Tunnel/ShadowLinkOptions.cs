using KtConnect.Engine.Ssh;

namespace KtConnect.Engine.Cluster.Tunnel;

/// <summary>How <see cref="ShadowLink"/> reaches the shadow pod's sshd and how it behaves when the link drops.</summary>
public sealed class ShadowLinkOptions
{
    /// <summary>Namespace of the shadow pod (null: the client's configured namespace).</summary>
    public string? Namespace { get; init; }

    /// <summary>The shadow pod; required when the link is built from a <c>KubeClient</c>.</summary>
    public string PodName { get; init; } = "";

    /// <summary>The pod port sshd listens on.</summary>
    public int Port { get; init; } = 22;

    public string User { get; init; } = "root";

    /// <summary>Our per-session key (its public half is in the shadow's authorized_keys). Not owned by the link.</summary>
    public required SshKeyPair Identity { get; init; }

    /// <summary>The shadow sshd's host keys, read through the API before connecting. Required: no "accept any".</summary>
    public required IReadOnlyList<SshPublicKey> ExpectedHostKeys { get; init; }

    /// <summary>SSH connections kept side by side, each over its own port-forward, to spread flows (head-of-line blocking).</summary>
    public int Connections { get; init; } = 2;

    /// <summary>First delay before a reconnect attempt; doubles per failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Bound of one attempt: port-forward upgrade plus SSH handshake and authentication.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long <see cref="ShadowLink.StartAsync(Kube.KubeClient, ShadowLinkOptions, Microsoft.Extensions.Logging.ILogger?, CancellationToken)"/> retries transient failures (sshd not listening yet).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long <see cref="ShadowLink.OpenAsync"/> waits for a healthy connection before giving up.</summary>
    public TimeSpan OpenWaitTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Give up (state Failed) when no connection could be re-established for this long; null = keep trying until disposed.</summary>
    public TimeSpan? MaxReconnectDuration { get; init; }

    /// <summary>SSH keepalive: a silent link is declared dead after (count+1)×interval.</summary>
    public TimeSpan KeepaliveInterval { get; init; } = TimeSpan.FromSeconds(10);

    public int KeepaliveCountMax { get; init; } = 2;

    /// <summary>Optional adjustment of the SSH options (algorithms, windows) before each connection.</summary>
    public Func<SshClientOptions, SshClientOptions>? ConfigureSsh { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Identity);
        ArgumentNullException.ThrowIfNull(ExpectedHostKeys);
        if (ExpectedHostKeys.Count == 0) throw new ArgumentException("At least one expected host key is required.", nameof(ExpectedHostKeys));
        ArgumentOutOfRangeException.ThrowIfLessThan(Connections, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Connections, 16);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(InitialBackoff, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBackoff, InitialBackoff);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConnectTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(OpenWaitTimeout, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(Port, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(Port, 65535);
    }

    internal SshClientOptions ToSshOptions()
    {
        var o = new SshClientOptions
        {
            User = User,
            Identity = Identity,
            ExpectedHostKeys = ExpectedHostKeys,
            KeepaliveInterval = KeepaliveInterval,
            KeepaliveCountMax = KeepaliveCountMax,
            HandshakeTimeout = ConnectTimeout,
        };
        return ConfigureSsh?.Invoke(o) ?? o;
    }

    /// <summary>The delay before attempt <paramref name="failures"/>+1: initial × 2^failures, capped.</summary>
    internal TimeSpan BackoffAfter(int failures)
    {
        var ms = InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30));
        return ms >= MaxBackoff.TotalMilliseconds ? MaxBackoff : TimeSpan.FromMilliseconds(ms);
    }
}
