using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public class RelayTests
{
    [Fact]
    public void RelayBuffer_StartsSmall_DoublesOnlyWhileReadsFillIt_AndStopsAtItsMaximum()
    {
        var size = new RelayBufferSize(100 * 1024);
        Assert.Equal(16 * 1024, size.Next);
        size.Read(1000); // a short request: stays small
        Assert.Equal(16 * 1024, size.Next);
        size.Read(16 * 1024);
        Assert.Equal(32 * 1024, size.Next);
        size.Read(32 * 1024);
        size.Read(64 * 1024);
        Assert.Equal(100 * 1024, size.Next);
        size.Read(100 * 1024);
        Assert.Equal(100 * 1024, size.Next);
        Assert.Equal(4096, new RelayBufferSize(4096).Next);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RelayBufferSize(0));
    }

    [Fact]
    public async Task Relay_DeliversBytesThatArrivedBeforeItStarted()
    {
        using var l1 = new TcpListener(IPAddress.Loopback, 0);
        using var l2 = new TcpListener(IPAddress.Loopback, 0);
        l1.Start();
        l2.Start();
        using var client = new TcpClient();
        await client.ConnectAsync((IPEndPoint)l1.LocalEndpoint);
        await client.GetStream().WriteAsync("early"u8.ToArray());
        using var accepted = await l1.AcceptSocketAsync();
        await Task.Delay(100); // make sure the bytes are queued before the relay starts (the case under test)
        using var far = new TcpClient();
        await far.ConnectAsync((IPEndPoint)l2.LocalEndpoint);
        using var farAccepted = await l2.AcceptSocketAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var relay = Socks5Server.RelayAsync(new HalfCloseNetworkStream(accepted), far.GetStream(), cts.Token);
        var buf = new byte[5];
        var n = 0;
        while (n < 5) n += await farAccepted.ReceiveAsync(buf.AsMemory(n), cts.Token);
        Assert.Equal("early"u8.ToArray(), buf);
        await cts.CancelAsync();
        await relay;
    }
}
