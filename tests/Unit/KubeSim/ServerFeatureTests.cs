using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Streaming;
using Microsoft.AspNetCore.Http;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class ServerFeatureTests
{
    [Fact]
    public async Task Kubeconfig_names_the_server_the_ca_and_the_token()
    {
        await using var c = await SimClient.StartAsync();
        var dir = Directory.CreateTempSubdirectory("kubesim-test-");
        try
        {
            var path = c.Server.WriteKubeconfig(Path.Combine(dir.FullName, "config"), @namespace: "team");
            var text = await File.ReadAllTextAsync(path);
            Assert.Contains("server: " + c.Server.BaseAddress.ToString().TrimEnd('/'), text, StringComparison.Ordinal);
            Assert.Contains("token: " + c.Server.AdminToken, text, StringComparison.Ordinal);
            Assert.Contains("namespace: team", text, StringComparison.Ordinal);
            var caLine = text.Split('\n').Single(l => l.TrimStart().StartsWith("certificate-authority-data:", StringComparison.Ordinal));
            var pem = Encoding.ASCII.GetString(Convert.FromBase64String(caLine.Split(':')[1].Trim()));
            Assert.Equal(c.Server.CaCertificatePem, pem);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Http2_clients_get_the_same_answers()
    {
        await using var c = await SimClient.StartAsync();
        using var req = new HttpRequestMessage(HttpMethod.Get, "/api/v1/namespaces/default/services/kubernetes")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var resp = await c.Http.SendAsync(req);
        Assert.Equal(HttpVersion.Version20, resp.Version);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var svc = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
        Assert.Equal("10.96.0.1", svc["spec"]!["clusterIP"]!.GetValue<string>());
        Assert.NotNull(resp.Headers.Date);
    }

    [Fact]
    public async Task Hooks_can_refuse_verbs_answer_requests_and_see_every_request()
    {
        await using var c = await SimClient.StartAsync();
        c.Server.Hooks.Authorize = info => !(info.Verb == "create" && info.Resource == "pods");
        var (status, body, _) = await c.PostAsync("/api/v1/namespaces/default/pods",
            """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}""");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("pods is forbidden: User \"kubesim-admin\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"",
            body!["message"]!.GetValue<string>());

        var (ssar, review, _) = await c.PostAsync("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            """{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"namespace":"default","verb":"create","resource":"pods"}}}""");
        Assert.Equal(HttpStatusCode.Created, ssar);
        Assert.False(review!["status"]!["allowed"]!.GetValue<bool>());

        var calls = 0;
        c.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (Interlocked.Increment(ref calls) > 1) return false;
            ctx.Response.StatusCode = 429;
            ctx.Response.Headers.RetryAfter = "1";
            await ctx.Response.WriteAsync("{}");
            return true;
        };
        var (first, _, firstResp) = await c.GetAsync("/api/v1/namespaces");
        Assert.Equal((HttpStatusCode)429, first);
        Assert.Equal(TimeSpan.FromSeconds(1), firstResp.Headers.RetryAfter!.Delta);
        var (second, _, _) = await c.GetAsync("/api/v1/namespaces");
        Assert.Equal(HttpStatusCode.OK, second);
        Assert.Contains(c.Server.Hooks.Requests, r => r.Method == "POST" && r.PathAndQuery == "/api/v1/namespaces/default/pods");
    }

    [Fact]
    public async Task Put_creates_leases_and_endpoints_and_deletecollection_returns_what_it_deleted()
    {
        await using var c = await SimClient.StartAsync();
        var (created, lease, _) = await c.SendAsync(HttpMethod.Put, "/apis/coordination.k8s.io/v1/namespaces/default/leases/l1",
            """{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l1"},"spec":{"holderIdentity":"me"}}""");
        Assert.Equal(HttpStatusCode.Created, created);
        Assert.Equal("me", lease!["spec"]!["holderIdentity"]!.GetValue<string>());

        foreach (var n in new[] { "a", "b", "c" })
        {
            await c.PostAsync("/api/v1/namespaces/default/configmaps",
                """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"N","labels":{"del":"D"}}}""".Replace("N", n, StringComparison.Ordinal)
                    .Replace("D", n == "c" ? "no" : "yes", StringComparison.Ordinal));
        }
        var (status, list, _) = await c.SendAsync(HttpMethod.Delete, "/api/v1/namespaces/default/configmaps?labelSelector=del%3Dyes");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ConfigMapList", list!["kind"]!.GetValue<string>());
        Assert.Equal(2, list["items"]!.AsArray().Count);
        Assert.NotNull(c.Server.Store.Get(ResourceTypes.ConfigMaps, "default", "c"));
        Assert.Null(c.Server.Store.Get(ResourceTypes.ConfigMaps, "default", "a"));
    }

    [Fact]
    public async Task Pods_are_bound_and_reported_running_with_an_ip()
    {
        await using var c = await SimClient.StartAsync();
        await c.PostAsync("/api/v1/namespaces/default/pods",
            """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}""");
        var pod = await Wait.ForAsync(() => Task.FromResult(c.Server.Store.Get(ResourceTypes.Pods, "default", "p")),
            p => p?["status"]?["phase"]?.GetValue<string>() == "Running", "pod p to run", p => p?.ToJsonString() ?? "no pod");
        Assert.Equal(c.Server.Options.NodeName, pod!["spec"]!["nodeName"]!.GetValue<string>());
        Assert.StartsWith("10.244.", pod["status"]!["podIP"]!.GetValue<string>(), StringComparison.Ordinal);
        var (_, list, _) = await c.GetAsync("/api/v1/pods?fieldSelector=status.phase%3DRunning,spec.nodeName%3D" + c.Server.Options.NodeName);
        Assert.Single(list!["items"]!.AsArray());
    }

    [Fact]
    public async Task Port_forward_carries_32_concurrent_connections_intact()
    {
        var network = new LocalPodNetwork();
        await using var c = await SimClient.StartAsync(new KubeSimOptions { PodNetwork = network });
        c.Server.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"echo","namespace":"default"},"spec":{"containers":[{"name":"c","image":"i"}]}}""");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        network.Map("default", "echo", 7, (IPEndPoint)listener.LocalEndpoint);
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            var conns = new List<Task>();
            try
            {
                while (true)
                {
                    var tcp = await listener.AcceptTcpClientAsync(stop.Token);
                    conns.Add(Task.Run(async () =>
                    {
                        using (tcp)
                        {
                            var s = tcp.GetStream();
                            var buf = new byte[65536];
                            int n;
                            while ((n = await s.ReadAsync(buf)) > 0) await s.WriteAsync(buf.AsMemory(0, n));
                        }
                    }));
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (InvalidOperationException) when (stop.IsCancellationRequested)
            {
                // Stopped between two accepts ("Not listening").
            }
            await Task.WhenAll(conns);
        });

        const int perConnection = 512 * 1024;
        var sessions = Enumerable.Range(0, 32).Select(async i =>
        {
            using var ws = await c.ConnectWebSocketAsync("/api/v1/namespaces/default/pods/echo/portforward?ports=7", "v4.channel.k8s.io");
            await SimClient.ReceiveAsync(ws);
            await SimClient.ReceiveAsync(ws);
            var data = RandomNumberGenerator.GetBytes(perConnection);
            var send = Task.Run(async () =>
            {
                for (var off = 0; off < data.Length; off += 16 * 1024)
                {
                    var frame = new byte[16 * 1024 + 1];
                    data.AsSpan(off, 16 * 1024).CopyTo(frame.AsSpan(1));
                    await ws.SendAsync(frame, WebSocketMessageType.Binary, true, CancellationToken.None);
                }
            });
            using var received = new MemoryStream();
            while (received.Length < perConnection)
            {
                var m = await SimClient.ReceiveAsync(ws, TimeSpan.FromSeconds(60));
                Assert.NotNull(m);
                Assert.Equal(0, m.Value.Data[0]);
                received.Write(m.Value.Data, 1, m.Value.Data.Length - 1);
            }
            await send;
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }).ToList();
        await Task.WhenAll(sessions).WaitAsync(TimeSpan.FromMinutes(2));
        await stop.CancelAsync();
        listener.Stop();
        await server;
    }
}
