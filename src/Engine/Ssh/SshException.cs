namespace KtConnect.Engine.Ssh;

/// <summary>Stable error ids of the SSH client. Tests and scripts match on these strings.</summary>
public static class SshErrorIds
{
    public const string MalformedMessage = "SshMalformedMessage";
    public const string PacketTooLarge = "SshPacketTooLarge";
    public const string MacMismatch = "SshMacMismatch";
    public const string VersionExchangeFailed = "SshVersionExchangeFailed";
    public const string NoCommonAlgorithm = "SshNoCommonAlgorithm";
    public const string StrictKexViolation = "SshStrictKexViolation";
    public const string UnexpectedMessage = "SshUnexpectedMessage";
    public const string HostKeyMismatch = "SshHostKeyMismatch";
    public const string HostKeySignatureInvalid = "SshHostKeySignatureInvalid";
    public const string KeyExchangeFailed = "SshKeyExchangeFailed";
    public const string AuthenticationFailed = "SshAuthenticationFailed";
    public const string Disconnected = "SshDisconnected";
    public const string ConnectionLost = "SshConnectionLost";
    public const string ConnectionClosed = "SshConnectionClosed";
    public const string KeepaliveTimeout = "SshKeepaliveTimeout";
    public const string HandshakeTimeout = "SshHandshakeTimeout";
    public const string ChannelOpenFailed = "SshChannelOpenFailed";
    public const string ChannelClosed = "SshChannelClosed";
    public const string ChannelRequestFailed = "SshChannelRequestFailed";
    public const string ForwardRejected = "SshForwardRejected";
    public const string KeyFormatInvalid = "SshKeyFormatInvalid";
    public const string ProtocolViolation = "SshProtocolViolation";
}

/// <summary>Every failure of the SSH client on purpose is one of these (or a subclass).</summary>
public class SshException : KtException
{
    public SshException(string errorId, KtErrorCategory category, string message, Exception? inner = null, object? target = null)
        : base(errorId, category, message, inner, target)
    {
    }

    internal static SshException Malformed(string what) =>
        new(SshErrorIds.MalformedMessage, KtErrorCategory.ProtocolError, "Malformed SSH message: " + what + ".");

    internal static SshException Protocol(string id, string message) => new(id, KtErrorCategory.ProtocolError, message);

    internal static SshException Closed() =>
        new(SshErrorIds.ConnectionClosed, KtErrorCategory.ConnectionError, "The SSH connection was closed by this side.");
}

/// <summary>The server presented a host key that is not one of the expected keys.</summary>
public sealed class SshHostKeyMismatchException : SshException
{
    public SshHostKeyMismatchException(string actualFingerprint, IReadOnlyList<string> expectedFingerprints)
        : base(SshErrorIds.HostKeyMismatch, KtErrorCategory.SecurityError,
            $"The SSH server's host key {actualFingerprint} is not the expected key ({string.Join(", ", expectedFingerprints)}).",
            null, actualFingerprint)
    {
        ActualFingerprint = actualFingerprint;
        ExpectedFingerprints = expectedFingerprints;
    }

    /// <summary>SHA256 fingerprint of the key the server presented, as <c>SHA256:base64</c>.</summary>
    public string ActualFingerprint { get; }

    public IReadOnlyList<string> ExpectedFingerprints { get; }
}

/// <summary>The peer sent SSH_MSG_DISCONNECT.</summary>
public sealed class SshDisconnectException : SshException
{
    public SshDisconnectException(uint reasonCode, string description)
        : base(SshErrorIds.Disconnected, KtErrorCategory.ConnectionError,
            $"The SSH server disconnected (reason {reasonCode}): {description}")
    {
        ReasonCode = reasonCode;
        Description = description;
    }

    public uint ReasonCode { get; }

    public string Description { get; }
}
