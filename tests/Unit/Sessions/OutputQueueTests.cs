using KtConnect.Engine.Sessions;

namespace KtConnect.Tests.Unit.Sessions;

public sealed class OutputQueueTests
{
    [Fact]
    public void Messages_from_worker_threads_are_delivered_on_the_pumping_thread_in_order()
    {
        using var queue = new OutputQueue();
        var pumpThread = Environment.CurrentManagedThreadId;
        var delivered = new List<(OutputKind, string, int)>();
        var work = Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                queue.Verbose("step " + i);
                if (i % 10 == 0) await Task.Yield();
            }
            queue.Progress("Starting shadow pod", "Pulling image", 40);
            queue.Warning("local port 8080 is not listening");
            return 42;
        });

        var result = queue.Pump(work, m => delivered.Add((m.Kind, m.Text, Environment.CurrentManagedThreadId)));

        Assert.Equal(42, result);
        Assert.Equal(52, delivered.Count);
        Assert.All(delivered, d => Assert.Equal(pumpThread, d.Item3));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => "step " + i), delivered.Take(50).Select(d => d.Item2));
        Assert.Equal((OutputKind.Progress, "Pulling image"), (delivered[50].Item1, delivered[50].Item2));
        Assert.Equal(OutputKind.Warning, delivered[51].Item1);
    }

    [Fact]
    public void The_work_exception_reaches_the_pumping_thread_after_its_messages()
    {
        using var queue = new OutputQueue();
        var delivered = new List<string>();
        var work = Task.Run(() =>
        {
            queue.Verbose("creating pod");
            throw new InvalidOperationException("boom");
        });

        var e = Assert.Throws<InvalidOperationException>(() => queue.Pump(work, m => delivered.Add(m.Text)));

        Assert.Equal("boom", e.Message);
        Assert.Equal(["creating pod"], delivered);
    }

    [Fact]
    public void Messages_after_dispose_are_dropped_without_failing_the_writer()
    {
        var queue = new OutputQueue();
        queue.Verbose("before");
        queue.Dispose();

        queue.Verbose("after");
        queue.Warning("after");
        queue.Progress("a", "b");

        var delivered = new List<string>();
        queue.Drain(m => delivered.Add(m.Text));
        Assert.Equal(["before"], delivered);
    }
}
