using System.Buffers;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public sealed class ByteRingTests
{
    [Fact]
    public void Lent_bytes_survive_the_ring_growing_and_being_released_until_the_loan_ends()
    {
        var ring = new ByteRing(1 << 20, new MemoryBudget(1 << 30));
        var first = Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray();
        Assert.Equal(4096, ring.Append(first));
        var lent = ring.Borrow();
        Assert.Equal(first, lent.ToArray());

        // Growing copies into a larger array; the lent one must not go back to the pool while it is lent. Renting
        // its size on this thread would hand it straight back, and scribbling on it would change the lent bytes.
        Assert.Equal(8192, ring.Append(new byte[8192]));
        ring.Release();
        var other = ArrayPool<byte>.Shared.Rent(4096);
        other.AsSpan().Fill(0xEE);
        Assert.Equal(first, lent.ToArray());
        ArrayPool<byte>.Shared.Return(other);

        ring.EndBorrow();
        Assert.True(ring.Borrow().IsEmpty);
    }

    [Fact]
    public void A_loan_is_the_readable_run_up_to_the_wrap_and_one_at_a_time()
    {
        var ring = new ByteRing(4096, new MemoryBudget(1 << 30));
        ring.Append(new byte[3000]);
        ring.Discard(2000);
        ring.Append(Enumerable.Repeat((byte)7, 2000).ToArray());
        // 3,000 readable bytes from offset 2,000 of the 4 KiB array: 2,096 lie before its end, the rest wrapped.
        var lent = ring.Borrow();
        Assert.Equal(2096, lent.Length);
        Assert.Equal(7, lent.Span[^1]);
        Assert.Throws<InvalidOperationException>(() => ring.Borrow());
        ring.EndBorrow();
    }

    [Fact]
    public void Free_space_is_lent_in_one_piece_up_to_the_wrap_and_kept_in_place_while_the_head_empties()
    {
        var ring = new ByteRing(4096, new MemoryBudget(1 << 30));
        ring.Append(new byte[3000]);
        ring.Discard(2000);
        // 1,000 bytes from offset 2,000: the free space after them runs 1,096 bytes to the array's end.
        var space = ring.BorrowFree(4096);
        Assert.Equal(1096, space.Length);
        Assert.Throws<InvalidOperationException>(() => ring.BorrowFree(1));
        Enumerable.Range(0, 10).Select(i => (byte)(i + 1)).ToArray().CopyTo(space.Span);
        // Everything before the loan is consumed meanwhile: the loan's bytes still follow where they were written.
        ring.Discard(1000);
        Assert.False(ring.Trimmable);
        ring.TrimIfEmpty();
        ring.EndBorrowFree(space, 10);
        Assert.Equal(10, ring.Count);
        var read = new byte[10];
        ring.Peek(0, read);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (byte)i), read);

        // Emptied while lent, the head stayed where it was; the next loan starts from the array's start, in one piece.
        var emptied = new ByteRing(4096, new MemoryBudget(1 << 30));
        emptied.Append(new byte[3000]);
        emptied.Discard(2000);
        var tail = emptied.BorrowFree(4096);
        emptied.Discard(1000);
        emptied.EndBorrowFree(tail, 0);
        Assert.Equal(4096, emptied.BorrowFree(4096).Length);

        // A ring released during a loan drops what the loan wrote.
        var again = ring.BorrowFree(16);
        ring.Release();
        ring.EndBorrowFree(again, 16);
        Assert.Equal(0, ring.Count);
    }

    [Fact]
    public void What_would_write_over_a_loan_is_refused_and_what_would_not_is_allowed()
    {
        var ring = new ByteRing(4096, new MemoryBudget(1 << 30));
        ring.Append(new byte[] { 1, 2, 3 });

        // A read loan: new bytes may arrive behind it, but nothing may consume it from under the reader.
        var lent = ring.Borrow();
        Assert.Equal(2, ring.Append(new byte[] { 4, 5 }));
        Assert.Throws<InvalidOperationException>(() => ring.Discard(1));
        ring.EndBorrow();
        ring.Discard(3);

        // A loan of free space: ACKs may consume what was sent, but an append would land in the writer's space.
        var space = ring.BorrowFree(16);
        ring.Discard(2);
        Assert.Throws<InvalidOperationException>(() => ring.Append(new byte[] { 9 }));
        space.Span[0] = 7;
        ring.EndBorrowFree(space, 1);
        Assert.Equal(1, ring.Append(new byte[] { 8 }));
        var read = new byte[2];
        ring.Peek(0, read);
        Assert.Equal(new byte[] { 7, 8 }, read);
        Assert.Equal(3, lent.Length);
    }
}
