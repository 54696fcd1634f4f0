using KtConnect.Engine.Common;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Common;

public sealed class ReadAheadStreamTests
{
    [Fact]
    public async Task Bytes_arrive_in_order_whatever_the_read_sizes_and_the_end_reads_as_zero()
    {
        var data = new byte[300_000];
        new Random(7).NextBytes(data);
        await using var stream = new ReadAheadStream(new ScriptedStream(Enumerable.Range(0, 300).Select(i => (ReadOnlyMemory<byte>)data.AsMemory(i * 1000, 1000))), chunkSize: 1000, maxChunks: 4);

        var got = new MemoryStream();
        var sizes = new[] { 1, 999, 1000, 1001, 4096, 3 };
        var buffer = new byte[4096];
        for (var i = 0; ; i++)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(0, sizes[i % sizes.Length]));
            if (n == 0) break;
            got.Write(buffer, 0, n);
        }
        Assert.Equal(data, got.ToArray());
        Assert.Equal(0, await stream.ReadAsync(buffer));
    }

    [Fact]
    public async Task It_reads_ahead_of_its_reader_up_to_its_bound_and_a_read_takes_all_that_is_ready()
    {
        var inner = new ScriptedStream(Enumerable.Repeat(new ReadOnlyMemory<byte>(new byte[10]), 1000));
        await using var stream = new ReadAheadStream(inner, chunkSize: 10, maxChunks: 4);

        // Four chunks queued, and a fifth read waiting for room.
        await Wait.UntilAsync(() => inner.Reads == 5, "five reads ahead");
        await Task.Delay(50);
        Assert.Equal(5, inner.Reads);

        // One read takes the four queued chunks, and any that come in while it copies; that frees room for more.
        var n = await stream.ReadAsync(new byte[100]);
        Assert.InRange(n, 40, 100);
        await Wait.UntilAsync(() => inner.Reads >= 9, "the read-ahead to go on once there is room");
    }

    [Fact]
    public async Task A_failure_of_the_inner_stream_reaches_the_reader_as_thrown_after_the_bytes_before_it()
    {
        var failure = new IOException("the port-forward broke");
        await using var stream = new ReadAheadStream(new ScriptedStream([new byte[] { 1, 2, 3 }], failure));

        var buffer = new byte[10];
        Assert.Equal(3, await stream.ReadAsync(buffer));
        Assert.Equal(new byte[] { 1, 2, 3 }, buffer[..3]);
        var thrown = await Assert.ThrowsAsync<IOException>(async () => _ = await stream.ReadAsync(buffer));
        Assert.Same(failure, thrown);
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_without_taking_it()
    {
        var gate = new TaskCompletionSource();
        var inner = new ScriptedStream([new byte[] { 9, 8 }]) { Gate = gate.Task };
        await using var stream = new ReadAheadStream(inner);

        var wait = stream.ReadAsync(Memory<byte>.Empty).AsTask();
        await Task.Delay(50);
        Assert.False(wait.IsCompleted);
        gate.SetResult();
        Assert.Equal(0, await wait);
        var buffer = new byte[4];
        Assert.Equal(2, await stream.ReadAsync(buffer));
        Assert.Equal(new byte[] { 9, 8 }, buffer[..2]);
    }

    [Fact]
    public async Task A_cancelled_read_leaves_the_stream_usable()
    {
        var gate = new TaskCompletionSource();
        await using var stream = new ReadAheadStream(new ScriptedStream([new byte[] { 5 }]) { Gate = gate.Task });
        using var cts = new CancellationTokenSource(50);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => _ = await stream.ReadAsync(new byte[1], cts.Token));
        gate.SetResult();
        var buffer = new byte[1];
        Assert.Equal(1, await stream.ReadAsync(buffer));
        Assert.Equal(5, buffer[0]);
    }

    [Fact]
    public async Task Disposal_closes_the_inner_stream_before_its_pending_read_is_cancelled_and_ends_the_read_ahead()
    {
        var inner = new ScriptedStream([]) { Gate = new TaskCompletionSource().Task };
        var stream = new ReadAheadStream(inner);
        await Wait.UntilAsync(() => inner.Reads == 1, "the read-ahead's first read");

        await stream.DisposeAsync();
        Assert.True(inner.Disposed);
        // A port-forward closes its WebSocket cleanly only if its read is not cancelled first.
        Assert.True(inner.DisposedBeforeReadCancelled);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => _ = await stream.ReadAsync(new byte[1]));
    }

    [Fact]
    public async Task Writes_go_straight_to_the_inner_stream()
    {
        var inner = new ScriptedStream([]) { Gate = new TaskCompletionSource().Task };
        await using var stream = new ReadAheadStream(inner);
        await stream.WriteAsync(new byte[] { 1, 2 });
        await stream.WriteAsync(new byte[] { 3 });
        Assert.Equal(new byte[] { 1, 2, 3 }, inner.Written.ToArray());
    }

    /// <summary>Returns the scripted reads in turn (after <see cref="Gate"/>), then the failure or the end.</summary>
    private sealed class ScriptedStream(IEnumerable<ReadOnlyMemory<byte>> reads, Exception? failure = null) : TestStream
    {
        private readonly Queue<ReadOnlyMemory<byte>> _reads = new(reads);
        private int _readCount;
        public Task Gate { get; init; } = Task.CompletedTask;
        public int Reads => Volatile.Read(ref _readCount);
        public bool Disposed { get; private set; }
        public bool DisposedBeforeReadCancelled { get; private set; }
        public MemoryStream Written { get; } = new();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _readCount);
            try
            {
                await Gate.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                DisposedBeforeReadCancelled = Disposed;
                throw;
            }
            if (_reads.TryDequeue(out var next))
            {
                next.CopyTo(buffer);
                return next.Length;
            }
            if (failure is not null) throw failure;
            return 0;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Written.Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }
}
