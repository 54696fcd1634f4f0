using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.Linux;
using KtConnect.KubeSim.Host;

namespace KtConnect.Bench;

/// <summary>
/// The user-space TCP/IP stack behind a tun device vs the same client and server without it.
/// A "laptop" namespace reaches the host two ways: through a tun served by our stack (fake cluster
/// address 10.96.0.10, dialed by this process to the server) and directly through a veth. The servers
/// (iperf3, a python echo server) listen on the host end of the veth, so both paths end at the same
/// socket; only the stack is in between on one of them.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class NetTunScenario : IScenario
{
    public string Name => "net-tun";

    public string Description => "tun + user-space TCP stack vs direct veth: iperf3 1 and 8 flows, connections/s, memory per idle flow";

    private const string HostAddress = "10.251.0.1";
    private const string LaptopAddress = "10.251.0.2";
    private const string ClusterAddress = "10.96.0.10";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!NetNs.Available) throw new InvalidOperationException("net-tun needs Linux, root and iproute2");
        await using var laptop = await NetNs.CreateAsync("ktnet-", cancellationToken);
        await laptop.LinkAsync(null, LaptopAddress + "/30", HostAddress + "/30", cancellationToken);
        var tun = "ktn" + Guid.NewGuid().ToString("N")[..8];
        var device = await LinuxTunDevice.CreateAsync(tun, StackOptions.RecommendedMtu, ["198.18.0.1/32"], laptop.Name, cancellationToken);
        var host = IPAddress.Parse(HostAddress);
        await using var stack = new UserSpaceStack(device, new TcpFlowDialer(ep => new IPEndPoint(host, ep.Port)),
            new StackOptions { Mtu = StackOptions.RecommendedMtu });
        stack.Start();
        await laptop.ExecAsync(cancellationToken, "ip", "route", "add", "10.96.0.0/16", "dev", tun);
        var script = Path.Combine(Path.GetTempPath(), $"ktnet-bench-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(script, Script, cancellationToken);
        var iperfPort = FreePort();
        using var iperf = Start("iperf3", "-s", "-B", HostAddress, "-p", iperfPort.ToString(CultureInfo.InvariantCulture));
        // Its per-second reports must be drained, or a full pipe stalls the server mid-test.
        iperf.OutputDataReceived += (_, _) => { };
        iperf.ErrorDataReceived += (_, _) => { };
        iperf.BeginOutputReadLine();
        iperf.BeginErrorReadLine();
        using var echo = Start("python3", script, "echoserver", HostAddress);
        try
        {
            var echoPort = int.Parse((await echo.StandardOutput.ReadLineAsync(cancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(30), cancellationToken))!,
                CultureInfo.InvariantCulture);
            await WaitForPortAsync(laptop, HostAddress, iperfPort, cancellationToken);
            // The second peer carries each flow through a relay in C (nginx's stream proxy) on kernel sockets: like the
            // stack, it terminates the client's TCP and opens a second connection, so it pays the same extra copies and
            // kernel TCP work that the direct veth does not. Its ratio is what the stack costs beyond that.
            // Not used for connections/s: its upstream connections would share this namespace's ephemeral ports and
            // TIME-WAIT slots with the stack's own dials, and slow both down.
            var iperfRelayPort = FreePort();
            var httpPort = FreePort();
            using var nginx = await NginxRelay.StartAsync([(iperfRelayPort, iperfPort)], httpPort, cancellationToken);
            await WaitForPortAsync(laptop, HostAddress, iperfRelayPort, cancellationToken);
            await WaitForPortAsync(laptop, HostAddress, httpPort, cancellationToken);

            foreach (var flows in new[] { 1, 8 })
            {
                await context.CompareAsync(Name, $"iperf3-{flows}-flow", "MiB/s", true,
                    ct => IperfAsync(laptop, ClusterAddress, iperfPort, flows, ct), "direct veth (kernel only)",
                    ct => IperfAsync(laptop, HostAddress, iperfPort, flows, ct), cancellationToken);
                await context.CompareAsync(Name, $"iperf3-{flows}-flow", "MiB/s", true,
                    ct => IperfAsync(laptop, ClusterAddress, iperfPort, flows, ct), RelayPeer,
                    ct => IperfAsync(laptop, HostAddress, iperfRelayPort, flows, ct), cancellationToken);
            }
            await context.CompareAsync(Name, "connections-per-second", "conn/s", true,
                ct => ShortAsync(laptop, script, ClusterAddress, echoPort, ct), "direct veth (kernel only)",
                ct => ShortAsync(laptop, script, HostAddress, echoPort, ct), cancellationToken);
            // The same figure with clients and server in C (ApacheBench, one connection per request, against nginx): the
            // python client above holds its GIL for most of a connection, so it measures its own speed as much as the path.
            await context.CompareAsync(Name, "http-connections-per-second", "conn/s", true,
                ct => AbAsync(laptop, ClusterAddress, httpPort, ct), "direct veth (kernel only)",
                ct => AbAsync(laptop, HostAddress, httpPort, ct), cancellationToken);

            // Memory per idle flow: through the stack vs through a plain in-process TCP relay (what redirect mode
            // costs), both measured as this process's managed heap + RSS growth.
            if (context.Wants("memory-per-idle-connection"))
            {
                await using var relay = await PlainRelay.StartAsync(new IPEndPoint(host, echoPort));
                var ours = await IdleMemoryAsync(laptop, script, ClusterAddress, echoPort, 2000, cancellationToken);
                var peer = await IdleMemoryAsync(laptop, script, HostAddress, relay.Port, 2000, cancellationToken);
                context.Report(Name, "memory-per-idle-connection", "KiB", false, [ours / 1024], "plain in-process TCP relay", [peer / 1024]);
            }
        }
        finally
        {
            Kill(iperf);
            Kill(echo);
            File.Delete(script);
        }
    }

    private static async Task<double> IperfAsync(NetNs laptop, string address, int port, int flows, CancellationToken ct)
    {
        var r = await laptop.RunAsync(["iperf3", "-c", address, "-p", port.ToString(CultureInfo.InvariantCulture), "-t", "3", "-P",
            flows.ToString(CultureInfo.InvariantCulture), "-J"], ct, timeout: TimeSpan.FromMinutes(2));
        r.EnsureSuccess();
        using var doc = JsonDocument.Parse(r.StandardOutput);
        if (doc.RootElement.TryGetProperty("error", out var error)) throw new InvalidOperationException("iperf3: " + error.GetString());
        if (!doc.RootElement.TryGetProperty("end", out var end) || !end.TryGetProperty("sum_received", out var sum))
            throw new InvalidOperationException("iperf3 printed no summary: " + r.StandardOutput[..Math.Min(2000, r.StandardOutput.Length)]);
        return sum.GetProperty("bits_per_second").GetDouble() / 8 / 1024 / 1024;
    }

    private static async Task<double> ShortAsync(NetNs laptop, string script, string address, int port, CancellationToken ct)
    {
        var r = await laptop.RunAsync(["python3", script, "short", address, port.ToString(CultureInfo.InvariantCulture), "2000", "4"], ct,
            timeout: TimeSpan.FromMinutes(2));
        r.EnsureSuccess();
        var parts = r.StandardOutput.Trim().Split(' ');
        if (parts[0] != "OK" || parts[1] != "2000") throw new InvalidOperationException("short connections failed: " + r.StandardOutput);
        return double.Parse(parts[2], CultureInfo.InvariantCulture);
    }

    /// <summary>ApacheBench without keep-alive: each request opens, uses and closes its own connection; 16 at a time.</summary>
    private static async Task<double> AbAsync(NetNs laptop, string address, int port, CancellationToken ct)
    {
        var r = await laptop.RunAsync(["ab", "-q", "-n", "10000", "-c", "16", "-r", $"http://{address}:{port.ToString(CultureInfo.InvariantCulture)}/"], ct,
            timeout: TimeSpan.FromMinutes(2));
        r.EnsureSuccess();
        var failed = System.Text.RegularExpressions.Regex.Match(r.StandardOutput, @"Failed requests:\s+(\d+)");
        if (!failed.Success || failed.Groups[1].Value != "0") throw new InvalidOperationException("ab: requests failed: " + r.StandardOutput);
        var rate = System.Text.RegularExpressions.Regex.Match(r.StandardOutput, @"Requests per second:\s+([0-9.]+)");
        if (!rate.Success) throw new InvalidOperationException("ab printed no rate: " + r.StandardOutput);
        return double.Parse(rate.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static async Task<double> IdleMemoryAsync(NetNs laptop, string script, string address, int port, int count, CancellationToken ct)
    {
        var before = Measure();
        var p = laptop.Start("python3", script, "idle", address, port.ToString(CultureInfo.InvariantCulture), count.ToString(CultureInfo.InvariantCulture));
        try
        {
            var line = await p.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromMinutes(2), ct);
            if (line != $"CONNECTED {count}") throw new InvalidOperationException("idle clients failed: " + line);
            await Task.Delay(500, ct); // let the last accepts and dials settle; a measurement, not a synchronisation
            return (Measure() - before) / count;
        }
        finally
        {
            Kill(p);
            await p.WaitForExitAsync(ct);
            await Task.Delay(3000, ct); // flows leave TIME-WAIT / get reset before the next measurement
        }
    }

    private static double Measure()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        return self.WorkingSet64;
    }

    private static async Task WaitForPortAsync(NetNs laptop, string address, int port, CancellationToken ct)
    {
        for (var i = 0; i < 100; i++)
        {
            var r = await laptop.RunAsync(["python3", "-c", $"import socket; socket.create_connection(('{address}', {port}), 1).close()"], ct);
            if (r.Succeeded) return;
            await Task.Delay(100, ct);
        }
        throw new InvalidOperationException($"nothing listens on {address}:{port}");
    }

    private const string RelayPeer = "nginx stream proxy on kernel sockets (veth + second TCP connection)";

    /// <summary>
    /// nginx's TCP proxy (stream module), one listener per (port, target port) on the host address, and an HTTP server on
    /// <c>httpPort</c> answering every request with a two-byte body.
    /// </summary>
    private sealed class NginxRelay : IDisposable
    {
        private const string Module = "/usr/lib/nginx/modules/ngx_stream_module.so";
        private readonly Process _nginx;
        private readonly string _dir;

        private NginxRelay(Process nginx, string dir)
        {
            _nginx = nginx;
            _dir = dir;
        }

        public static async Task<NginxRelay> StartAsync(IEnumerable<(int Port, int Target)> routes, int httpPort, CancellationToken ct)
        {
            if (!File.Exists(Module)) throw new InvalidOperationException($"net-tun needs nginx's stream module ({Module}: apt-get install libnginx-mod-stream)");
            var dir = Directory.CreateTempSubdirectory("ktnet-nginx-").FullName;
            var servers = string.Concat(routes.Select(r =>
                $"  server {{ listen {HostAddress}:{r.Port.ToString(CultureInfo.InvariantCulture)} backlog=4096; proxy_half_close on; proxy_pass {HostAddress}:{r.Target.ToString(CultureInfo.InvariantCulture)}; }}\n"));
            var conf = Path.Combine(dir, "nginx.conf");
            await File.WriteAllTextAsync(conf, $"load_module {Module};\nworker_processes auto;\ndaemon off;\npid {dir}/nginx.pid;\n" +
                $"error_log {dir}/error.log;\nevents {{ worker_connections 16384; }}\nstream {{\n{servers}}}\n" +
                $"http {{ access_log off; client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir};\n" +
                $"  server {{ listen {HostAddress}:{httpPort.ToString(CultureInfo.InvariantCulture)} backlog=4096; location / {{ return 200 \"ok\"; }} }} }}\n", ct);
            var p = Start("nginx", "-p", dir, "-c", conf);
            p.OutputDataReceived += (_, _) => { };
            p.ErrorDataReceived += (_, _) => { };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            return new NginxRelay(p, dir);
        }

        public void Dispose()
        {
            Kill(_nginx);
            _nginx.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static Process Start(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + file);
    }

    private static void Kill(Process p)
    {
        try
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Accept on the veth's host address, dial the echo server, relay: the stack-less baseline.</summary>
    private sealed class PlainRelay : IAsyncDisposable
    {
        private readonly Socket _listener;
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _loop;

        private PlainRelay(Socket listener, IPEndPoint target)
        {
            _listener = listener;
            _loop = Task.Run(async () =>
            {
                var dialer = new TcpFlowDialer();
                var conns = new List<Task>();
                while (!_cts.IsCancellationRequested)
                {
                    Socket c;
                    try
                    {
                        c = await _listener.AcceptAsync(_cts.Token);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                        break;
                    }
                    conns.Add(Task.Run(async () =>
                    {
                        await using var a = new HalfCloseNetworkStream(c);
                        try
                        {
                            await using var b = await dialer.DialAsync(target, _cts.Token);
                            await Socks5Server.RelayAsync(a, b, _cts.Token);
                        }
                        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException)
                        {
                        }
                    }));
                }
                await Task.WhenAll(conns);
            });
        }

        public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

        public static Task<PlainRelay> StartAsync(IPEndPoint target)
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(IPAddress.Parse(HostAddress), 0));
            l.Listen(4096);
            return Task.FromResult(new PlainRelay(l, target));
        }

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            _listener.Dispose();
            await _loop;
            _cts.Dispose();
        }
    }

    private const string Script = """
import socket, sys, threading, time

def connect(host, port):
    s = socket.create_connection((host, int(port)), 30)
    return s

cmd = sys.argv[1]
if cmd == 'echoserver':
    import asyncio
    async def handle(r, w):
        try:
            while True:
                b = await r.read(4096)
                if not b:
                    break
                w.write(b)
                await w.drain()
        except ConnectionError:
            pass
        w.close()
    async def main():
        srv = await asyncio.start_server(handle, sys.argv[2], 0, backlog=4096)
        print(srv.sockets[0].getsockname()[1], flush=True)
        await srv.serve_forever()
    asyncio.run(main())
elif cmd == 'short':
    host, port, count, par = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    ok = [0]
    lock = threading.Lock()
    def worker(k):
        for i in range(k):
            s = connect(host, port)
            s.sendall(b'ping')
            s.shutdown(socket.SHUT_WR)
            got = b''
            while True:
                b = s.recv(64)
                if not b:
                    break
                got += b
            s.close()
            if got == b'ping':
                with lock:
                    ok[0] += 1
    ts = [threading.Thread(target=worker, args=(count // par,)) for _ in range(par)]
    t0 = time.monotonic()
    for t in ts: t.start()
    for t in ts: t.join()
    print('OK %d %.1f' % (ok[0], ok[0] / (time.monotonic() - t0)))
elif cmd == 'idle':
    host, port, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
    socks = [connect(host, port) for i in range(count)]
    for s in socks:
        s.sendall(b'x')
    for s in socks:
        s.recv(1)
    print('CONNECTED %d' % len(socks), flush=True)
    sys.stdin.readline()
""";
}
