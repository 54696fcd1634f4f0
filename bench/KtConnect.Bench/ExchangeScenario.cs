using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using KtConnect.Engine.Sessions;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Images;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Store;

namespace KtConnect.Bench;

/// <summary>
/// Exchange on KubeSim (needs root: pods are processes in network namespaces). Small HTTP requests from a client pod
/// through an exchanged Service into a local echo server, against the same client calling the original pods (the
/// same echo server) through a second Service; and one large response through our remote forward (ShadowLink +
/// LocalRelay, what an exchange uses) against OpenSSH <c>ssh -R</c>, both over a pod port-forward to the same shadow sshd.
/// </summary>
public sealed class ExchangeScenario : IScenario
{
    private const int Requests = 2000;
    private const int Connections = 4;
    private const long LargeBytes = 128L << 20;
    private const int OursPort = 9101;
    private const int PeerPort = 9100;
    private const int OursHttpPort = 9103;
    private const int PeerHttpPort = 9102;

    public string Name => "exchange";

    public string Description => "requests/s and p99 of small HTTP requests through an exchanged Service vs the original pods; one large response through our remote forward vs ssh -R";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        await using var cluster = await SimCluster.StartAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dev"}}""");
        foreach (var name in new[] { "orders", "client" }) cluster.Apply(Deployment(name));
        cluster.Apply(Service("orders"));
        cluster.Apply(Service("orders-direct", "orders"));
        foreach (var name in new[] { "orders", "client" })
            await cluster.WaitForAsync(ResourceTypes.Deployments, "dev", name, d => (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 1,
                cancellationToken: cancellationToken).ConfigureAwait(false);
        await cluster.WaitUntilAsync(() => cluster.Node.Services.Count(s => s.Namespace == "dev" && s.Endpoints.Count == 1) == 2, "services served",
            cancellationToken: cancellationToken).ConfigureAwait(false);
        var clientPod = cluster.Pods("dev", "app=client").Single()["metadata"]!["name"]!.GetValue<string>();
        var clientNs = cluster.Node.GetPod("dev/" + clientPod)!.NetNsName;
        var kubeconfig = Path.Combine(Path.GetTempPath(), "ktexc-bench-" + Guid.NewGuid().ToString("N")[..8]);
        cluster.WriteKubeconfig(kubeconfig, "dev");
        using var local = new CancellationTokenSource();
        var localPort = FreePort();
        var echo = Task.Run(() => EchoServer.RunAsync(["--name", "laptop", "--namespace", "laptop", "--port", localPort.ToString(CultureInfo.InvariantCulture)], local.Token),
            CancellationToken.None);
        try
        {
            await HttpAsync(context, cluster, clientNs, kubeconfig, localPort, cancellationToken).ConfigureAwait(false);
            await LargeResponseAsync(context, cluster, clientNs, kubeconfig, localPort, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await local.CancelAsync().ConfigureAwait(false);
            await echo.ConfigureAwait(false);
            File.Delete(kubeconfig);
        }
    }

    private async Task HttpAsync(BenchContext context, SimCluster cluster, string clientNs, string kubeconfig, int localPort, CancellationToken ct)
    {
        var registry = new SessionRegistry();
        var session = await Exchanger.StartAsync(new ExchangeOptions
        {
            Kubeconfig = kubeconfig,
            Namespace = "dev",
            Service = "orders",
            Ports = [new ExposedPort(localPort, 80)],
            Journal = new ChangeJournal(Path.Combine(Path.GetTempPath(), "ktexc-bench-journal")),
        }, registry: registry, cancellationToken: ct).ConfigureAwait(false);
        try
        {
            var exchanged = new IPEndPoint(IPAddress.Parse(ClusterIp(cluster, "orders")), 80);
            var direct = new IPEndPoint(IPAddress.Parse(ClusterIp(cluster, "orders-direct")), 80);
            var ours = new List<(double Rps, double P99)>();
            var peer = new List<(double Rps, double P99)>();
            await RequestsAsync(clientNs, exchanged, "laptop", ct).ConfigureAwait(false);
            await RequestsAsync(clientNs, direct, "orders-", ct).ConfigureAwait(false);
            for (var i = 0; i < context.Runs; i++)
            {
                ours.Add(await RequestsAsync(clientNs, exchanged, "laptop", ct).ConfigureAwait(false));
                peer.Add(await RequestsAsync(clientNs, direct, "orders-", ct).ConfigureAwait(false));
            }
            context.Report(Name, "http-requests", "req/s", true, [.. ours.Select(x => x.Rps)], "the original pods, same client", [.. peer.Select(x => x.Rps)]);
            context.Report(Name, "http-p99", "ms", false, [.. ours.Select(x => x.P99)], "the original pods, same client", [.. peer.Select(x => x.P99)]);
        }
        finally
        {
            await session.StopAsync(null, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary><see cref="Requests"/> small GETs over <see cref="Connections"/> keep-alive connections from the client pod.</summary>
    private static async Task<(double Rps, double P99)> RequestsAsync(string netns, IPEndPoint target, string expect, CancellationToken ct)
    {
        var latencies = new double[Requests];
        var next = -1;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(async _ =>
        {
            using var socket = await NetNsSocket.ConnectAsync(netns, target, ct).ConfigureAwait(false);
            socket.NoDelay = true;
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var request = Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: orders\r\n\r\n");
            var buffer = new byte[64 * 1024];
            int i;
            while ((i = Interlocked.Increment(ref next)) < Requests)
            {
                var t = Stopwatch.GetTimestamp();
                await stream.WriteAsync(request, ct).ConfigureAwait(false);
                var body = await ReadResponseAsync(stream, buffer, ct).ConfigureAwait(false);
                latencies[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                if (!body.Contains(expect, StringComparison.Ordinal)) throw new InvalidOperationException($"unexpected answer from {target}: {body}");
            }
        })).ConfigureAwait(false);
        sw.Stop();
        return (Requests / sw.Elapsed.TotalSeconds, BenchContext.Percentile(latencies, 99));
    }

    private static async Task<string> ReadResponseAsync(NetworkStream stream, byte[] buffer, CancellationToken ct)
    {
        var filled = 0;
        while (true)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(filled), ct).ConfigureAwait(false);
            if (n == 0) throw new IOException("connection closed mid-response");
            filled += n;
            var text = Encoding.ASCII.GetString(buffer, 0, filled);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0) continue;
            var cl = text.IndexOf("Content-Length: ", StringComparison.OrdinalIgnoreCase);
            var length = int.Parse(text.AsSpan(cl + 16, text.IndexOf('\r', cl) - cl - 16), CultureInfo.InvariantCulture);
            if (filled >= end + 4 + length) return text.Substring(end + 4, length);
        }
    }

    private async Task LargeResponseAsync(BenchContext context, SimCluster cluster, string clientNs, string kubeconfig, int echoPort, CancellationToken ct)
    {
        using var kube = new KubeClient(new KubeConfigLoader().CreateClientConfiguration(kubeconfig, null));
        var keyDir = Path.Combine(Path.GetTempPath(), "ktexc-bench-key-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(keyDir);
        var keyPath = Path.Combine(keyDir, "id_ed25519");
        Process? ssh = null;
        using var identity = SshKeyPair.GenerateEcdsa("ktexc-bench");
        await using var targets = new SshBenchTargets();
        try
        {
            (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-N", "", "-t", "ed25519", "-f", keyPath], cancellationToken: ct).ConfigureAwait(false)).EnsureSuccess();
            var spec = new ShadowPodSpec
            {
                Name = "kt-exchange-bench",
                Namespace = "dev",
                Role = KtConventions.Roles.ShadowExchange,
                AuthorizedKey = identity.ToAuthorizedKeysLine() + "\n" + (await File.ReadAllTextAsync(keyPath + ".pub", ct).ConfigureAwait(false)).Trim(),
            };
            var shadow = await new ShadowPods(kube).CreateRunningAsync(spec, null, null, TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            var podIp = IPAddress.Parse(cluster.Node.GetPod("dev/" + spec.Name)!.Ip);

            // Ours: the exchange's path, ShadowLink (port-forward + SSH) and a remote forward relayed by LocalRelay.
            await using var link = await ShadowLink.StartAsync(kube, new ShadowLinkOptions
            {
                Namespace = "dev",
                PodName = spec.Name,
                Identity = identity,
                ExpectedHostKeys = [.. shadow.HostKeys.Select(k => SshPublicKey.ParseAuthorizedKey(k.Algorithm + " " + k.Base64Key))],
            }, cancellationToken: ct).ConfigureAwait(false);
            var relay = new LocalRelay(targets.SourcePort, NullOutput.Instance);
            await using var forward = await link.ForwardRemoteAsync("0.0.0.0", OursPort, relay.HandleAsync, ct).ConfigureAwait(false);
            var httpRelay = new LocalRelay(echoPort, NullOutput.Instance);
            await using var httpForward = await link.ForwardRemoteAsync("0.0.0.0", OursHttpPort, httpRelay.HandleAsync, ct).ConfigureAwait(false);

            // Peer: ssh -R over a pod port-forward to the same sshd (a local listener whose connections are port-forwards).
            using var pfListener = new TcpListener(IPAddress.Loopback, 0);
            pfListener.Start();
            using var stop = new CancellationTokenSource();
            var pfLoop = Task.Run(() => PortForwardLoopAsync(pfListener, kube, spec.Name, stop.Token), CancellationToken.None);
            try
            {
                ssh = Process.Start(new ProcessStartInfo("ssh")
                {
                    ArgumentList =
                    {
                        "-N", "-i", keyPath, "-p", ((IPEndPoint)pfListener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture),
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
                        "-R", $"0.0.0.0:{PeerPort}:127.0.0.1:{targets.SourcePort}", "-R", $"0.0.0.0:{PeerHttpPort}:127.0.0.1:{echoPort}", "root@127.0.0.1",
                    },
                    RedirectStandardError = true,
                })!;
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while (!await ListensAsync(clientNs, new IPEndPoint(podIp, PeerPort), ct).ConfigureAwait(false))
                {
                    if (ssh.HasExited || DateTime.UtcNow > deadline)
                        throw new InvalidOperationException("ssh -R did not come up: " + (ssh.HasExited ? await ssh.StandardError.ReadToEndAsync(ct).ConfigureAwait(false) : "timeout"));
                    await Task.Delay(200, ct).ConfigureAwait(false);
                }
                // The same small requests as above, through the remote forward alone (no Service): where the exchange's cost is.
                var ours = new List<(double Rps, double P99)>();
                var peer = new List<(double Rps, double P99)>();
                var oursHttp = new IPEndPoint(podIp, OursHttpPort);
                var peerHttp = new IPEndPoint(podIp, PeerHttpPort);
                await RequestsAsync(clientNs, oursHttp, "laptop", ct).ConfigureAwait(false);
                await RequestsAsync(clientNs, peerHttp, "laptop", ct).ConfigureAwait(false);
                for (var i = 0; i < context.Runs; i++)
                {
                    ours.Add(await RequestsAsync(clientNs, oursHttp, "laptop", ct).ConfigureAwait(false));
                    peer.Add(await RequestsAsync(clientNs, peerHttp, "laptop", ct).ConfigureAwait(false));
                }
                context.Report(Name, "remote-forward-http-requests", "req/s", true, [.. ours.Select(x => x.Rps)], "openssh ssh -R over the same port-forward", [.. peer.Select(x => x.Rps)]);
                context.Report(Name, "remote-forward-http-p99", "ms", false, [.. ours.Select(x => x.P99)], "openssh ssh -R over the same port-forward", [.. peer.Select(x => x.P99)]);
                await context.CompareAsync(Name, "large-response", "MiB/s", true,
                    c => DownloadAsync(clientNs, new IPEndPoint(podIp, OursPort), LargeBytes, c), "openssh ssh -R over the same port-forward",
                    c => DownloadAsync(clientNs, new IPEndPoint(podIp, PeerPort), LargeBytes, c), ct).ConfigureAwait(false);
            }
            finally
            {
                if (ssh is { HasExited: false }) ssh.Kill();
                await stop.CancelAsync().ConfigureAwait(false);
                pfListener.Stop();
                await pfLoop.ConfigureAwait(false);
                await shadow.Handle.DeleteAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            ssh?.Dispose();
            Directory.Delete(keyDir, recursive: true);
        }
    }

    private static async Task PortForwardLoopAsync(TcpListener listener, KubeClient kube, string pod, CancellationToken ct)
    {
        var pumps = new List<Task>();
        try
        {
            while (true)
            {
                var tcp = await listener.AcceptTcpClientAsync(ct).ConfigureAwait(false);
                tcp.NoDelay = true;
                pumps.Add(Task.Run(async () =>
                {
                    using (tcp)
                    {
                        try
                        {
                            await using var pf = await kube.PortForwardAsync(pod, KtConventions.SshPort, "dev", ct).ConfigureAwait(false);
                            await Engine.Net.Socks5Server.RelayAsync(tcp.GetStream(), pf, ct).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or KtException)
                        {
                        }
                    }
                }, CancellationToken.None));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        await Task.WhenAll(pumps).ConfigureAwait(false);
    }

    /// <summary>One large response (SshBenchTargets' source protocol) read by a client in the pod namespace; MiB/s.</summary>
    private static async Task<double> DownloadAsync(string netns, IPEndPoint target, long bytes, CancellationToken ct)
    {
        using var socket = await NetNsSocket.ConnectAsync(netns, target, ct).ConfigureAwait(false);
        await using var s = new NetworkStream(socket, ownsSocket: false);
        var sw = Stopwatch.StartNew();
        await s.WriteAsync(BitConverter.GetBytes(bytes), ct).ConfigureAwait(false);
        var buf = new byte[256 * 1024];
        long got = 0;
        int n;
        while (got < bytes && (n = await s.ReadAsync(buf, ct).ConfigureAwait(false)) > 0) got += n;
        sw.Stop();
        if (got != bytes) throw new InvalidOperationException($"got {got} of {bytes} bytes");
        return bytes / 1048576.0 / sw.Elapsed.TotalSeconds;
    }

    private static async Task<bool> ListensAsync(string netns, IPEndPoint target, CancellationToken ct)
    {
        try
        {
            using var s = await NetNsSocket.ConnectAsync(netns, target, ct).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string ClusterIp(SimCluster cluster, string service) =>
        cluster.Store.Get(ResourceTypes.Services, "dev", service)!["spec"]!["clusterIP"]!.GetValue<string>();

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static string Deployment(string name) => new JsonObject
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "dev" },
        ["spec"] = new JsonObject
        {
            ["replicas"] = 1,
            ["selector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["app"] = name } },
            ["template"] = new JsonObject
            {
                ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["app"] = name } },
                ["spec"] = new JsonObject
                {
                    ["containers"] = new JsonArray(new JsonObject
                    {
                        ["name"] = name,
                        ["image"] = "ktconnect/echo:1.0",
                        ["ports"] = new JsonArray(new JsonObject { ["containerPort"] = 8080, ["name"] = "http" }),
                    }),
                },
            },
        },
    }.ToJsonString();

    private static string Service(string name, string? app = null) => new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Service",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "dev" },
        ["spec"] = new JsonObject
        {
            ["selector"] = new JsonObject { ["app"] = app ?? name },
            ["ports"] = new JsonArray(new JsonObject { ["name"] = "http", ["port"] = 80, ["targetPort"] = 8080 }),
        },
    }.ToJsonString();
}
