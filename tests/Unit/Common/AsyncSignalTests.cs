using KtConnect.Engine;

namespace KtConnect.Tests.Unit.Common;

public sealed class AsyncSignalTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_set_before_the_wait_is_not_lost()
    {
        var signal = new AsyncSignal();
        signal.Set();
        var wait = signal.WaitAsync(CancellationToken.None);
        Assert.True(wait.IsCompletedSuccessfully);
        await wait;
    }

    [Fact]
    public async Task It_resets_itself_and_many_sets_make_one_wake_up()
    {
        var signal = new AsyncSignal();
        signal.Set();
        signal.Set();
        signal.Set();
        await signal.WaitAsync(CancellationToken.None);
        var second = signal.WaitAsync(CancellationToken.None);
        Assert.False(second.IsCompleted);
        signal.Set();
        await second.AsTask().WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_set_wakes_the_pending_wait_on_another_thread()
    {
        var signal = new AsyncSignal();
        var wait = signal.WaitAsync(CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        await Task.Run(signal.Set);
        await wait.WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_cancelled_wait_throws_and_a_later_set_is_kept_for_the_next_wait()
    {
        var signal = new AsyncSignal();
        using var cts = new CancellationTokenSource();
        var wait = signal.WaitAsync(cts.Token).AsTask();
        await cts.CancelAsync();
        var e = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Timeout));
        Assert.Equal(cts.Token, e.CancellationToken);

        signal.Set();
        Assert.True(signal.WaitAsync(CancellationToken.None).IsCompletedSuccessfully);
    }

    [Fact]
    public void An_already_cancelled_token_cancels_at_once_unless_a_set_is_pending()
    {
        var signal = new AsyncSignal();
        var cancelled = new CancellationToken(canceled: true);
        Assert.True(signal.WaitAsync(cancelled).IsCanceled);
        signal.Set();
        Assert.True(signal.WaitAsync(cancelled).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task A_second_concurrent_wait_is_refused_and_the_first_still_wakes()
    {
        var signal = new AsyncSignal();
        var first = signal.WaitAsync(CancellationToken.None).AsTask();
        Assert.Throws<InvalidOperationException>(() => signal.WaitAsync(CancellationToken.None));
        signal.Set();
        await first.WaitAsync(Timeout);
    }

    [Fact]
    public void Waiting_reuses_one_source_and_allocates_nothing()
    {
        var signal = new AsyncSignal();
        using var cts = new CancellationTokenSource();
        Rounds(signal, 100, cts.Token); // warm up

        var before = GC.GetAllocatedBytesForCurrentThread();
        Rounds(signal, 1000, cts.Token);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task A_set_racing_the_wait_never_loses_a_wake_up()
    {
        var signal = new AsyncSignal();
        var produced = 0;
        var consumed = 0;
        const int rounds = 20_000;
        var consumer = Task.Run(async () =>
        {
            while (Volatile.Read(ref consumed) < rounds)
            {
                if (Volatile.Read(ref produced) > consumed)
                {
                    consumed++;
                    continue;
                }
                await signal.WaitAsync(CancellationToken.None);
            }
        });
        var producer = Task.Run(() =>
        {
            for (var i = 0; i < rounds; i++)
            {
                Interlocked.Increment(ref produced);
                signal.Set();
            }
        });
        await Task.WhenAll(producer, consumer).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(rounds, consumed);
    }

    /// <summary>A pending wait completed by Set, then a sticky Set consumed by the next wait; all synchronous.</summary>
    private static void Rounds(AsyncSignal signal, int count, CancellationToken ct)
    {
        for (var i = 0; i < count; i++)
        {
            var pending = signal.WaitAsync(ct);
            signal.Set();
            Assert.True(pending.IsCompletedSuccessfully);
            pending.GetAwaiter().GetResult();
            signal.Set();
            signal.WaitAsync(ct).GetAwaiter().GetResult();
        }
    }
}
