using System.Net.Sockets;

namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// The ConnectCallback of handlers whose client certificate can rotate: it opens TCP connections as
/// SocketsHttpHandler would and remembers them (weakly) so <see cref="CloseAll"/> can drop every one.
/// </summary>
internal sealed class ConnectionTracker
{
    private readonly List<WeakReference<NetworkStream>> _streams = [];

    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        // A dual-mode socket connecting to the DnsEndPoint tries every resolved address, like the default.
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var stream = new NetworkStream(socket, ownsSocket: true);
        lock (_streams)
        {
            _streams.RemoveAll(w => !w.TryGetTarget(out var s) || !s.Socket.Connected);
            _streams.Add(new WeakReference<NetworkStream>(stream));
        }
        return stream;
    }

    public void CloseAll()
    {
        List<NetworkStream> open = [];
        lock (_streams)
        {
            foreach (var w in _streams)
            {
                if (w.TryGetTarget(out var s)) open.Add(s);
            }
            _streams.Clear();
        }
        foreach (var s in open) s.Dispose();
    }

    public void OnCertificateChanged(object? sender, EventArgs e) => CloseAll();
}
