using System.Net;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Cluster.Tunnel;

namespace KtConnect.Engine.Sessions.Tunnel;

/// <summary>
/// The split DNS server's way to the cluster resolver: DNS over TCP in an SSH <c>direct-tcpip</c> channel to the
/// cluster DNS Service (its ClusterIP, port 53) through the shadow link.
/// </summary>
public sealed class SshClusterDnsTransport : IClusterDnsTransport
{
    private readonly ShadowLink _link;

    public SshClusterDnsTransport(ShadowLink link, string server, int port = 53)
    {
        _link = link ?? throw new ArgumentNullException(nameof(link));
        ArgumentException.ThrowIfNullOrEmpty(server);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        Server = server;
        Port = port;
    }

    public SshClusterDnsTransport(ShadowLink link, IPEndPoint server)
        : this(link, (server ?? throw new ArgumentNullException(nameof(server))).Address.ToString(), server.Port)
    {
    }

    /// <summary>Address (or name, resolved by sshd) of the cluster DNS Service.</summary>
    public string Server { get; }

    public int Port { get; }

    /// <summary>One stream to the cluster resolver; failures are <see cref="IOException"/> (or the link's typed errors).</summary>
    public async ValueTask<Stream> OpenAsync(CancellationToken cancellationToken)
    {
        var channel = await _link.OpenAsync(Server, Port, cancellationToken).ConfigureAwait(false);
        return new SshFlowStream(channel);
    }
}
