using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine.Kube;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>An HttpMessageHandler that answers from a script and records what was asked.</summary>
internal sealed class ScriptedHandler : HttpMessageHandler
{
    private readonly Queue<Func<HttpRequestMessage, string?, HttpResponseMessage>> _script = new();

    public List<(HttpMethod Method, string PathAndQuery, string? ContentType, string? Body, string? Authorization)> Requests { get; } = [];

    public ScriptedHandler Then(Func<HttpRequestMessage, string?, HttpResponseMessage> step)
    {
        _script.Enqueue(step);
        return this;
    }

    public ScriptedHandler Then(HttpStatusCode code, string body, string contentType = "application/json", Action<HttpResponseMessage>? headers = null) =>
        Then((_, _) =>
        {
            var r = new HttpResponseMessage(code) { Content = new StringContent(body, Encoding.UTF8) };
            r.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
            headers?.Invoke(r);
            return r;
        });

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        Requests.Add((request.Method, request.RequestUri!.PathAndQuery, request.Content?.Headers.ContentType?.ToString(), body,
            request.Headers.TryGetValues("Authorization", out var a) ? a.First() : null));
        if (_script.Count == 0) throw new InvalidOperationException("unexpected request " + request.Method + " " + request.RequestUri);
        var response = _script.Dequeue()(request, body);
        response.RequestMessage = request;
        return response;
    }

    public static KubeClient Client(HttpMessageHandler handler, KubeClientOptions? options = null, IKubeCredentials? credentials = null) =>
        new(new KubeClientConfiguration
        {
            Server = new Uri("https://kube.test:6443/"),
            ContextName = "ctx-test",
            ClusterName = "cluster-test",
            Namespace = "fixtures",
            Credentials = credentials ?? AnonymousCredentials.Instance,
        }, handler, null, options);
}

/// <summary>A one-shot TCP server that reads a request's headers and writes fixed bytes back (raw HTTP, e.g. a recorded chunked watch body).</summary>
internal sealed class RawHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _serve;

    public RawHttpServer(byte[] response)
    {
        _listener.Start();
        _serve = ServeAsync(response);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string? Request { get; private set; }

    private async Task ServeAsync(byte[] response)
    {
        using var client = await _listener.AcceptTcpClientAsync();
        var stream = client.GetStream();
        var buffer = new byte[8192];
        var total = 0;
        while (true)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(total));
            if (n == 0) return;
            total += n;
            var text = Encoding.ASCII.GetString(buffer, 0, total);
            if (text.Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                Request = text;
                break;
            }
        }
        await stream.WriteAsync(response);
        await stream.FlushAsync();
        client.Client.Shutdown(SocketShutdown.Send);
        // Wait for the client to close so the bytes are not cut off by a reset.
        try
        {
            while (await stream.ReadAsync(buffer) > 0)
            {
            }
        }
        catch (IOException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        try
        {
            await _serve;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
        }
    }
}
