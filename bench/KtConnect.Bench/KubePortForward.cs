using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Api;

namespace KtConnect.Bench;

/// <summary>
/// Pod port-forward through the (in-process) API server to a TCP echo: our PortForwardStream against a bare
/// ClientWebSocket speaking the same v4.channel.k8s.io framing with no abstraction (the floor .NET allows).
/// Figures: echo throughput of one connection and the time to open a forward and read the pod's first byte.
/// </summary>
public sealed class KubePortForward : IScenario
{
    private const int Bytes = 64 * 1024 * 1024;
    private const int Connects = 20;

    public string Name => "kube-port-forward";

    public string Description => "port-forward echo throughput and connect latency via KubeSim: PortForwardStream vs a bare ClientWebSocket";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        await using var server = await KubeSimServer.StartAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        using var client = new KubeClient(new KubeClientConfiguration
        {
            Server = server.BaseAddress,
            ContextName = "kubesim",
            Namespace = "default",
            CertificateAuthorities = new X509Certificate2Collection(server.CaCertificate),
            Credentials = new StaticCredentials(server.AdminToken),
        });
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start(64);
        var port = ((IPEndPoint)echo.LocalEndpoint).Port;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var echoLoop = Task.Run(() => EchoAsync(echo, stop.Token), CancellationToken.None);
        await client.Pods.CreateAsync(new Pod
        {
            Metadata = new ObjectMeta { Name = "echo", Annotations = new() { ["kubesim.ktconnect.io/host"] = "127.0.0.1" } },
            Spec = new PodSpec { Containers = [new Container { Name = "echo", Image = "echo" }] },
        }, cancellationToken: cancellationToken).ConfigureAwait(false);

        async Task<Stream> Ours(CancellationToken ct) => await client.PortForwardAsync("echo", port, cancellationToken: ct).ConfigureAwait(false);
        async Task<Stream> Bare(CancellationToken ct) => await BareStream.ConnectAsync(server, port, ct).ConfigureAwait(false);

        await context.CompareAsync(Name, "throughput", "MiB/s", true, ct => ThroughputAsync(Ours, ct), "bare ClientWebSocket",
            ct => ThroughputAsync(Bare, ct), cancellationToken).ConfigureAwait(false);
        await context.CompareAsync(Name, "connect-first-byte", "ms", false, ct => ConnectLatencyAsync(Ours, ct), "bare ClientWebSocket",
            ct => ConnectLatencyAsync(Bare, ct), cancellationToken).ConfigureAwait(false);

        await stop.CancelAsync().ConfigureAwait(false);
        echo.Stop();
        await echoLoop.ConfigureAwait(false);
    }

    private static async Task<double> ThroughputAsync(Func<CancellationToken, Task<Stream>> open, CancellationToken ct)
    {
        var stream = await open(ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var banner = new byte[1];
            await stream.ReadExactlyAsync(banner, ct).ConfigureAwait(false);
            var sw = Stopwatch.StartNew();
            var writer = Task.Run(async () =>
            {
                var chunk = new byte[64 * 1024];
                for (var left = Bytes; left > 0; left -= chunk.Length) await stream.WriteAsync(chunk, ct).ConfigureAwait(false);
            }, ct);
            var buffer = new byte[64 * 1024];
            var total = 0;
            while (total < Bytes)
            {
                var n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false);
                if (n == 0) throw new IOException("the forward ended early");
                total += n;
            }
            await writer.ConfigureAwait(false);
            return Bytes / 1048576.0 / sw.Elapsed.TotalSeconds;
        }
    }

    private static async Task<double> ConnectLatencyAsync(Func<CancellationToken, Task<Stream>> open, CancellationToken ct)
    {
        var samples = new List<double>();
        var first = new byte[1];
        for (var i = 0; i < Connects; i++)
        {
            var sw = Stopwatch.StartNew();
            var stream = await open(ct).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                await stream.ReadExactlyAsync(first, ct).ConfigureAwait(false);
                samples.Add(sw.Elapsed.TotalMilliseconds);
            }
        }
        return BenchContext.Median(samples);
    }

    private static async Task EchoAsync(TcpListener listener, CancellationToken ct)
    {
        var running = new List<Task>();
        try
        {
            while (true)
            {
                var c = await listener.AcceptTcpClientAsync(ct).ConfigureAwait(false);
                running.Add(Task.Run(async () =>
                {
                    using (c)
                    {
                        var s = c.GetStream();
                        var buf = new byte[64 * 1024];
                        try
                        {
                            await s.WriteAsync("!"u8.ToArray(), ct).ConfigureAwait(false);
                            int n;
                            while ((n = await s.ReadAsync(buf, ct).ConfigureAwait(false)) > 0) await s.WriteAsync(buf.AsMemory(0, n), ct).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is IOException or OperationCanceledException)
                        {
                        }
                    }
                }, CancellationToken.None));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        await Task.WhenAll(running).ConfigureAwait(false);
    }

    /// <summary>The peer: v4.channel.k8s.io over a ClientWebSocket with nothing in between (no pooling, no error channel).</summary>
    private sealed class BareStream : Stream
    {
        private readonly ClientWebSocket _ws;
        private readonly byte[] _recv = new byte[64 * 1024];
        private int _offset;
        private int _count;
        private int _dataPrefix = 2;

        private BareStream(ClientWebSocket ws) => _ws = ws;

        public static async Task<BareStream> ConnectAsync(KubeSimServer server, int port, CancellationToken ct)
        {
            var ws = new ClientWebSocket();
            ws.Options.AddSubProtocol("v4.channel.k8s.io");
            ws.Options.SetRequestHeader("Authorization", "Bearer " + server.AdminToken);
            ws.Options.RemoteCertificateValidationCallback = (_, cert, _, _) =>
            {
                if (cert is null) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(server.CaCertificate);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                using var c2 = X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
                return chain.Build(c2);
            };
            var uri = new Uri($"wss://{server.BaseAddress.Authority}/api/v1/namespaces/default/pods/echo/portforward?ports={port}");
            await ws.ConnectAsync(uri, ct).ConfigureAwait(false);
            return new BareStream(ws);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_count == 0)
            {
                var r = await _ws.ReceiveAsync(_recv.AsMemory(), cancellationToken).ConfigureAwait(false);
                if (r.MessageType == WebSocketMessageType.Close) return 0;
                if (r.Count == 0 || _recv[0] != 0) continue; // error channel and prefixes of channel 1 ignored
                _offset = 1;
                _count = r.Count - 1;
                var skip = Math.Min(_dataPrefix, _count);
                _dataPrefix -= skip;
                _offset += skip;
                _count -= skip;
            }
            var n = Math.Min(_count, buffer.Length);
            _recv.AsSpan(_offset, n).CopyTo(buffer.Span);
            _offset += n;
            _count -= n;
            return n;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var frame = new byte[buffer.Length + 1];
            buffer.CopyTo(frame.AsMemory(1));
            await _ws.SendAsync(frame, WebSocketMessageType.Binary, true, cancellationToken).ConfigureAwait(false);
        }

        public override async ValueTask DisposeAsync()
        {
            try
            {
                using var t = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, t.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
            }
            _ws.Dispose();
            await base.DisposeAsync().ConfigureAwait(false);
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
