using System.Buffers;
using System.Net;
using System.Runtime.InteropServices;

namespace KtConnect.Engine.Net;

/// <summary>Milliseconds on a monotonic clock. Injected so that TCP timers can be driven by tests.</summary>
public interface IClock
{
    long NowMilliseconds { get; }
}

public sealed class SystemClock : IClock
{
    public static readonly SystemClock Instance = new();

    public long NowMilliseconds => Environment.TickCount64;
}

/// <summary>Where the stack's outgoing packets go (the tun device, or a test's list).</summary>
public interface IPacketSink
{
    void Send(ReadOnlySpan<byte> packet);

    /// <summary>
    /// True when the TCP segments sent here may carry a partial checksum (the pseudo-header sum only) that the
    /// device below finishes, so the stack never reads a payload just to checksum it.
    /// </summary>
    bool TakesPartialTcpChecksums => false;

    /// <summary>
    /// Sends a TCP segment with a partial checksum (only where <see cref="TakesPartialTcpChecksums"/>) given in pieces:
    /// its headers, then its payload, which may lie in two pieces (a ring buffer's end and start).
    /// </summary>
    void Send(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2) =>
        PacketPieces.Join(headers, payload1, payload2, this, static (packet, sink) => sink.Send(packet));
}

/// <summary>For a sink or device that takes a packet only whole: joins its pieces in a pooled buffer.</summary>
internal static class PacketPieces
{
    public static void Join<TState>(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, TState state,
        ReadOnlySpanAction<byte, TState> write)
    {
        var length = headers.Length + payload1.Length + payload2.Length;
        var joined = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            headers.CopyTo(joined);
            payload1.CopyTo(joined.AsSpan(headers.Length));
            payload2.CopyTo(joined.AsSpan(headers.Length + payload1.Length));
            write(joined.AsSpan(0, length), state);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(joined);
        }
    }
}

/// <summary>
/// Opens the far end of an accepted flow. Here a plain TCP dialer; later an SSH direct-tcpip channel.
/// Throwing (any exception) refuses the flow: the client gets a RST.
/// </summary>
public interface IFlowDialer
{
    Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken);
}

/// <summary>A stream that can send EOF while still reading (TCP FIN, SSH channel EOF).</summary>
public interface IHalfCloseStream
{
    Task ShutdownWriteAsync(CancellationToken cancellationToken);
}

/// <summary>A byte budget shared by all flows: buffers grow only while the total stays under the limit.</summary>
public sealed class MemoryBudget
{
    private long _used;

    public MemoryBudget(long limit) => Limit = limit;

    public long Limit { get; }

    public long Used => Interlocked.Read(ref _used);

    public bool TryReserve(long bytes)
    {
        if (Interlocked.Add(ref _used, bytes) <= Limit) return true;
        Interlocked.Add(ref _used, -bytes);
        return false;
    }

    public void Release(long bytes) => Interlocked.Add(ref _used, -bytes);
}

/// <summary>
/// A ring buffer of bytes that grows on demand (pooled arrays, charged to a <see cref="MemoryBudget"/>) up to
/// a maximum, and gives its array back when emptied, so an idle flow holds no buffer at all.
/// </summary>
internal sealed class ByteRing
{
    private const int MinCapacity = 4096;
    private readonly int _max;
    private readonly MemoryBudget _budget;
    private byte[]? _buffer;
    private int _head;
    // While a reader holds memory lent by Borrow, an array the ring replaces goes back to the pool only at EndBorrow.
    private bool _lent;
    // The loan is of free space (BorrowFree), which an Append would write over.
    private bool _lentFree;
    private byte[]? _retired;

    public ByteRing(int max, MemoryBudget budget)
    {
        _max = max;
        _budget = budget;
    }

    public int Count { get; private set; }

    public int Max => _max;

    public int Free => _max - Count;

    /// <summary>Bytes that could be appended right now without asking the budget for more.</summary>
    public int Capacity => _buffer?.Length ?? 0;

