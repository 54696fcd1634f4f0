using KtConnect.Engine.Net;
using KtConnect.Engine.Ssh;

namespace KtConnect.Engine.Sessions.Tunnel;

/// <summary>
/// An SSH channel as the Net stack and the DNS client expect a flow's far end: <see cref="IHalfCloseStream"/> maps
/// to channel EOF, and the SSH layer's typed errors surface as <see cref="IOException"/> (inner: the
/// <see cref="SshException"/>) because the relays treat IOException as "this flow broke" and nothing else.
/// Zero-byte reads are passed through; the SSH channel completes one once data, EOF or a failure is there (a wait,
/// as on a socket), so a relay holds no buffer, and no lent send space, while its flow is idle.
/// </summary>
public sealed class SshFlowStream : Stream, IHalfCloseStream
{
    private readonly SshChannelStream _channel;

    public SshFlowStream(SshChannelStream channel) => _channel = channel ?? throw new ArgumentNullException(nameof(channel));

    /// <summary>The channel underneath.</summary>
    public SshChannelStream Channel => _channel;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await _channel.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (SshException e)
        {
            throw Broken(e);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            await _channel.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (SshException e)
        {
            throw Broken(e);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Channel EOF: the destination's socket sees end of stream; replies still flow back.</summary>
    public async Task ShutdownWriteAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _channel.CompleteWritesAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SshException e)
        {
            throw Broken(e);
        }
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        // Same as DisposeAsync but without waiting: the close is sent in the background (bounded).
        if (disposing && !_channel.Closed.IsCompleted) _ = CloseAsync();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_channel.Closed.IsCompleted) await CloseAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Sends CLOSE unless the channel is already closed or its connection already died (then there is nothing to say,
    /// and sending on a disposed connection was seen to never return); bounded in any case.
    /// </summary>
    private async Task CloseAsync()
    {
        try
        {
            await _channel.DisposeAsync().AsTask().WaitAsync(CloseTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The connection is stuck; its keepalive (or the link's reconnect) ends it and every channel with it.
        }
    }

    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private static IOException Broken(SshException e) => new("The SSH channel broke: " + e.Message, e);
}
