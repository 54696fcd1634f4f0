using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Net;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Sessions.Tunnel;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// The local end of a remote forward: each <c>forwarded-tcpip</c> channel is relayed to 127.0.0.1:<c>port</c>. When
/// nothing listens there the channel is closed at once, so the cluster client sees its connection end, and the tunnel
/// and every other connection carry on (a refusal per connection, never a broken tunnel).
/// </summary>
public sealed class LocalRelay
{
    private readonly IKtOutput _output;
    private readonly TimeSpan _connectTimeout;
    private long _relayed;
    private long _refused;
    private int _warned;

    public LocalRelay(int localPort, IKtOutput output, TimeSpan? connectTimeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(localPort, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(localPort, 65535);
        LocalPort = localPort;
        _output = output ?? throw new ArgumentNullException(nameof(output));
        _connectTimeout = connectTimeout ?? TimeSpan.FromSeconds(5);
    }

    public int LocalPort { get; }

    /// <summary>Connections relayed to the local port.</summary>
    public long Relayed => Interlocked.Read(ref _relayed);

    /// <summary>Connections closed because nothing listened locally.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>The remote forward's handler: owns <paramref name="channel"/> until it returns.</summary>
    public async Task HandleAsync(SshChannelStream channel, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        await using var flow = new SshFlowStream(channel);
        Stream local;
        try
        {
            local = await ConnectAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _refused);
            // Once per quiet spell: a client retrying in a loop must not flood the console.
            if (Interlocked.Exchange(ref _warned, 1) == 0)
                _output.Warning($"A connection from {channel.OriginatorAddress} came in but nothing answers on 127.0.0.1:{LocalPort} ({e.Message}); it was closed. " +
                    "The tunnel stays up: start the local server and new connections go through.");
            else
                _output.Debug($"refused a connection from {channel.OriginatorAddress}: 127.0.0.1:{LocalPort} is not listening");
            return; // disposing the channel closes it: sshd then closes the cluster client's connection
        }
        Interlocked.Exchange(ref _warned, 0);
        Interlocked.Increment(ref _relayed);
        await using (local.ConfigureAwait(false))
        {
            await Socks5Server.RelayAsync(flow, local, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<Stream> ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_connectTimeout);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, LocalPort), timeout.Token).ConfigureAwait(false);
            return new HalfCloseNetworkStream(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>True when something accepts connections on 127.0.0.1:<paramref name="port"/> (the start-up check).</summary>
    public static async Task<bool> IsListeningAsync(int port, CancellationToken cancellationToken)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
