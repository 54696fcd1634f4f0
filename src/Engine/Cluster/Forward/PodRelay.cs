using System.Buffers;
using System.Net.Sockets;

namespace KtConnect.Engine.Cluster.Forward;

/// <summary>
/// Copies one accepted local connection to a pod's port-forward stream and back. A port-forward has no half-close,
/// so the local side's end of input only stops the upstream copy; the connection ends when the pod side ends (or
/// fails, or the session stops), and then the local socket is closed.
/// </summary>
internal static class PodRelay
{
    private const int BufferSize = 32 * 1024;

    public static async Task RunAsync(Socket local, Stream pod, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await using var net = new NetworkStream(local, ownsSocket: false);
        var up = CopyAsync(net, pod, cts.Token);
        try
        {
            await CopyAsync(pod, net, cts.Token).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                local.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // Already reset by the peer.
            }
            catch (ObjectDisposedException)
            {
            }
            await cts.CancelAsync().ConfigureAwait(false);
            try
            {
                await up.ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or KtException)
            {
                // The upstream copy ends with the connection; its error says nothing the downstream one did not.
            }
        }
    }

    private static async Task CopyAsync(Stream from, Stream to, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer.AsMemory(0, BufferSize), ct).ConfigureAwait(false);
                if (n == 0) return;
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
