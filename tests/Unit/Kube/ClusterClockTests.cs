using KtConnect.Engine.Kube;

namespace KtConnect.Tests.Unit.Kube;

public sealed class ClusterClockTests
{
    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void Offset_is_estimated_at_the_midpoint_of_the_round_trip()
    {
        var local = new DateTimeOffset(2026, 11, 21, 14, 0, 0, TimeSpan.Zero);
        var time = new FixedTime(local);
        var clock = new ClusterClock(time);
        Assert.False(clock.IsKnown);
        Assert.Equal(local, clock.UtcNow);
        // The server is 100 s ahead; the request took 200 ms.
        clock.Observe(local.AddSeconds(100).AddMilliseconds(100).AddMilliseconds(-600), local, local.AddMilliseconds(200));
        Assert.True(clock.IsKnown);
        Assert.Equal(TimeSpan.FromSeconds(100) - TimeSpan.FromMilliseconds(600) + TimeSpan.FromMilliseconds(500), clock.Offset);
        time.Now = local.AddMinutes(1);
        Assert.Equal(local.AddMinutes(1) + clock.Offset, clock.UtcNow);
    }
}
