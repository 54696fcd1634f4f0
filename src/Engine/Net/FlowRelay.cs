using Microsoft.Extensions.Logging;

namespace KtConnect.Engine.Net;

/// <summary>
/// Copies bytes between an accepted TCP flow and the dialed stream, both ways, with half-close: the
/// client's FIN becomes the stream's EOF and the stream's EOF becomes our FIN. A failure on either side
/// resets the other. Backpressure is natural: a slow stream leaves data in the flow's receive buffer,
/// whose window then closes; a slow client leaves the send buffer full, so we stop reading the stream.
/// Neither direction has a buffer of its own: client to stream writes straight from the flow's receive buffer
/// (<see cref="TcpConnection.BeginRead"/>), and stream to client reads straight into its send buffer
/// (<see cref="TcpConnection.BeginWriteAsync"/>), in pieces sized by a <see cref="RelayBufferSize"/>.
/// </summary>
public static class FlowRelay
{
    public static async Task RunAsync(TcpConnection connection, Stream stream, int bufferSize, ILogger logger,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(logger);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, connection.ResetToken);
        var up = UpAsync(connection, stream, bufferSize, cts);
        var down = DownAsync(connection, stream, bufferSize, cts);
        await Task.WhenAll(up, down).ConfigureAwait(false);
        if (!await up.ConfigureAwait(false) || !await down.ConfigureAwait(false))
        {
            connection.Abort();
            logger.LogDebug("flow {Flow} ended with a reset", connection.Key);
            return;
        }
        // Both sides closed cleanly; let the last bytes reach the client before the stream goes away.
        try
        {
            await connection.WaitSendDrainedAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Client to stream. Returns false when the flow must be reset.</summary>
    private static async Task<bool> UpAsync(TcpConnection connection, Stream stream, int bufferSize, CancellationTokenSource cts)
    {
        try
        {
            while (true)
            {
                // No buffer of our own: the flow lends its received bytes for the write and consumes them after it.
                await connection.WaitReadableAsync(cts.Token).ConfigureAwait(false);
                var data = connection.BeginRead();
                var written = 0;
                try
                {
                    if (data.IsEmpty) break;
                    data = data[..Math.Min(data.Length, bufferSize)];
                    await stream.WriteAsync(data, cts.Token).ConfigureAwait(false);
                    written = data.Length;
                }
                finally
                {
                    connection.EndRead(written);
                }
            }
            if (stream is IHalfCloseStream half) await half.ShutdownWriteAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            await cts.CancelAsync().ConfigureAwait(false);
            return false;
        }
    }

    /// <summary>Stream to client. Returns false when the flow must be reset.</summary>
    private static async Task<bool> DownAsync(TcpConnection connection, Stream stream, int bufferSize, CancellationTokenSource cts)
    {
        try
        {
            var size = new RelayBufferSize(bufferSize);
            while (true)
            {
                // A zero-byte read waits for data without a buffer (sockets and SSH channels support it); then the
                // bytes are read straight into the flow's send buffer.
                await stream.ReadAsync(Memory<byte>.Empty, cts.Token).ConfigureAwait(false);
                var space = await connection.BeginWriteAsync(size.Next, cts.Token).ConfigureAwait(false);
                var n = 0;
                try
                {
                    n = await stream.ReadAsync(space, cts.Token).ConfigureAwait(false);
                }
                finally
                {
                    connection.EndWrite(space, n);
                }
                if (n == 0) break;
                size.Read(n);
            }
            connection.ShutdownWrite();
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            await cts.CancelAsync().ConfigureAwait(false);
            return false;
        }
    }
}

/// <summary>
/// The buffer size for one direction of a relay: it starts small and doubles whenever a read fills the buffer, up to
/// <c>max</c>. A short request/response never takes a large buffer (the pool often has none at hand, and a fresh one
/// is a large-object allocation whose pages the kernel must zero), while a bulk flow reaches the large size within a
/// few reads and then moves its bytes in few, large socket writes.
/// </summary>
public struct RelayBufferSize
{
    public const int First = 16 * 1024;
    private readonly int _max;

    public RelayBufferSize(int max)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        _max = max;
        Next = Math.Min(First, max);
    }

    /// <summary>The size to rent and read with next.</summary>
    public int Next { get; private set; }

    /// <summary>Records a read of <paramref name="n"/> bytes into a buffer of <see cref="Next"/> bytes.</summary>
    public void Read(int n)
    {
        if (n >= Next) Next = Math.Min(Next * 2, _max);
    }
}
