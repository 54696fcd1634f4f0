using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Integration.Kube;

/// <summary>
/// Volume through the API server: 32 concurrent port-forward WebSockets, 2 MiB each way per connection (64 MiB
/// up and 64 MiB back), to a local TCP echo "in the pod"; every connection's bytes must come back unchanged.
/// Loopback only, no root needed.
/// </summary>
public sealed class PortForwardVolumeTests
{
    private const int Connections = 32;
    private const int BytesPerConnection = 2 * 1024 * 1024;

    [Fact]
    public async Task Sixty_four_MiB_across_32_concurrent_port_forwards_round_trip_intact()
    {
        await using var server = await KubeSimServer.StartAsync();
        using var client = new KubeClient(new KubeClientConfiguration
        {
            Server = server.BaseAddress,
            ContextName = "kubesim",
            Namespace = "default",
            CertificateAuthorities = new X509Certificate2Collection(server.CaCertificate),
            Credentials = new StaticCredentials(server.AdminToken),
        });
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start(Connections);
        var port = ((IPEndPoint)echo.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var echoLoop = Task.Run(() => EchoAsync(echo, stop.Token));
        await client.Pods.CreateAsync(new Pod
        {
            Metadata = new ObjectMeta { Name = "echo", Annotations = new() { ["kubesim.ktconnect.io/host"] = "127.0.0.1" } },
            Spec = new PodSpec { Containers = [new Container { Name = "echo", Image = "echo" }] },
        });

        var results = await Task.WhenAll(Enumerable.Range(0, Connections).Select(i => OneConnectionAsync(client, port, i, stop.Token)));
        foreach (var (sent, received, count) in results)
        {
            Assert.Equal(BytesPerConnection, count);
            Assert.Equal(Convert.ToHexString(sent), Convert.ToHexString(received));
        }
        Assert.True(results.Sum(r => (long)r.Count) >= 64L * 1024 * 1024);
        await stop.CancelAsync();
        echo.Stop();
        await echoLoop;
    }

    private static async Task<(byte[] Sent, byte[] Received, int Count)> OneConnectionAsync(KubeClient client, int port, int seed, CancellationToken ct)
    {
        await using var stream = await client.PortForwardAsync("echo", port, cancellationToken: ct);
        var rng = new Random(seed);
        using var sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var writer = Task.Run(async () =>
        {
            var chunk = new byte[48 * 1024 + seed];
            var left = BytesPerConnection;
            while (left > 0)
            {
                var n = Math.Min(left, chunk.Length);
                rng.NextBytes(chunk.AsSpan(0, n));
                sentHash.AppendData(chunk, 0, n);
                await stream.WriteAsync(chunk.AsMemory(0, n), ct);
                left -= n;
            }
        }, ct);
        using var receivedHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        var total = 0;
        while (total < BytesPerConnection)
        {
            var n = await stream.ReadAsync(buffer, ct);
            if (n == 0) break;
            receivedHash.AppendData(buffer, 0, n);
            total += n;
        }
        await writer;
        return (sentHash.GetHashAndReset(), receivedHash.GetHashAndReset(), total);
    }

    private static async Task EchoAsync(TcpListener listener, CancellationToken ct)
    {
        var connections = new List<Task>();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var c = await listener.AcceptTcpClientAsync(ct);
                connections.Add(Task.Run(async () =>
                {
                    using (c)
                    {
                        var s = c.GetStream();
                        var buf = new byte[64 * 1024];
                        try
                        {
                            int n;
                            while ((n = await s.ReadAsync(buf, ct)) > 0) await s.WriteAsync(buf.AsMemory(0, n), ct);
                        }
                        catch (Exception ex) when (ex is IOException or OperationCanceledException)
                        {
                        }
                    }
                }, ct));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        await Task.WhenAll(connections).ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
