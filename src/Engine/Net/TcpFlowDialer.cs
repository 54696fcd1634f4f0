using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Net;

/// <summary>
/// Dials flows with plain TCP sockets of this process. destinations can be rewritten
/// (tests map a fake cluster range onto a real server) through the optional map function.
/// </summary>
public sealed class TcpFlowDialer : IFlowDialer, IHostDialer
{
    private readonly Func<IPEndPoint, IPEndPoint>? _map;

    public TcpFlowDialer(Func<IPEndPoint, IPEndPoint>? map = null) => _map = map;

    /// <summary>Dials a name or address; names are resolved here, by the local resolver.</summary>
    public async Task<Stream> DialAsync(string host, int port, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(host, out var address)) return await DialAsync(new IPEndPoint(address, port), cancellationToken).ConfigureAwait(false);
        var addresses = await System.Net.Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        if (addresses.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        return await DialAsync(new IPEndPoint(addresses[0], port), cancellationToken).ConfigureAwait(false);
    }

    public async Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var target = _map?.Invoke(destination) ?? destination;
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
            return new HalfCloseNetworkStream(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>A NetworkStream that can send FIN and keep reading.</summary>
public sealed class HalfCloseNetworkStream : NetworkStream, IHalfCloseStream
{
    public HalfCloseNetworkStream(Socket socket)
        : base(socket, ownsSocket: true)
    {
    }

    public Task ShutdownWriteAsync(CancellationToken cancellationToken)
    {
        try
        {
            Socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        return Task.CompletedTask;
    }
}
