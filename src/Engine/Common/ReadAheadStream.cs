using System.Buffers;
using System.Threading.Channels;

namespace KtConnect.Engine.Common;

/// <summary>
/// Reads its inner stream ahead on a task of its own, into a bounded queue of pooled chunks, so the work that
/// produces the bytes (for a port-forward: TLS decryption and WebSocket decoding) runs on one core while the
/// reader's work on them (SSH decryption, relaying) runs on another. Without it both run one after the other on
/// the thread that completed the socket read. At most <c>maxChunks</c> reads of the inner stream wait unread.
/// A failure of the inner stream reaches the reader, as it was thrown, after the bytes read before it.
/// Writes, flushes and disposal go straight to the inner stream. One reader and one writer may run concurrently.
/// </summary>
public sealed class ReadAheadStream : Stream
{
    private readonly Stream _inner;
    private readonly int _chunkSize;
    private readonly Channel<(byte[] Chunk, int Length)> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;
    private byte[]? _current;
    private int _offset;
    private int _length;
    private int _disposed;

    public ReadAheadStream(Stream inner, int chunkSize = 64 * 1024, int maxChunks = 16)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChunks, 1);
        _inner = inner;
        _chunkSize = chunkSize;
        _queue = Channel.CreateBounded<(byte[], int)>(new BoundedChannelOptions(maxChunks) { SingleWriter = true });
        _pump = Task.Run(PumpAsync);
    }

    private async Task PumpAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var chunk = ArrayPool<byte>.Shared.Rent(_chunkSize);
                int n;
                try
                {
                    n = await _inner.ReadAsync(chunk.AsMemory(0, _chunkSize), _stop.Token).ConfigureAwait(false);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(chunk);
                    throw;
                }
                if (n == 0)
                {
                    ArrayPool<byte>.Shared.Return(chunk);
                    break;
                }
                await _queue.Writer.WriteAsync((chunk, n), _stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            failure = _disposed != 0 ? new ObjectDisposedException(nameof(ReadAheadStream)) : e;
        }
        _queue.Writer.TryComplete(failure);
        if (_disposed != 0) ReturnQueued();
    }

    /// <summary>
    /// Waits for the first chunk, then fills <paramref name="buffer"/> with as much as is already read, so a reader
    /// that falls behind catches up in one call.
    /// </summary>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_current is null)
        {
            (byte[] Chunk, int Length) next;
            while (!_queue.Reader.TryRead(out next))
            {
                // Throws the inner stream's failure as it was thrown; false at its end.
                if (!await _queue.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false)) return 0;
            }
            (_current, _offset, _length) = (next.Chunk, 0, next.Length);
        }
        // A zero-byte read ends here, as a socket's does: it waited for data and took none.
        var total = 0;
        while (total < buffer.Length)
        {
            var n = Math.Min(buffer.Length - total, _length - _offset);
            _current.AsSpan(_offset, n).CopyTo(buffer.Span[total..]);
            _offset += n;
            total += n;
            if (_offset < _length) break;
            ArrayPool<byte>.Shared.Return(_current);
            _current = null;
            if (!_queue.Reader.TryRead(out var more)) break;
            (_current, _offset, _length) = (more.Chunk, 0, more.Length);
        }
        return total;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _inner.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _inner.WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override void Flush() => _inner.Flush();

    public override bool CanRead => true;
    public override bool CanWrite => _inner.CanWrite;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Reads are async-only: the bytes arrive on the read-ahead task.</summary>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("ReadAheadStream is async-only: use ReadAsync.");

    public override void Write(byte[] buffer, int offset, int count) => _inner.Write(buffer, offset, count);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // The inner stream first, so a port-forward still closes cleanly; then whatever read or queue wait is left.
        await _inner.DisposeAsync().ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _pump.ConfigureAwait(false);
        ReturnQueued();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _inner.Dispose();
            _stop.Cancel();
            // The pump ends on its own and returns what it queued.
        }
        base.Dispose(disposing);
    }

    /// <summary>
    /// After disposal: queued chunks go back to the pool (each is taken once, by this or by a late read). The chunk a
    /// read may still be copying from is left to the GC rather than handed to another pool user.
    /// </summary>
    private void ReturnQueued()
    {
        while (_queue.Reader.TryRead(out var item)) ArrayPool<byte>.Shared.Return(item.Chunk);
    }
}
