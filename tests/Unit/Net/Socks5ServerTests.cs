using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public sealed class Socks5ServerTests : IAsyncLifetime
{
    private readonly Socket _echo = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _cts = new();
    private Task? _echoLoop;
    private int EchoPort => ((IPEndPoint)_echo.LocalEndPoint!).Port;

    public Task InitializeAsync()
    {
        _echo.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _echo.Listen(16);
        _echoLoop = Task.Run(async () =>
        {
            while (true)
            {
                Socket s;
                try
                {
                    s = await _echo.AcceptAsync(_cts.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
                _ = Task.Run(async () =>
                {
                    using (s)
                    {
                        var b = new byte[1024];
                        int n;
                        try
                        {
                            while ((n = await s.ReceiveAsync(b)) > 0) await s.SendAsync(b.AsMemory(0, n));
                        }
                        catch (SocketException)
                        {
                        }
                    }
                });
            }
        });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _cts.CancelAsync();
        _echo.Dispose();
        if (_echoLoop is not null) await _echoLoop;
    }

    private sealed class RecordingDialer(int echoPort) : IHostDialer
    {
        public List<(string Host, int Port)> Calls { get; } = [];

        public async Task<Stream> DialAsync(string host, int port, CancellationToken cancellationToken)
        {
            lock (Calls) Calls.Add((host, port));
            if (port == 1) throw new SocketException((int)SocketError.ConnectionRefused);
            if (port == 2) throw new SocketException((int)SocketError.HostNotFound);
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, echoPort), cancellationToken);
            return new HalfCloseNetworkStream(s);
        }
    }

    private static async Task<NetworkStream> ConnectAsync(Socks5Server server)
    {
        var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await c.ConnectAsync(server.LocalEndPoint);
        return new NetworkStream(c, ownsSocket: true);
    }

    private static async Task<byte[]> ReadAsync(Stream s, int n)
    {
        var b = new byte[n];
        await s.ReadExactlyAsync(b).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        return b;
    }

    [Fact]
    public async Task DomainName_IsPassedUnresolved_AndBytesAreRelayed()
    {
        var dialer = new RecordingDialer(EchoPort);
        await using var server = new Socks5Server(dialer);
        server.Start();
        await using var c = await ConnectAsync(server);
        await c.WriteAsync(new byte[] { 5, 1, 0 });
        Assert.Equal(new byte[] { 5, 0 }, await ReadAsync(c, 2));
        var name = "orders.dev.svc.cluster.local"u8.ToArray();
        await c.WriteAsync(new byte[] { 5, 1, 0, 3, (byte)name.Length }.Concat(name).Concat(new byte[] { 0x1F, 0x90 }).ToArray());
        var reply = await ReadAsync(c, 10);
        Assert.Equal(0, reply[1]);
        Assert.Equal(("orders.dev.svc.cluster.local", 8080), Assert.Single(dialer.Calls));
        await c.WriteAsync("ping"u8.ToArray());
        Assert.Equal("ping"u8.ToArray(), await ReadAsync(c, 4));
    }

    [Theory]
    [InlineData("10.96.0.1", 1)]
    [InlineData("fd00::1", 4)]
    public async Task AddressTypes_AreDecoded(string address, byte atyp)
    {
        var dialer = new RecordingDialer(EchoPort);
        await using var server = new Socks5Server(dialer);
        server.Start();
        await using var c = await ConnectAsync(server);
        await c.WriteAsync(new byte[] { 5, 1, 0 });
        await ReadAsync(c, 2);
        var ip = IPAddress.Parse(address).GetAddressBytes();
        await c.WriteAsync(new byte[] { 5, 1, 0, atyp }.Concat(ip).Concat(new byte[] { 0, 80 }).ToArray());
        Assert.Equal(0, (await ReadAsync(c, 10))[1]);
        Assert.Equal((address, 80), Assert.Single(dialer.Calls));
    }

    [Theory]
    [InlineData(1, 5)] // refused
    [InlineData(2, 4)] // host unreachable
    public async Task DialFailures_MapToReplyCodes(int port, byte code)
    {
        await using var server = new Socks5Server(new RecordingDialer(EchoPort));
        server.Start();
        await using var c = await ConnectAsync(server);
        await c.WriteAsync(new byte[] { 5, 1, 0 });
        await ReadAsync(c, 2);
        await c.WriteAsync(new byte[] { 5, 1, 0, 1, 10, 0, 0, 1, 0, (byte)port });
        Assert.Equal(code, (await ReadAsync(c, 10))[1]);
    }

    [Fact]
    public async Task Bind_IsNotSupported()
    {
        await using var server = new Socks5Server(new RecordingDialer(EchoPort));
        server.Start();
        await using var c = await ConnectAsync(server);
        await c.WriteAsync(new byte[] { 5, 1, 0 });
        await ReadAsync(c, 2);
        await c.WriteAsync(new byte[] { 5, 2, 0, 1, 10, 0, 0, 1, 0, 80 });
        Assert.Equal(7, (await ReadAsync(c, 10))[1]);
    }

    [Fact]
    public async Task UsernamePassword_IsRequired_WhenConfigured()
    {
        var options = new ProxyOptions { Username = "kt", Password = "secret" };
        await using var server = new Socks5Server(new RecordingDialer(EchoPort), options);
        server.Start();
        await using (var c = await ConnectAsync(server))
        {
            await c.WriteAsync(new byte[] { 5, 1, 0 });
            Assert.Equal(new byte[] { 5, 0xFF }, await ReadAsync(c, 2));
        }
        await using (var c = await ConnectAsync(server))
        {
            await c.WriteAsync(new byte[] { 5, 2, 0, 2 });
            Assert.Equal(new byte[] { 5, 2 }, await ReadAsync(c, 2));
            await c.WriteAsync(new byte[] { 1, 2, (byte)'k', (byte)'t', 3, (byte)'b', (byte)'a', (byte)'d' });
            Assert.Equal(new byte[] { 1, 1 }, await ReadAsync(c, 2));
        }
        await using (var c = await ConnectAsync(server))
        {
            await c.WriteAsync(new byte[] { 5, 1, 2 });
            await ReadAsync(c, 2);
            await c.WriteAsync(new byte[] { 1, 2, (byte)'k', (byte)'t', 6 }.Concat("secret"u8.ToArray()).ToArray());
            Assert.Equal(new byte[] { 1, 0 }, await ReadAsync(c, 2));
            await c.WriteAsync(new byte[] { 5, 1, 0, 1, 10, 0, 0, 1, 0, 80 });
            Assert.Equal(0, (await ReadAsync(c, 10))[1]);
        }
    }

    [Fact]
    public async Task HttpConnect_Tunnels_IncludingBytesSentWithTheRequest()
    {
        var dialer = new RecordingDialer(EchoPort);
        await using var server = new Socks5Server(dialer);
        server.Start();
        await using var c = await ConnectAsync(server);
        await c.WriteAsync("CONNECT [fd00::5]:443 HTTP/1.1\r\nHost: x\r\n\r\nearly"u8.ToArray());
        var expected = "HTTP/1.1 200 Connection established\r\n\r\n";
        Assert.Equal(expected, Encoding.ASCII.GetString(await ReadAsync(c, expected.Length)));
        Assert.Equal("early"u8.ToArray(), await ReadAsync(c, 5));
        Assert.Equal(("fd00::5", 443), Assert.Single(dialer.Calls));
    }

    [Fact]
    public async Task HttpConnect_RequiresBasicAuth_WhenConfigured_AndReports502OnDialFailure()
    {
        await using var server = new Socks5Server(new RecordingDialer(EchoPort), new ProxyOptions { Username = "kt", Password = "pw" });
        server.Start();
        await using (var c = await ConnectAsync(server))
        {
            await c.WriteAsync("CONNECT a:80 HTTP/1.1\r\n\r\n"u8.ToArray());
            Assert.StartsWith("HTTP/1.1 407", Encoding.ASCII.GetString(await ReadAsync(c, 12)));
        }
        await using (var c = await ConnectAsync(server))
        {
            var auth = Convert.ToBase64String("kt:pw"u8);
            await c.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n"));
            Assert.StartsWith("HTTP/1.1 502", Encoding.ASCII.GetString(await ReadAsync(c, 12)));
        }
    }

    [Fact]
    public void ListeningOffLoopback_IsRefused()
    {
        var e = Assert.Throws<KtException>(() => new Socks5Server(new RecordingDialer(1), new ProxyOptions { Listen = new IPEndPoint(IPAddress.Any, 0) }));
        Assert.Equal("ProxyListenNotLoopback", e.ErrorId);
    }

    [Theory]
    [InlineData("host:80", true, "host", 80)]
    [InlineData("[fd00::1]:443", true, "fd00::1", 443)]
    [InlineData("fd00::1:443", false, "", 0)]
    [InlineData("host", false, "", 0)]
    [InlineData("host:0", false, "host", 0)]
    [InlineData("host:99999", false, "host", 0)]
    public void HostPort_Splitting(string input, bool ok, string host, int port)
    {
        Assert.Equal(ok, Socks5Server.TrySplitHostPort(input, out var h, out var p));
        if (ok)
        {
            Assert.Equal(host, h);
            Assert.Equal(port, p);
        }
    }
}
