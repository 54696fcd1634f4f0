using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;

namespace KtConnect.Engine.Sessions.Forward;

/// <summary>
/// Copies one accepted local connection to a pod's port-forward stream and back. A port-forward has no half-close,
/// so when the local side ends its input the pod cannot be told; the relay then lingers while the pod is still
/// answering and ends once the pod has been quiet for <see cref="LingerIdle"/> (or ends by itself). Without that, a
/// keep-alive server in the pod would hold every finished connection open. The pod side ending, either side failing
/// or the session stopping ends the connection at once.
/// </summary>
internal static class PodRelay
{
    private const int BufferSize = 32 * 1024;

    /// <summary>How long the pod may stay quiet after the local side finished sending before the connection is closed.</summary>
    internal static readonly TimeSpan LingerIdle = TimeSpan.FromSeconds(2);

    public static async Task RunAsync(Socket local, Stream pod, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await using var net = new NetworkStream(local, ownsSocket: false);
        long lastDown = Stopwatch.GetTimestamp();
        var up = CopyAsync(net, pod, null, cts.Token);
        var down = CopyAsync(pod, net, () => Volatile.Write(ref lastDown, Stopwatch.GetTimestamp()), cts.Token);
        try
        {
            var first = await Task.WhenAny(up, down).ConfigureAwait(false);
            if (first == up && up.IsCompletedSuccessfully)
            {
                while (!down.IsCompleted && Stopwatch.GetElapsedTime(Volatile.Read(ref lastDown)) < LingerIdle)
                    await Task.WhenAny(down, Task.Delay(TimeSpan.FromMilliseconds(200), cts.Token)).ConfigureAwait(false);
            }
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
            await Quietly(up).ConfigureAwait(false);
            await Quietly(down).ConfigureAwait(false);
        }
    }

    private static async Task Quietly(Task copy)
    {
        try
        {
            await copy.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or KtException)
        {
            // A copy ends with its connection: a reset, the pod going away or the session stopping.
        }
    }

    private static async Task CopyAsync(Stream from, Stream to, Action? onData, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer.AsMemory(0, BufferSize), ct).ConfigureAwait(false);
                if (n == 0) return;
                onData?.Invoke();
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
