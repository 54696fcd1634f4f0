using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public sealed class DeviceGateTests
{
    [Fact]
    public void Close_wakes_a_blocked_reader_and_returns_only_after_it_left()
    {
        var gate = new DeviceGate();
        using var woken = new ManualResetEventSlim();
        using var inside = new ManualResetEventSlim();
        var left = false;
        var reader = new Thread(() =>
        {
            Assert.True(gate.TryEnter());
            inside.Set();
            woken.Wait();
            Thread.Sleep(50); // still using the device after the wake-up
            Volatile.Write(ref left, true);
            gate.Exit();
        });
        reader.Start();
        inside.Wait();

        Assert.True(gate.Close(woken.Set, TimeSpan.FromSeconds(10)));
        Assert.True(Volatile.Read(ref left));
        Assert.False(gate.TryEnter());
        reader.Join();
    }

    [Fact]
    public void A_call_that_never_leaves_makes_close_report_failure_instead_of_hanging()
    {
        var gate = new DeviceGate();
        Assert.True(gate.TryEnter());
        var wakes = 0;
        Assert.False(gate.Close(() => wakes++, TimeSpan.FromMilliseconds(50)));
        Assert.True(wakes >= 1);
        Assert.True(gate.Close(() => { }, TimeSpan.Zero)); // already closed
    }

    [Fact]
    public void Read_runs_the_device_read_while_open_and_returns_closed_without_calling_it_after()
    {
        var gate = new DeviceGate();
        var calls = 0;
        int Reader(Span<byte> b)
        {
            calls++;
            b[0] = 7;
            return 1;
        }
        var buffer = new byte[4];
        Assert.Equal(1, gate.Read(buffer, Reader));
        Assert.Equal(7, buffer[0]);
        Assert.True(gate.Close(() => { }, TimeSpan.FromSeconds(1)));
        Assert.Equal(0, gate.Read(buffer, Reader));
        Assert.Equal(1, calls);
    }
}
