using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public class RelayTests
{
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
