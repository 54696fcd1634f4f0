using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using KtConnect.Engine.Kube;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Bench;

/// <summary>
/// What the connect scenarios share: a simulated cluster (pods are processes in namespaces on this machine) with
/// namespace <c>bench</c> and two "web" pods, each also running nginx on <see cref="WebPort"/> serving
/// <c>/big</c> (128 MiB), <c>/part</c> (16 MiB, for each of 8 flows) and <c>/small</c>; `kt` run as a process in the laptop namespace; a python client run in the laptop
/// (download throughput, small-request latency, first-success probe, optionally through SOCKS5); a
/// kubectl-like port-forward to a pod's port exposed to the laptop; OpenSSH peers started in the laptop.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class ConnectBench : IAsyncDisposable
{
    public const string Ns = "bench";
    public const int WebPort = 8081;
    public const int BigBytes = 128 * 1024 * 1024;

    private readonly List<Process> _processes = [];
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly string _dir;

    private ConnectBench(SimCluster cluster, string ktDll, string dir)
    {
        Cluster = cluster;
        KtDll = ktDll;
        _dir = dir;
        Kt = new KtRunner(cluster);
        Client = new KubeClient(new KubeClientConfiguration
        {
            Server = new Uri(cluster.ServerUrl),
            ContextName = "kubesim",
            Namespace = Ns,
            CertificateAuthorities = new X509Certificate2Collection(cluster.Server.CaCertificate),
            Credentials = new StaticCredentials(cluster.AdminToken),
        });
    }

    public SimCluster Cluster { get; }

    public KtRunner Kt { get; }

    public string KtDll { get; }

    public KubeClient Client { get; }

    /// <summary>The web pods' addresses (ours reaches the first, sshuttle the second: their captures must not overlap).</summary>
    public IReadOnlyList<string> WebIps { get; private set; } = [];

    public string Script => Path.Combine(_dir, "client.py");

    public string Directory => _dir;

    // defaultRoute: a laptop default route (to lo) for the nat-redirect peers; without it an unconnected address fails at once.
    public static async Task<ConnectBench> StartAsync(bool defaultRoute, CancellationToken ct)
    {
        if (!KtConnect.KubeSim.Host.NetNs.Available) throw new InvalidOperationException("connect benchmarks need Linux, root and iproute2");
        var kt = KtRunner.FindKtDll() ?? throw new InvalidOperationException("kt.dll not found: run `dotnet build src/Cli -c Release` first (or set KTCONNECT_KT_DLL)");
        var dir = System.IO.Directory.CreateTempSubdirectory("ktbench-connect-").FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        var cluster = await SimCluster.StartAsync(cancellationToken: ct).ConfigureAwait(false);
        var bench = new ConnectBench(cluster, kt, dir);
        try
        {
            await bench.SetUpAsync(defaultRoute, ct).ConfigureAwait(false);
            return bench;
        }
        catch
        {
            await bench.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task SetUpAsync(bool defaultRoute, CancellationToken ct)
    {
        // The redirect peers (sshuttle) hook nat/output, which runs after routing: the laptop needs a route (to lo: nothing leaves).
        if (defaultRoute)
            (await Cluster.RunInLaptopAsync(["ip", "route", "add", "default", "dev", "lo"], cancellationToken: ct).ConfigureAwait(false)).EnsureSuccess();
        await File.WriteAllTextAsync(Script, ClientScript, ct).ConfigureAwait(false);
        var www = Path.Combine(_dir, "www");
        System.IO.Directory.CreateDirectory(www);
        await using (var big = File.Create(Path.Combine(www, "big")))
        {
            var chunk = new byte[1 << 20];
            Random.Shared.NextBytes(chunk);
            for (var c = 0; c < BigBytes / chunk.Length; c++) await big.WriteAsync(chunk, ct).ConfigureAwait(false);
        }
        await File.WriteAllTextAsync(Path.Combine(www, "small"), "ok\n", ct).ConfigureAwait(false);
        // Per flow when 8 run at once: the same total as one big download, so a slow peer does not take minutes a run.
        await using (var part = File.Create(Path.Combine(www, "part")))
        {
            var chunk = new byte[1 << 20];
            Random.Shared.NextBytes(chunk);
            for (var c = 0; c < BigBytes / 8 / chunk.Length; c++) await part.WriteAsync(chunk, ct).ConfigureAwait(false);
        }

        Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"bench"}}""");
        Cluster.Apply(new JsonObject
        {
            ["apiVersion"] = "apps/v1",
            ["kind"] = "Deployment",
            ["metadata"] = new JsonObject { ["name"] = "web", ["namespace"] = Ns },
            ["spec"] = new JsonObject
            {
                ["replicas"] = 2,
                ["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["app"] = "web" } },
                ["template"] = new JsonObject
                {
                    ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["app"] = "web" } },
                    ["spec"] = new JsonObject
                    {
                        ["containers"] = new JsonArray(new JsonObject
                        {
                            ["name"] = "web", ["image"] = "ktconnect/echo:1.0",
                            ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = 8080 }),
                        }),
                    },
                },
            },
        }.ToJsonString());
        await Cluster.WaitForAsync(ResourceTypes.Deployments, Ns, "web", d => (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 2, cancellationToken: ct)
            .ConfigureAwait(false);
        var pods = Cluster.Node.Pods.Where(p => p.Key.StartsWith(Ns + "/web-", StringComparison.Ordinal)).OrderBy(p => p.Ip, StringComparer.Ordinal).ToList();
        if (pods.Count != 2) throw new InvalidOperationException("expected two web pods on the node");
        var i = 0;
        foreach (var pod in pods)
        {
            var conf = Path.Combine(_dir, $"nginx{i++}.conf");
            await File.WriteAllTextAsync(conf, $$"""
                user root;
                worker_processes 2;
                pid {{conf}}.pid;
                error_log /dev/null;
                events { worker_connections 1024; }
                http {
                    access_log off;
                    sendfile on;
                    tcp_nopush on;
                    keepalive_requests 100000;
                    client_body_temp_path {{_dir}};
                    proxy_temp_path {{_dir}};
                    fastcgi_temp_path {{_dir}};
                    uwsgi_temp_path {{_dir}};
                    scgi_temp_path {{_dir}};
                    server { listen {{WebPort}}; root {{www}}; }
                }
                """, ct).ConfigureAwait(false);
            _processes.Add(Start("ip", "netns", "exec", pod.NetNsName, "nginx", "-c", conf, "-g", "daemon off;"));
        }
        WebIps = pods.Select(p => p.Ip).ToList();
        foreach (var pod in pods)
        {
            await WaitUntilAsync(async () => (await KtConnect.Engine.ProcessRunner.RunAsync("ip", ["netns", "exec", pod.NetNsName, "curl", "-sf", "-o", "/dev/null",
                $"http://127.0.0.1:{WebPort}/small"], cancellationToken: ct).ConfigureAwait(false)).ExitCode == 0, $"nginx in {pod.Key}", TimeSpan.FromSeconds(30), ct)
                .ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Starts `kt args` in the laptop and waits for its "Press Ctrl+C"; returns the process, when that line came, and a
    /// lookup of when the first line containing a text came (kt's progress lines, for breakdowns).
    /// </summary>
    public async Task<(Process Process, DateTime Ready, Func<string, DateTime?> LineTime, Func<DateTime, string> Timeline)> StartKtAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        var p = Kt.Start(args);
        var ready = new TaskCompletionSource<DateTime>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new List<(DateTime At, string Line)>();
        void Add(string? line)
        {
            if (line is null) return;
            var now = DateTime.UtcNow;
            lock (log) log.Add((now, line));
            if (line.Contains("Press Ctrl+C", StringComparison.Ordinal)) ready.TrySetResult(now);
        }
        p.OutputDataReceived += (_, e) => Add(e.Data);
        p.ErrorDataReceived += (_, e) => Add(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var exited = p.WaitForExitAsync(ct);
        var first = await Task.WhenAny(ready.Task, exited, Task.Delay(TimeSpan.FromMinutes(2), ct)).ConfigureAwait(false);
        if (first != ready.Task)
        {
            Kill(p);
            lock (log) throw new InvalidOperationException("kt connect did not start:\n" + string.Join('\n', log.Select(l => l.Line)));
        }
        DateTime? LineTime(string text)
        {
            lock (log) return log.Where(l => l.Line.Contains(text, StringComparison.Ordinal)).Select(l => (DateTime?)l.At).FirstOrDefault();
        }
        string Timeline(DateTime origin)
        {
            lock (log) return string.Join('\n', log.Select(l => $"{(l.At - origin).TotalMilliseconds,8:F1} ms  {l.Line}"));
        }
        return (p, await ready.Task.ConfigureAwait(false), LineTime, Timeline);
    }

    /// <summary>SIGTERM (kt restores everything) and wait.</summary>
    public static async Task StopKtAsync(Process p)
    {
        if (!p.HasExited) _ = kill(p.Id, 15);
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2)).ConfigureAwait(false);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>
    /// A kubectl-like port-forward to <paramref name="pod"/>:<paramref name="port"/>, listening on the API server's laptop
    /// address (reachable from the laptop), one WebSocket per accepted connection. Returns the port.
    /// </summary>
    public int PortForward(string pod, int port)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Parse(Cluster.Laptop.ApiServerAddress), 0));
        listener.Listen(64);
        var forward = new Forwarder(listener, Client, pod, port);
        _owned.Add(forward);
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    private sealed class Forwarder : IAsyncDisposable
    {
        private readonly Socket _listener;
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _loop;

        public Forwarder(Socket listener, KubeClient client, string pod, int port)
        {
            _listener = listener;
            _loop = Task.Run(async () =>
            {
                while (!_cts.IsCancellationRequested)
                {
                    Socket s;
                    try
                    {
                        s = await _listener.AcceptAsync(_cts.Token).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                        return;
                    }
                    _ = Task.Run(async () =>
                    {
                        try
                        {
                            s.NoDelay = true;
                            await using var local = new NetworkStream(s, ownsSocket: true);
                            await using var remote = await client.PortForwardAsync(pod, port, Ns, _cts.Token).ConfigureAwait(false);
                            var up = local.CopyToAsync(remote, 256 * 1024, _cts.Token).ContinueWith(_ => remote.Dispose(), TaskScheduler.Default);
                            var down = remote.CopyToAsync(local, 256 * 1024, _cts.Token).ContinueWith(_ => s.Dispose(), TaskScheduler.Default);
                            await Task.WhenAll(up, down).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or KtConnect.Engine.KtException or ObjectDisposedException)
                        {
                            s.Dispose();
                        }
                    });
                }
            });
        }

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync().ConfigureAwait(false);
            _listener.Dispose();
            await _loop.ConfigureAwait(false);
            _cts.Dispose();
        }
    }

    /// <summary>Starts a long-running process in the laptop, its output drained; killed on dispose.</summary>
    public Process StartInLaptop(params string[] argv)
    {
        var p = Cluster.Laptop.Start(argv);
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return p;
    }

    /// <summary>Runs the client script in the laptop; its stdout, or an error with its stderr.</summary>
    public async Task<string> ClientAsync(IReadOnlyList<string> args, CancellationToken ct, TimeSpan? timeout = null)
    {
        var r = await Cluster.RunInLaptopAsync(["python3", Script, .. args], timeout: timeout ?? TimeSpan.FromMinutes(3), cancellationToken: ct).ConfigureAwait(false);
        if (r.ExitCode != 0) throw new InvalidOperationException($"client {string.Join(' ', args)} failed ({r.ExitCode}): {r.StandardError}");
        return r.StandardOutput.Trim();
    }

    /// <summary>Download MiB/s with <paramref name="flows"/> parallel connections; <paramref name="socks"/> "host:port" or null.</summary>
    public async Task<double> DownloadAsync(string ip, int flows, string? socks, CancellationToken ct) =>
        double.Parse(await ClientAsync(["get", ip, WebPort.ToString(CultureInfo.InvariantCulture), flows == 1 ? "/big" : "/part", flows.ToString(CultureInfo.InvariantCulture), socks ?? "-"], ct)
            .ConfigureAwait(false), CultureInfo.InvariantCulture);

    /// <summary>p50 and p99 in ms of <paramref name="count"/> sequential small requests, each on a new connection.</summary>
    public async Task<(double P50, double P99)> LatencyAsync(string ip, int count, string? socks, CancellationToken ct)
    {
        var f = (await ClientAsync(["lat", ip, WebPort.ToString(CultureInfo.InvariantCulture), "/small", count.ToString(CultureInfo.InvariantCulture), socks ?? "-"], ct)
            .ConfigureAwait(false)).Split(' ');
        return (double.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[1], CultureInfo.InvariantCulture));
    }

    public static Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan timeout, CancellationToken ct) =>
        Wait.UntilAsync(condition, what, timeout, TimeSpan.FromMilliseconds(50), ct);

    public static Process Start(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + file);
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    public static void Kill(Process p)
    {
        try
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            p.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _processes) Kill(p);
        foreach (var o in _owned) await o.DisposeAsync().ConfigureAwait(false);
        Client.Dispose();
        await Cluster.DisposeAsync().ConfigureAwait(false);
        try
        {
            System.IO.Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // A straggler still writing; the temp directory is swept by the OS.
        }
    }

    /// <summary>The laptop-side client: plain TCP or SOCKS5 (CONNECT by IPv4), HTTP/1.1, the body read to its Content-Length.</summary>
    private const string ClientScript = """
        import socket, struct, sys, threading, time

        def recvn(s, n):
            b = b''
            while len(b) < n:
                k = s.recv(n - len(b))
                if not k: raise Exception('closed')
                b += k
            return b

        def connect(host, port, socks, timeout=10):
            if socks != '-':
                sh, sp = socks.rsplit(':', 1)
                s = socket.create_connection((sh, int(sp)), timeout=timeout)
                s.sendall(b'\x05\x01\x00')
                if recvn(s, 2) != b'\x05\x00': raise Exception('socks auth')
                s.sendall(b'\x05\x01\x00\x01' + socket.inet_aton(host) + struct.pack('>H', port))
                r = recvn(s, 10)
                if r[1] != 0: raise Exception('socks connect %d' % r[1])
            else:
                s = socket.create_connection((host, port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s

        def get(host, port, path, socks, timeout=10):
            # Like curl: the body ends at Content-Length, not at the server's close.
            s = connect(host, port, socks, timeout)
            s.sendall(('GET %s HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n' % path).encode())
            head = b''
            while b'\r\n\r\n' not in head:
                k = s.recv(65536)
                if not k: raise Exception('closed in the headers')
                head += k
            head, _, rest = head.partition(b'\r\n\r\n')
            length = None
            for line in head.split(b'\r\n')[1:]:
                if line.lower().startswith(b'content-length:'): length = int(line.split(b':', 1)[1])
            buf = bytearray(1 << 20)
            n = len(rest)
            while length is None or n < length:
                k = s.recv_into(buf)
                if k == 0: break
                n += k
            s.close()
            if length is not None and n < length: raise Exception('short body')
            return n

        mode, host, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
        if mode == 'get':
            flows, socks = int(sys.argv[5]), sys.argv[6]
            total = [0] * flows
            def one(i): total[i] = get(host, port, path, socks, 60)
            ts = [threading.Thread(target=one, args=(i,)) for i in range(flows)]
            t0 = time.perf_counter()
            for t in ts: t.start()
            for t in ts: t.join()
            dt = time.perf_counter() - t0
            if min(total) < 1024 * 1024: raise SystemExit('short download')
            print('%.3f' % (sum(total) / dt / 1048576))
        elif mode == 'lat':
            count, socks = int(sys.argv[5]), sys.argv[6]
            get(host, port, path, socks)
            xs = []
            for _ in range(count):
                t0 = time.perf_counter()
                get(host, port, path, socks)
                xs.append((time.perf_counter() - t0) * 1000)
            xs.sort()
            print('%.3f %.3f' % (xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))]))
        elif mode == 'probe':
            socks, limit = sys.argv[5], time.time() + float(sys.argv[6])
            while True:
                try:
                    get(host, port, path, socks, 0.5)
                    print('%.6f' % time.time())
                    break
                except Exception:
                    if time.time() > limit: raise
                    time.sleep(0.002)
        """;
}
