using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine.Net;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.Net;

/// <summary>The user-space stack behind a real tun device with the Linux kernel as the client's TCP.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class TunStackTests
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(3);

    [LinuxRootTheory("python3")]
    [InlineData(1500)]
    [InlineData(StackOptions.RecommendedMtu)]
    public async Task BulkUploadAndDownload_HashesMatch_V4AndV6(int mtu)
    {
        await using var lab = await TunLab.CreateAsync(mtu: mtu);
        var hash = lab.Serve(TunLab.Hash);
        var source = lab.Serve(TunLab.Source);
        foreach (var host in new[] { TunLab.ClusterV4, TunLab.ClusterV6 })
        {
            var up = await lab.ClientAsync(Long, "upload", host, hash.ToString(), (32 << 20).ToString());
            Assert.Equal("OK", up.StandardOutput.Trim() + up.StandardError.Trim());
            var down = await lab.ClientAsync(Long, "download", host, source.ToString(), (32 << 20).ToString());
            Assert.Equal("OK", down.StandardOutput.Trim() + down.StandardError.Trim());
        }
        Assert.Equal(0, lab.Stack.Counters.Malformed);
    }

    [LinuxRootFact]
    public async Task TheTunQueuesEnoughPacketsForABurstOfRetransmissions()
    {
        await using var lab = await TunLab.CreateAsync();
        var r = await lab.Laptop.RunAsync(["ip", "link", "show", "dev", lab.Tun]);
        Assert.Contains($" qlen {KtConnect.Engine.Net.Linux.LinuxTunDevice.TxQueueLength}", r.StandardOutput);
    }

    [LinuxRootFact("curl")]
    public async Task Curl_GetsHttpResponseThroughTheTun()
    {
        await using var lab = await TunLab.CreateAsync();
        var port = lab.Serve(async (s, ct) =>
        {
            var buf = new byte[4096];
            var request = new StringBuilder();
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await s.ReceiveAsync(buf, ct);
                if (n == 0) return;
                request.Append(Encoding.ASCII.GetString(buf, 0, n));
            }
            await s.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"u8.ToArray(), ct);
            s.Shutdown(SocketShutdown.Send);
        });
        var r = await lab.Laptop.RunAsync(["curl", "-sS", "--max-time", "20", $"http://{TunLab.ClusterV4}:{port}/"]);
        Assert.Equal("hello", r.StandardOutput);
        r = await lab.Laptop.RunAsync(["curl", "-sS", "--max-time", "20", $"http://[{TunLab.ClusterV6}]:{port}/"]);
        Assert.Equal("hello", r.StandardOutput);
    }

    [LinuxRootFact("python3")]
    public async Task ThousandsOfShortConnections_AllSucceed_AndFlowsAreForgotten()
    {
        await using var lab = await TunLab.CreateAsync(options: new StackOptions { Tcp = new TcpOptions { TimeWaitMs = 500 } });
        var port = lab.Serve(TunLab.Echo);
        var r = await lab.ClientAsync(Long, "short", TunLab.ClusterV4, port.ToString(), "3000", "8");
        Assert.Equal("OK 3000", r.StandardOutput.Trim() + r.StandardError.Trim());
        await Wait.UntilAsync(() => lab.Stack.FlowCount == 0, "every flow to leave the stack", TimeSpan.FromSeconds(30));
        Assert.True(lab.Stack.Counters.TcpFlowsAccepted >= 3000);
    }

    [LinuxRootFact("python3")]
    public async Task TenThousandConcurrentIdleConnections_StayAlive()
    {
        await using var lab = await TunLab.CreateAsync();
        // The echo server is a separate process (next to this one, on 127.0.0.1): 10,000 accepted sockets would not fit
        // next to our 10,000 dialed ones under a 20,000 descriptor limit.
        using var server = Process.Start(new ProcessStartInfo("python3", [lab.Script, "echoserver"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        try
        {
            var port = int.Parse((await server.StandardOutput.ReadLineAsync().WaitAsync(Long))!);
            await IdleClientsAsync(lab, port);
        }
        finally
        {
            server.Kill();
            await server.WaitForExitAsync();
        }
    }

    private static async Task IdleClientsAsync(TunLab lab, int port)
    {
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var p = lab.Laptop.Start("python3", lab.Script, "idle", TunLab.ClusterV4, port.ToString(), "10000");
        var line = await p.StandardOutput.ReadLineAsync().WaitAsync(Long);
        Assert.Equal("CONNECTED 10000", line);
        Assert.True(lab.Stack.FlowCount >= 10000);
        var perFlow = (GC.GetTotalMemory(forceFullCollection: true) - before) / 10000.0;
        await p.StandardInput.WriteLineAsync();
        await p.StandardInput.FlushAsync();
        line = await p.StandardOutput.ReadLineAsync().WaitAsync(Long);
        if (line != "ALIVE 10000")
        {
            var view = await KernelViewAsync(lab, line);
            await p.StandardInput.WriteLineAsync();
            await p.StandardInput.FlushAsync();
            Assert.Fail($"{line?[..Math.Min(line.Length, 120)] ?? "(the client ended)"}\n{view}");
        }
        Assert.True(perFlow < 64 * 1024, $"{perFlow:0} bytes of managed heap per idle flow");
    }

    /// <summary>The laptop kernel's view (`ss -tni`) of the first few sockets an "ALIVE n LOST p,q,..." line names.</summary>
    private static async Task<string> KernelViewAsync(TunLab lab, string? line)
    {
        var lost = line?.Split(" LOST ") is [_, var ports] ? ports.Split(',').Take(5).Select(p => $":{p} ").ToArray() : [];
        if (lost.Length == 0) return "";
        var ss = await lab.Laptop.RunAsync(["ss", "-tni"]);
        // ss prints a header line, then two lines per socket: its addresses, then its TCP details.
        var lines = ss.StandardOutput.Split('\n');
        var view = new StringBuilder();
        for (var i = 1; i + 1 < lines.Length; i += 2)
            if (lost.Any(lines[i].Contains)) view.AppendLine(lines[i].Trim()).AppendLine(lines[i + 1].Trim());
        return view.ToString();
    }

    [LinuxRootFact("python3")]
    public async Task LossAndReordering_BothWays_StillDeliverIntactData()
    {
        // 5% loss and 10% reordering in each direction between the kernel and our stack. `tc netem` would do
        // the kernel side only and needs sch_netem, which containers often lack; this wrapper needs nothing.
        ImpairedDevice? impaired = null;
        await using var lab = await TunLab.CreateAsync(wrap: d => impaired = new ImpairedDevice(d, 0.05, 0.10, 7));
        var hash = lab.Serve(TunLab.Hash);
        var source = lab.Serve(TunLab.Source);
        var up = await lab.ClientAsync(Long, "upload", TunLab.ClusterV4, hash.ToString(), (1 << 20).ToString());
        Assert.Equal("OK", up.StandardOutput.Trim() + up.StandardError.Trim());
        var down = await lab.ClientAsync(Long, "download", TunLab.ClusterV4, source.ToString(), (2 << 20).ToString());
        Assert.Equal("OK", down.StandardOutput.Trim() + down.StandardError.Trim());
        Assert.True(lab.Stack.Counters.TcpRetransmits > 0);
        Assert.True(impaired!.Dropped > 0);
    }

    [LinuxRootFact("python3")]
    public async Task RefusedDestination_GetsRst_AndResettingServerResetsClient()
    {
        await using var lab = await TunLab.CreateAsync();
        // A port nobody listens on: the dial fails before any SYN-ACK, so the client sees "refused".
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var closedPort = ((IPEndPoint)probe.LocalEndPoint!).Port;
        var r = await lab.ClientAsync(Long, "connect", TunLab.ClusterV4, closedPort.ToString());
        Assert.Equal("REFUSED", r.StandardOutput.Trim());
        Assert.True(lab.Stack.Counters.TcpFlowsRefused >= 1);

        var resetting = lab.Serve(async (s, ct) =>
        {
            await s.ReceiveAsync(new byte[5], ct);
            s.LingerState = new LingerOption(true, 0);
            s.Close();
        });
        r = await lab.ClientAsync(Long, "connect", TunLab.ClusterV4, resetting.ToString());
        Assert.Equal("RESET", r.StandardOutput.Trim());
    }

    [LinuxRootFact("curl")]
    public async Task ClientThatVanishes_FlowAndServerConnectionGoAway()
    {
        await using var lab = await TunLab.CreateAsync();
        var serverSawEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var port = lab.Serve(async (s, ct) =>
        {
            var block = new byte[65536];
            try
            {
                await s.ReceiveAsync(new byte[4096], ct);
                await s.SendAsync("HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n"u8.ToArray(), ct);
                while (true) await s.SendAsync(block, ct);
            }
            catch (SocketException)
            {
                serverSawEnd.TrySetResult();
            }
        });
        var curl = lab.Laptop.Start("curl", "-sS", "-o", "/dev/null", $"http://{TunLab.ClusterV4}:{port}/");
        await Wait.UntilAsync(() => lab.Stack.Flows.Any(f => f.State == TcpState.Established), "curl's flow to be established", TimeSpan.FromSeconds(30));
        await Task.Delay(200); // let bytes flow; not a synchronisation point
        curl.Kill(entireProcessTree: true);
        await curl.WaitForExitAsync();
        await serverSawEnd.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await Wait.UntilAsync(() => lab.Stack.FlowCount == 0, "every flow to leave the stack", TimeSpan.FromSeconds(30));
    }

    [LinuxRootFact("python3")]
    public async Task Udp_ToDnsAddressGoesToHandler_OtherUdpGetsPortUnreachable_PingIsNotAnswered()
    {
        await using var lab = await TunLab.CreateAsync(new ReverseHandler(IPAddress.Parse("10.96.0.53"), 53));
        var r = await lab.ClientAsync(Long, "udp", "10.96.0.53", "53", "hello");
        Assert.Equal("REPLY olleh", r.StandardOutput.Trim());
        r = await lab.ClientAsync(Long, "udp", "10.96.0.99", "9999", "x");
        Assert.Equal("REFUSED", r.StandardOutput.Trim());
        r = await lab.ClientAsync(Long, "udp", TunLab.ClusterV6, "9999", "x");
        Assert.Equal("REFUSED", r.StandardOutput.Trim());
        Assert.True(lab.Stack.Counters.IcmpUnreachableSent >= 2);

        // No ping binary is assumed: a raw ICMP echo from python, and no answer must come back.
        var ping = await lab.Laptop.RunAsync(["python3", "-c", PingScript, "10.96.0.10"], timeout: Long);
        Assert.Equal("NOREPLY", ping.StandardOutput.Trim());
        Assert.True(lab.Stack.Counters.IcmpIgnored >= 1);
    }

    private const string PingScript = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.5)
pkt = struct.pack('!BBHHH', 8, 0, 0, 1, 1) + b'ktping'
c = 0
for i in range(0, len(pkt), 2):
    c += (pkt[i] << 8) + (pkt[i + 1] if i + 1 < len(pkt) else 0)
c = (c >> 16) + (c & 0xffff); c += c >> 16
pkt = pkt[:2] + struct.pack('!H', ~c & 0xffff) + pkt[4:]
s.sendto(pkt, (sys.argv[1], 0))
try:
    while True:
        data, addr = s.recvfrom(2048)
        if addr[0] == sys.argv[1] and data[20] == 0:
            print('REPLY'); break
except socket.timeout:
    print('NOREPLY')
""";

    private sealed class ReverseHandler(IPAddress address, int port) : IUdpDatagramHandler
    {
        public bool Serves(IPEndPoint destination) => destination.Address.Equals(address) && destination.Port == port;

        public ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> datagram, IPEndPoint client, IPEndPoint destination,
            CancellationToken cancellationToken)
        {
            var copy = datagram.ToArray();
            Array.Reverse(copy);
            return ValueTask.FromResult<ReadOnlyMemory<byte>>(copy);
        }
    }

    [LinuxRootFact("iperf3")]
    public async Task Iperf3_SingleAndParallelFlows_Complete()
    {
        await using var lab = await TunLab.CreateAsync();
        var port = FreePort();
        using var server = Process.Start(new ProcessStartInfo("iperf3", ["-s", "-B", "127.0.0.1", "-p", port.ToString(), "-1"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        try
        {
            // Until the server listens, the client is refused; any other failure is the test's.
            var r = await Wait.ForAsync(() => lab.Laptop.RunAsync(["iperf3", "-c", TunLab.ClusterV4, "-p", port.ToString(), "-t", "2", "-P", "4"], timeout: Long),
                x => !x.StandardError.Contains("Connection refused", StringComparison.Ordinal), "the iperf3 server to listen", poll: TimeSpan.FromMilliseconds(100));
            Assert.True(r.Succeeded, r.StandardError + r.StandardOutput);
        }
        finally
        {
            if (!server.HasExited) server.Kill();
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
