using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.Engine.Dns;

namespace KtConnect.Bench;

/// <summary>
/// Split DNS: queries per second and p99 latency through our server vs asking dnsmasq directly, with the same
/// UDP load generator on both sides. Cached: names our cache holds. Uncached: the cache is off, so every query is
/// relayed (to the upstream dnsmasq over UDP, or to the cluster dnsmasq over one pipelined TCP stream).
/// </summary>
public sealed class DnsSplitScenario : IScenario
{
    private const int Concurrency = 16;
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(2);

    public string Name => "dns-split";

    public string Description => "split-DNS server (cached, uncached upstream, uncached cluster) vs dnsmasq directly: qps and p99";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!ProcessRunner.IsOnPath("dnsmasq")) throw new InvalidOperationException("dnsmasq is not installed");
        var dir = Directory.CreateTempSubdirectory("ktdns-bench-");
        using var cluster = StartDnsmasq(dir.FullName, "cluster", "--host-record=orders.dev.svc.cluster.local,10.96.0.20",
            "--host-record=payments.dev.svc.cluster.local,10.96.0.21");
        using var upstream = StartDnsmasq(dir.FullName, "upstream", "--host-record=intranet.corp.example,192.168.50.10",
            "--host-record=git.corp.example,192.168.50.11");
        try
        {
            await WaitAsync(cluster.EndPoint, "orders.dev.svc.cluster.local", cancellationToken).ConfigureAwait(false);
            await WaitAsync(upstream.EndPoint, "intranet.corp.example", cancellationToken).ConfigureAwait(false);
            var options = new SplitDnsOptions { Namespace = "dev", Upstreams = [upstream.EndPoint] };
            await using var cached = SplitDnsServer.Start(options, new TcpClusterDnsTransport(cluster.EndPoint));
            await using var uncached = SplitDnsServer.Start(options with { CacheCapacity = 0 }, new TcpClusterDnsTransport(cluster.EndPoint));

            string[] outside = ["intranet.corp.example", "git.corp.example"];
            string[] inside = ["orders.dev.svc.cluster.local", "payments.dev.svc.cluster.local"];
            await CompareAsync(context, "cached", cached.EndPoint, upstream.EndPoint, outside, cancellationToken).ConfigureAwait(false);
            await CompareAsync(context, "uncached-upstream", uncached.EndPoint, upstream.EndPoint, outside, cancellationToken).ConfigureAwait(false);
            await CompareAsync(context, "uncached-cluster", uncached.EndPoint, cluster.EndPoint, inside, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task CompareAsync(BenchContext context, string what, IPEndPoint ours, IPEndPoint peer, string[] names,
        CancellationToken cancellationToken)
    {
        await LoadAsync(ours, names, cancellationToken).ConfigureAwait(false); // warm-up
        await LoadAsync(peer, names, cancellationToken).ConfigureAwait(false);
        var oq = new List<double>();
        var op = new List<double>();
        var pq = new List<double>();
        var pp = new List<double>();
        for (var i = 0; i < context.Runs; i++)
        {
            var (q1, p1) = await LoadAsync(ours, names, cancellationToken).ConfigureAwait(false);
            var (q2, p2) = await LoadAsync(peer, names, cancellationToken).ConfigureAwait(false);
            oq.Add(q1);
            op.Add(p1);
            pq.Add(q2);
            pp.Add(p2);
        }
        context.Report("dns-split", what + "-qps", "queries/s", true, oq, "dnsmasq direct", pq);
        context.Report("dns-split", what + "-p99", "ms", false, op, "dnsmasq direct", pp);
    }

    /// <summary>
    /// <see cref="Concurrency"/> workers, each with its own socket and one query outstanding, for <see cref="Duration"/>.
    /// Returns queries answered per second and the p99 latency in milliseconds (a lost query counts as one second).
    /// </summary>
    private static async Task<(double Qps, double P99)> LoadAsync(IPEndPoint server, string[] names, CancellationToken cancellationToken)
    {
        var queries = names.Select((n, i) => DnsMessage.CreateQuery((ushort)i, DnsName.Parse(n), DnsType.A).ToArray()).ToArray();
        var latencies = new List<double>[Concurrency];
        var answered = 0L;
        var stopAt = Stopwatch.GetTimestamp() + (long)(Duration.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, Concurrency).Select(w => Task.Run(async () =>
        {
            var mine = latencies[w] = new List<double>(100_000);
            using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(server);
            var buffer = new byte[4096];
            var send = new byte[512];
            ushort id = (ushort)(w << 11);
            var i = w;
            while (Stopwatch.GetTimestamp() < stopAt)
            {
                var q = queries[i++ % queries.Length];
                q.CopyTo(send, 0);
                id++;
                send[0] = (byte)(id >> 8);
                send[1] = (byte)id;
                var start = Stopwatch.GetTimestamp();
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(1000);
                try
                {
                    await socket.SendAsync(send.AsMemory(0, q.Length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    while (true)
                    {
                        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                        if (n >= 2 && buffer[0] == send[0] && buffer[1] == send[1]) break;
                    }
                    mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    Interlocked.Increment(ref answered);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    mine.Add(1000);
                }
            }
        }, cancellationToken)).ToArray();
        await Task.WhenAll(workers).ConfigureAwait(false);
        var all = latencies.SelectMany(l => l).ToList();
        return (answered / Duration.TotalSeconds, BenchContext.Percentile(all, 99));
    }

    private static async Task WaitAsync(IPEndPoint server, string name, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
        var query = DnsMessage.CreateQuery(1, DnsName.Parse(name), DnsType.A).ToArray();
        var buffer = new byte[4096];
        while (true)
        {
            using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(server);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(200);
            try
            {
                await socket.SendAsync(query, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException && Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A dnsmasq on 127.0.0.1 and a free port, answering only from its own records (the rest NXDOMAIN).</summary>
    private static Dnsmasq StartDnsmasq(string dir, string name, params string[] records)
    {
        var port = FreePort();
        var psi = new ProcessStartInfo("dnsmasq")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--log-facility=" + Path.Combine(dir, name + ".log"),
                     "--user=root", "--pid-file=" + Path.Combine(dir, name + ".pid"), "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--port=" + port, "--local=/#/", "--local-ttl=300", "--dns-forward-max=1000",
                 }.Concat(records))
            psi.ArgumentList.Add(a);
        return new Dnsmasq(Process.Start(psi) ?? throw new InvalidOperationException("cannot start dnsmasq"), new IPEndPoint(IPAddress.Loopback, port));
    }

    private static int FreePort()
    {
        // A port free for both UDP and TCP, as dnsmasq binds both.
        for (var i = 0; ; i++)
        {
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)tcp.LocalEndPoint!).Port;
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException) when (i < 20)
            {
            }
        }
    }

    private sealed class Dnsmasq(Process process, IPEndPoint endPoint) : IDisposable
    {
        public IPEndPoint EndPoint { get; } = endPoint;

        public void Dispose()
        {
            try
            {
                if (!process.HasExited) process.Kill();
                process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }
            process.Dispose();
        }
    }
}
