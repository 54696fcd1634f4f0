using System.Net;
using System.Net.WebSockets;
using Microsoft.Extensions.Logging;

namespace KtConnect.Engine.Kube;

/// <summary>
/// WebSocket upgrades to the API server (port-forward, exec): credentials as headers, the configuration's TLS
/// handler through an HttpMessageInvoker, and a failed handshake turned into the same typed errors as REST calls
/// (the refusal's body is captured by <see cref="UpgradeCaptureHandler"/>, since ClientWebSocket drops it).
/// </summary>
internal sealed partial class KubeWebSockets : IDisposable
{
    /// <summary>
    /// Answers a close the server sent (close 1000 back, under the stream's send lock, at most 5 s). A server that is
    /// already gone is not an error: its close was received.
    /// </summary>
    internal static async Task AnswerCloseAsync(WebSocket ws, SemaphoreSlim sendLock)
    {
        if (ws.State != WebSocketState.CloseReceived) return;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await sendLock.WaitAsync(timeout.Token).ConfigureAwait(false);
            try
            {
                await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
            }
            finally
            {
                sendLock.Release();
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private static readonly AsyncLocal<UpgradeCapture?> CurrentCapture = new();

    private readonly KubeTransport _transport;
    private readonly ILogger? _logger;
    private readonly HttpMessageInvoker _invoker;

    public KubeWebSockets(KubeTransport transport, ILogger? logger)
    {
        _transport = transport;
        _logger = logger;
        _invoker = new HttpMessageInvoker(new UpgradeCaptureHandler(transport.Configuration.CreateHandler()), disposeHandler: true);
    }

    /// <summary>Connects; returns the socket and the negotiated subprotocol ("" when the server chose none).</summary>
    public async Task<(ClientWebSocket Socket, string Protocol)> ConnectAsync(string pathAndQuery, IReadOnlyList<string> subprotocols,
        KubeRequestInfo info, CancellationToken cancellationToken)
    {
        var httpUri = _transport.BuildUri(pathAndQuery);
        var builder = new UriBuilder(httpUri) { Scheme = httpUri.Scheme == Uri.UriSchemeHttps ? "wss" : "ws" };
        var uri = builder.Uri;
        var request = new KubeHttpRequest(HttpMethod.Get, pathAndQuery, info);
        var reauthenticated = false;
        while (true)
        {
            var ws = new ClientWebSocket();
            ws.Options.CollectHttpResponseDetails = true;
            ws.Options.KeepAliveInterval = TimeSpan.FromSeconds(30);
            foreach (var p in subprotocols) ws.Options.AddSubProtocol(p);
            ws.Options.SetRequestHeader("User-Agent", _transport.Options.UserAgent);
            if (_transport.Configuration.HostHeader is string host) ws.Options.SetRequestHeader("Host", host);
            var capture = new UpgradeCapture();
            try
            {
                // Credentials first, with the caller's time: an exec plugin has its own bound (a login may take minutes).
                await _transport.Configuration.Credentials.ApplyAsync((n, v) => ws.Options.SetRequestHeader(n, v), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                ws.Dispose();
                throw;
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_transport.Options.StreamConnectTimeout);
            try
            {
                CurrentCapture.Value = capture;
                await ws.ConnectAsync(uri, _invoker, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                ws.Dispose();
                throw _transport.TimeoutError(request, ex);
            }
            catch (WebSocketException ex)
            {
                var code = capture.StatusCode ?? (int)ws.HttpStatusCode;
                ws.Dispose();
                if (code == 0 || code == 101 || ex.InnerException is HttpRequestException)
                {
                    if (ex.InnerException is HttpRequestException hre) throw _transport.TransportError(hre, request);
                    if (code == 0) throw _transport.TransportError(ex, request);
                    throw new KubeProtocolException("KubeUpgradeFailed",
                        $"The WebSocket upgrade for {info.Verb} {info.Resource} \"{info.Name}\" on {_transport.ServerName} failed: {ex.Message}", ex, info.Name);
                }
                var error = KubeErrorFactory.FromResponse(code, capture.Body ?? [], null, info);
                if (code == 403 && (capture.Body is null || capture.Body.Length == 0))
                {
                    // A bare 403 with no body is the CRI streaming server refusing the subprotocol (see the 1.20 fixtures).
                    error = error with { ServerMessage = $"the server refused the WebSocket upgrade (offered subprotocols: {string.Join(", ", subprotocols)})" };
                }
                if (code == 401 && !reauthenticated && await _transport.Configuration.Credentials.OnUnauthorizedAsync(cancellationToken).ConfigureAwait(false))
                {
                    reauthenticated = true;
                    continue;
                }
                throw KubeErrorFactory.Create(error);
            }
            catch (HttpRequestException ex)
            {
                ws.Dispose();
                throw _transport.TransportError(ex, request);
            }
            finally
            {
                CurrentCapture.Value = null;
            }
            var negotiated = ws.SubProtocol ?? "";
            if (negotiated.Length > 0 && !subprotocols.Contains(negotiated, StringComparer.Ordinal))
            {
                ws.Abort();
                ws.Dispose();
                throw new KubeProtocolException("KubeUpgradeFailed",
                    $"{_transport.ServerName} negotiated the subprotocol \"{negotiated}\", which was not offered.", null, info.Name);
            }
            _logger?.LogDebug("WebSocket {Path} connected ({Protocol})", pathAndQuery, negotiated);
            return (ws, negotiated);
        }
    }

    public void Dispose() => _invoker.Dispose();

    private sealed class UpgradeCapture
    {
        public int? StatusCode { get; set; }
        public byte[]? Body { get; set; }
    }

    /// <summary>Keeps the status and (up to 64 KiB of) the body of a refused upgrade, like client-go does, for the error message.</summary>
    private sealed class UpgradeCaptureHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var capture = CurrentCapture.Value;
            if (capture is not null && response.StatusCode != HttpStatusCode.SwitchingProtocols)
            {
                capture.StatusCode = (int)response.StatusCode;
                try
                {
                    var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                    await using (stream.ConfigureAwait(false))
                    {
                        var buffer = new byte[64 * 1024];
                        var total = 0;
                        int n;
                        while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
                            total += n;
                        capture.Body = buffer.AsSpan(0, total).ToArray();
                    }
                }
                catch (HttpRequestException)
                {
                    capture.Body = [];
                }
                catch (IOException)
                {
                    capture.Body = [];
                }
            }
            return response;
        }
    }
}

internal sealed partial class KubeWebSockets
{
    private static readonly string[] PortForwardProtocols = ["v4.channel.k8s.io"];

    public async Task<PortForwardStream> PortForwardAsync(string pod, int port, string ns, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(pod);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        var path = KubeResources.Pods.Path(ns, pod, "portforward") + "?ports=" + port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var info = _transport.Info("create", "pods/portforward", ns, pod);
        var (ws, protocol) = await ConnectAsync(path, PortForwardProtocols, info, cancellationToken).ConfigureAwait(false);
        return new PortForwardStream(ws, port, pod, protocol);
    }
}

internal sealed partial class KubeWebSockets
{
    private static readonly string[] ExecProtocols = [ExecProtocol.V5, ExecProtocol.V4];

    public async Task<ExecResult> ExecAsync(ExecRequest request, Stream? stdin, Stream? stdout, Stream? stderr, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var ns = request.Namespace ?? _transport.Configuration.Namespace;
        var q = new QueryBuilder();
        foreach (var arg in request.Command) q.Add("command", arg);
        q.Add("container", request.Container);
        var wantStdin = request.Stdin && stdin is not null;
        if (wantStdin) q.Add("stdin", "true");
        if (request.Stdout) q.Add("stdout", "true");
        if (request.Stderr && !request.Tty) q.Add("stderr", "true");
        if (request.Tty) q.Add("tty", "true");
        var path = KubeResources.Pods.Path(ns, request.Pod, "exec") + q;
        var info = _transport.Info("create", "pods/exec", ns, request.Pod);
        var (ws, protocol) = await ConnectAsync(path, ExecProtocols, info, cancellationToken).ConfigureAwait(false);
        using (ws)
        {
            var session = new ExecSession(ws, protocol, request.Pod, stdout, stderr);
            return await session.RunAsync(wantStdin ? stdin : null, cancellationToken).ConfigureAwait(false);
        }
    }
}
