using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Net;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Cluster.Tunnel;

namespace KtConnect.Engine.Sessions.Tunnel;

/// <summary>
/// The Net stack's dialer over the shadow link: every flow (tun, redirect) or proxy request (SOCKS, HTTP CONNECT) is one
/// SSH <c>direct-tcpip</c> channel to the destination, which sshd in the shadow pod connects to (and, for names,
/// resolves with the cluster's DNS). A refused open throws <see cref="TunnelDialException"/> whose inner
/// <see cref="SocketException"/> says why, so the OS client gets a RST (tun/redirect) or the matching SOCKS reply.
/// </summary>
public sealed class SshFlowDialer : IFlowDialer, IHostDialer
{
    private readonly ShadowLink _link;

    public SshFlowDialer(ShadowLink link) => _link = link ?? throw new ArgumentNullException(nameof(link));

    public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var address = destination.Address.IsIPv4MappedToIPv6 ? destination.Address.MapToIPv4() : destination.Address;
        return DialAsync(address.ToString(), destination.Port, cancellationToken);
    }

    /// <summary>Dials a name (passed to sshd unresolved) or an address.</summary>
    public async Task<Stream> DialAsync(string host, int port, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        SshChannelStream channel;
        try
        {
            channel = await _link.OpenAsync(host, port, cancellationToken).ConfigureAwait(false);
        }
        catch (SshException e) when (e.ErrorId == SshErrorIds.ChannelOpenFailed)
        {
            throw MapOpenFailure(e, host, port);
        }
        return new SshFlowStream(channel);
    }

    /// <summary>sshd's CHANNEL_OPEN_FAILURE (reason code and text are in the SSH error's message) as a dial error.</summary>
    internal static TunnelDialException MapOpenFailure(SshException e, string host, int port)
    {
        var destination = host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{port}" : $"{host}:{port}";
        var m = e.Message;
        string id;
        SocketError code;
        if (m.Contains("reason 1:", StringComparison.Ordinal))
        {
            id = TunnelErrorIds.ForwardingProhibited;
            code = SocketError.AccessDenied;
        }
        else if (Has(m, "not known") || Has(m, "unknown host") || Has(m, "resolution") || Has(m, "No address associated") || Has(m, "nodename"))
        {
            id = TunnelErrorIds.DestinationNotFound;
            code = SocketError.HostNotFound;
        }
        else if (Has(m, "unreachable") || Has(m, "No route"))
        {
            id = TunnelErrorIds.DestinationUnreachable;
            code = SocketError.HostUnreachable;
        }
        else if (Has(m, "timed out"))
        {
            id = TunnelErrorIds.DestinationUnreachable;
            code = SocketError.TimedOut;
        }
        else
        {
            // "Connection refused", and anything else sshd says when its connect failed: the client must see a RST.
            id = TunnelErrorIds.DestinationRefused;
            code = SocketError.ConnectionRefused;
        }
        var inner = new SocketException((int)code, e.Message);
        return new TunnelDialException(id, $"The shadow pod could not connect to {destination}: {e.Message}", inner, destination, e);

        static bool Has(string s, string what) => s.Contains(what, StringComparison.OrdinalIgnoreCase);
    }
}
