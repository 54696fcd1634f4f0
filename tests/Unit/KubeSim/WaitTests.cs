using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class WaitTests
{
    [Fact]
    public async Task It_returns_once_the_condition_holds()
    {
        var polls = 0;
        await Wait.UntilAsync(() => ++polls == 3, "the third poll", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(1));
        Assert.Equal(3, polls);
        await Wait.UntilAsync(async () => { await Task.Yield(); return true; }, "an async condition");
    }

    [Fact]
    public async Task A_timeout_names_what_was_awaited_and_for_how_long()
    {
        var e = await Assert.ThrowsAsync<TimeoutException>(() =>
            Wait.UntilAsync(() => false, "the moon to turn blue", TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(5)));
        Assert.Equal("Timed out after 0.05 s waiting for the moon to turn blue.", e.Message);
    }

    [Fact]
    public async Task ForAsync_returns_the_probe_that_satisfied_it_and_a_timeout_shows_the_last_one_seen()
    {
        var polls = 0;
        var got = await Wait.ForAsync(() => Task.FromResult(++polls), n => n >= 3, "three polls", n => $"{n} polls", poll: TimeSpan.FromMilliseconds(1));
        Assert.Equal(3, got);

        var e = await Assert.ThrowsAsync<TimeoutException>(() =>
            Wait.ForAsync(() => Task.FromResult("phase Pending"), s => s == "phase Running", "the pod to run", s => s,
                TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(5)));
        Assert.Equal("Timed out after 0.05 s waiting for the pod to run. Last seen: phase Pending", e.Message);
    }

    [Fact]
    public async Task A_failing_condition_ends_the_wait_with_its_exception()
    {
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            Wait.UntilAsync(new Func<bool>(() => throw new InvalidOperationException("the cluster failed")), "anything"));
    }
}
