using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>A plain HttpClient/ClientWebSocket against a started KubeSim, trusting only its CA.</summary>
internal sealed class SimClient : IAsyncDisposable
{
    private SimClient(KubeSimServer server, HttpClient http)
    {
        Server = server;
        Http = http;
    }

    public KubeSimServer Server { get; }

    public HttpClient Http { get; }

    public static async Task<SimClient> StartAsync(KubeSimOptions? options = null)
    {
        var server = await KubeSimServer.StartAsync(options);
        return new SimClient(server, CreateHttp(server, server.AdminToken));
    }

    public static HttpClient CreateHttp(KubeSimServer server, string? token)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, cert, _, _) => Trusts(server, cert) },
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        var http = new HttpClient(handler) { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(100) };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("kubesim-tests/1.0");
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    public static bool Trusts(KubeSimServer server, X509Certificate? cert)
    {
        if (cert is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(server.CaCertificate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var c2 = X509CertificateLoader.LoadCertificate(cert.GetRawCertData());
        return chain.Build(c2);
    }

    public async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> SendAsync(HttpMethod method, string path,
        string? body = null, string contentType = "application/json")
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue(contentType));
        var resp = await Http.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        JsonNode? node = null;
        if (resp.Content.Headers.ContentType?.MediaType == "application/json" && text.Length > 0) node = JsonNode.Parse(text);
        return (resp.StatusCode, node, resp);
    }

    public Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> GetAsync(string path) => SendAsync(HttpMethod.Get, path);

    public Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> PostAsync(string path, string body) =>
        SendAsync(HttpMethod.Post, path, body);

    public async Task<ClientWebSocket> ConnectWebSocketAsync(string pathAndQuery, params string[] protocols)
    {
        var ws = new ClientWebSocket();
        foreach (var p in protocols) ws.Options.AddSubProtocol(p);
        ws.Options.SetRequestHeader("Authorization", "Bearer " + Server.AdminToken);
        ws.Options.RemoteCertificateValidationCallback = (_, cert, _, _) => Trusts(Server, cert);
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        var uri = new Uri("wss://" + Server.BaseAddress.Authority + pathAndQuery);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await ws.ConnectAsync(uri, cts.Token);
        return ws;
    }

    /// <summary>Receives one whole message; null on close.</summary>
    public static async Task<(WebSocketMessageType Type, byte[] Data)?> ReceiveAsync(WebSocket ws, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        using var ms = new MemoryStream();
        var buffer = new byte[65536];
        while (true)
        {
            var r = await ws.ReceiveAsync(buffer, cts.Token);
            if (r.MessageType == WebSocketMessageType.Close) return null;
            ms.Write(buffer, 0, r.Count);
            if (r.EndOfMessage) return (r.MessageType, ms.ToArray());
        }
    }

    public async Task CreateNamespaceAsync(string name)
    {
        var (status, _, _) = await PostAsync("/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"" + name + "\"}}");
        Assert.Equal(HttpStatusCode.Created, status);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }
}
