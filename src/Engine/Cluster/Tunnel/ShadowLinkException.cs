namespace KtConnect.Engine.Cluster.Tunnel;

/// <summary>Stable ids of the tunnel's own errors.</summary>
public static class TunnelErrorIds
{
    /// <summary>No healthy SSH connection to the shadow pod within the wait bound (the link is reconnecting).</summary>
    public const string LinkUnavailable = "ShadowLinkUnavailable";

    /// <summary>The link gave up for good (host key changed, authentication refused, pod gone, reconnect time exceeded).</summary>
    public const string LinkFailed = "ShadowLinkFailed";

    /// <summary>The link was disposed.</summary>
    public const string LinkClosed = "ShadowLinkClosed";

    /// <summary>sshd tried the destination and it refused the connection (the OS client gets a RST).</summary>
    public const string DestinationRefused = "TunnelDestinationRefused";

    /// <summary>sshd could not resolve the destination's name.</summary>
    public const string DestinationNotFound = "TunnelDestinationNotFound";

    /// <summary>sshd had no route to the destination or timed out.</summary>
    public const string DestinationUnreachable = "TunnelDestinationUnreachable";

    /// <summary>sshd refuses TCP forwarding (AllowTcpForwarding no, permitopen).</summary>
    public const string ForwardingProhibited = "TunnelForwardingProhibited";
}

/// <summary>A failure of <see cref="ShadowLink"/> itself (not of the SSH or Kubernetes layers it wraps as inner exceptions).</summary>
public sealed class ShadowLinkException : KtException
{
    public ShadowLinkException(string errorId, KtErrorCategory category, string message, Exception? inner = null, object? target = null)
        : base(errorId, category, message, inner, target)
    {
    }
}

/// <summary>
/// The shadow pod's sshd could not open a connection to a destination. <see cref="Exception.InnerException"/> is a
/// <see cref="System.Net.Sockets.SocketException"/> with the matching error code, which is what the Net stack reads
/// (SOCKS reply code; any dial failure is a RST in tun and redirect modes); <see cref="SshError"/> keeps sshd's answer.
/// </summary>
public sealed class TunnelDialException : KtException
{
    public TunnelDialException(string errorId, string message, System.Net.Sockets.SocketException inner, string destination, Ssh.SshException? sshError = null)
        : base(errorId, KtErrorCategory.ConnectionError, message, inner, destination)
    {
        Destination = destination;
        SshError = sshError;
    }

    /// <summary>The SSH channel-open failure as received (reason code and sshd's text in its message).</summary>
    public Ssh.SshException? SshError { get; }

    /// <summary>host:port as asked.</summary>
    public string Destination { get; }
}