    /// <summary>Appends as much of <paramref name="data"/> as fits; returns how much.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        if (_lentFree) throw new InvalidOperationException("The ring's free space is lent: end that loan before appending.");
        var want = Math.Min(data.Length, _max - Count);
        if (want <= 0) return 0;
        EnsureCapacity(Count + want);
        var n = Math.Min(want, Capacity - Count);
        if (n <= 0) return 0;
        var buf = _buffer!;
        var tail = (_head + Count) & (buf.Length - 1);
        var first = Math.Min(n, buf.Length - tail);
        data[..first].CopyTo(buf.AsSpan(tail));
        if (n > first) data[first..n].CopyTo(buf);
        Count += n;
        return n;
    }

    /// <summary>Copies bytes starting <paramref name="offset"/> from the head into <paramref name="destination"/>.</summary>
    public void Peek(int offset, Span<byte> destination)
    {
        Slices(offset, destination.Length, out var first, out var second);
        first.CopyTo(destination);
        second.CopyTo(destination[first.Length..]);
    }

    /// <summary>
    /// The <paramref name="length"/> bytes starting <paramref name="offset"/> from the head, where they lie: in one piece,
    /// or in two when they wrap past the array's end. Valid until the ring next changes.
    /// </summary>
    public void Slices(int offset, int length, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        if (offset < 0 || length < 0 || offset + length > Count) throw new ArgumentOutOfRangeException(nameof(offset));
        first = second = default;
        if (length == 0) return;
        var buf = _buffer!;
        var start = (_head + offset) & (buf.Length - 1);
        var n = Math.Min(length, buf.Length - start);
        first = buf.AsSpan(start, n);
        second = buf.AsSpan(0, length - n);
    }

    /// <summary>
    /// Lends the readable bytes that lie in one piece from the head, without copying them: they stay valid and unchanged
    /// until <see cref="EndBorrow"/>, whatever is appended, grown or released meanwhile. One loan at a time.
    /// </summary>
    public ReadOnlyMemory<byte> Borrow()
    {
        if (_lent) throw new InvalidOperationException("The ring's bytes are already lent.");
        if (Count == 0) return ReadOnlyMemory<byte>.Empty;
        _lent = true;
        return _buffer.AsMemory(_head, Math.Min(Count, _buffer!.Length - _head));
    }

    /// <summary>
    /// Lends free space at the tail, in one piece and at most <paramref name="max"/> bytes, for a writer to fill in place;
    /// <see cref="EndBorrowFree"/> appends what it wrote. Empty when the ring is full (or the budget allows no more).
    /// The space stays the writer's, whatever is discarded or released meanwhile. One loan at a time.
    /// </summary>
    public Memory<byte> BorrowFree(int max)
    {
        if (_lent) throw new InvalidOperationException("The ring's bytes are already lent.");
        // Emptied by ACKs during the last loan, the head stayed put: from the start, the whole array can be lent.
        if (Count == 0) _head = 0;
        var want = Math.Min(max, _max - Count);
        if (want <= 0) return Memory<byte>.Empty;
        EnsureCapacity(Count + want);
        var buf = _buffer;
        if (buf is null || Count == buf.Length) return Memory<byte>.Empty;
        var tail = (_head + Count) & (buf.Length - 1);
        var n = Math.Min(want, Math.Min(buf.Length - Count, buf.Length - tail));
        _lent = _lentFree = true;
        return buf.AsMemory(tail, n);
    }

    /// <summary>
    /// Ends the loan of <see cref="BorrowFree"/>: its first <paramref name="written"/> bytes are appended, unless the ring
    /// was released meanwhile (then they are dropped with the array).
    /// </summary>
    public void EndBorrowFree(Memory<byte> lent, int written)
    {
        var same = _buffer is not null && MemoryMarshal.TryGetArray<byte>(lent, out var seg) && ReferenceEquals(seg.Array, _buffer);
        EndBorrow();
        if (!same || written <= 0) return;
        if (written > lent.Length) throw new ArgumentOutOfRangeException(nameof(written));
        Count += written;
    }

    /// <summary>Ends the loan of <see cref="Borrow"/>; an array replaced meanwhile goes back to the pool now.</summary>
    public void EndBorrow()
    {
        _lent = _lentFree = false;
        if (_retired is null) return;
        ArrayPool<byte>.Shared.Return(_retired);
        _retired = null;
    }

    public void Discard(int n)
    {
        if (n < 0 || n > Count) throw new ArgumentOutOfRangeException(nameof(n));
        if (n == 0) return;
        if (_lent && !_lentFree) throw new InvalidOperationException("The ring's bytes are lent: end that loan before discarding.");
        _head = (_head + n) & (_buffer!.Length - 1);
        Count -= n;
        // Back to the start when empty, unless a writer is filling space lent after the tail.
        if (Count == 0 && !_lent) _head = 0;
    }

    /// <summary>Empty, yet holding an array that <see cref="TrimIfEmpty"/> would give back.</summary>
    public bool Trimmable => Count == 0 && _buffer is not null && !_lent;

    /// <summary>Gives the array back when empty (called from the timer, not per packet, to avoid churn), never while lent.</summary>
    public void TrimIfEmpty()
    {
        if (!Trimmable) return;
        Release();
    }

    public void Release()
    {
        if (_buffer is null) return;
        if (_buffer.Length > MinCapacity) _budget.Release(_buffer.Length - MinCapacity);
        Retire(_buffer);
        _buffer = null;
        _head = 0;
        Count = 0;
    }

    private void EnsureCapacity(int needed)
    {
        var cap = Capacity;
        if (needed <= cap) return;
        var target = Math.Max(MinCapacity, cap);
        while (target < needed && target < _max) target *= 2;
        target = Math.Min(target, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)_max));
        if (target <= cap) return;
        // The first 4 KiB are free of the budget so every flow can always make progress.
        if (target > MinCapacity && !_budget.TryReserve(target - MinCapacity))
        {
            if (cap != 0) return;
            target = MinCapacity;
        }
        var next = ArrayPool<byte>.Shared.Rent(target);
        if (next.Length != target)
        {
            // Pools may hand out larger arrays; the ring needs an exact power of two to mask indexes.
            ArrayPool<byte>.Shared.Return(next);
            next = new byte[target];
        }
        if (_buffer is not null)
        {
            Peek(0, next.AsSpan(0, Count));
            if (_buffer.Length > MinCapacity) _budget.Release(_buffer.Length - MinCapacity);
            Retire(_buffer);
        }
        _buffer = next;
        _head = 0;
    }

    /// <summary>Returns a replaced array to the pool, or keeps it until the loan that may still read it ends.</summary>
    private void Retire(byte[] array)
    {
        if (!_lent)
        {
            ArrayPool<byte>.Shared.Return(array);
            return;
        }
        // Only the lent array can be read by the borrower; one replaced after it was never lent.
        if (_retired is null) _retired = array;
        else ArrayPool<byte>.Shared.Return(array);
    }
}
