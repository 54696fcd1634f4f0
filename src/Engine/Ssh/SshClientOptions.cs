namespace KtConnect.Engine.Ssh;

/// <summary>Everything <see cref="SshClient.ConnectAsync"/> needs. Only the expected host keys are mandatory.</summary>
public sealed class SshClientOptions
{
    /// <summary>Largest channel packet we accept or send (the transport's packet limit is 256 KiB).</summary>
    public const uint MaxChannelPacketSize = 224 * 1024;

    public string User { get; init; } = "root";

    /// <summary>The identity to authenticate with; null means a fresh ECDSA P-256 key (read it back from <see cref="SshClient.Identity"/>).</summary>
    public SshKeyPair? Identity { get; init; }

    /// <summary>Host keys the server may present. Required: there is no "accept anything".</summary>
    public IReadOnlyList<SshPublicKey> ExpectedHostKeys { get; init; } = [];

    public SshAlgorithmPreferences Algorithms { get; init; } = new();

    /// <summary>Our identification string, without CR LF.</summary>
    public string ClientVersion { get; init; } = "SSH-2.0-KtConnect_0.1";

    /// <summary>Silence after which a keepalive is sent; zero disables keepalives.</summary>
    public TimeSpan KeepaliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Unanswered keepalive intervals after which the peer is declared dead.</summary>
    public int KeepaliveCountMax { get; init; } = 3;

    /// <summary>Re-exchange keys after this many bytes in either direction (Go: 16 GiB for AES; we default lower).</summary>
    public long RekeyBytesLimit { get; init; } = 1L << 30;

    /// <summary>Re-exchange keys after this much time.</summary>
    public TimeSpan RekeyTimeLimit { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Receive window granted per channel.</summary>
    public uint WindowSize { get; init; } = 2 * 1024 * 1024;

    /// <summary>Largest data packet per channel we accept and send.</summary>
    public uint MaxPacketSize { get; init; } = 32 * 1024;

    /// <summary>Version exchange, key exchange and authentication must finish within this time.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    internal void Validate()
    {
        if (string.IsNullOrEmpty(User)) throw new ArgumentException("SSH user is empty.", nameof(User));
        if (ExpectedHostKeys is null || ExpectedHostKeys.Count == 0)
            throw new ArgumentException("At least one expected SSH host key is required; the client never accepts an unknown host key.", nameof(ExpectedHostKeys));
        Algorithms.Validate();
        if (!ClientVersion.StartsWith("SSH-2.0-", StringComparison.Ordinal) || ClientVersion.Length > 253 || ClientVersion.Contains('\r', StringComparison.Ordinal) || ClientVersion.Contains('\n', StringComparison.Ordinal))
            throw new ArgumentException("Client version must be 'SSH-2.0-...' without CR LF.", nameof(ClientVersion));
        if (MaxPacketSize < 1024 || MaxPacketSize > MaxChannelPacketSize)
            throw new ArgumentOutOfRangeException(nameof(MaxPacketSize), $"Must be between 1024 and {MaxChannelPacketSize}.");
        if (WindowSize < MaxPacketSize) throw new ArgumentOutOfRangeException(nameof(WindowSize), "Must be at least MaxPacketSize.");
        if (RekeyBytesLimit < 64 * 1024) throw new ArgumentOutOfRangeException(nameof(RekeyBytesLimit), "Must be at least 64 KiB.");
        if (KeepaliveInterval < TimeSpan.Zero || KeepaliveCountMax < 1) throw new ArgumentOutOfRangeException(nameof(KeepaliveInterval));
    }
}
