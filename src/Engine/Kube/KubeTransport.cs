using System.Net;
using System.Net.Http.Headers;
using System.Security.Authentication;
using Microsoft.Extensions.Logging;

namespace KtConnect.Engine.Kube;

/// <summary>Tunables of a <see cref="KubeClient"/>. The defaults follow client-go where it has one.</summary>
public sealed class KubeClientOptions
{
    /// <summary>Deadline of one non-streaming request, from sending to the last byte of the answer.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Deadline for the response headers of a watch, port-forward or exec (the stream itself has none).</summary>
    public TimeSpan StreamConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a 429/503 is retried (honouring Retry-After) before it is thrown.</summary>
    public int MaxThrottleRetries { get; set; } = 3;

    /// <summary>The longest Retry-After we wait for; longer requests are capped to this.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often <c>UpdateWithRetryAsync</c> re-reads and re-applies after a 409 Conflict.</summary>
    public int MaxConflictRetries { get; set; } = 5;

    /// <summary>Largest response body read into memory (lists included).</summary>
    public int MaxResponseBytes { get; set; } = 256 * 1024 * 1024;

    public string UserAgent { get; set; } = "KtConnect/" + (typeof(KubeClientOptions).Assembly.GetName().Version?.ToString(3) ?? "0");
}

/// <summary>One HTTP request to the API server, described well enough to rebuild it for a retry and to name it in errors.</summary>
internal sealed record KubeHttpRequest(HttpMethod Method, string PathAndQuery, KubeRequestInfo Info)
{
    public ReadOnlyMemory<byte>? Body { get; init; }
    public string? ContentType { get; init; }
}

/// <summary>
/// Sends requests: credentials on every attempt, one retry after a 401 when the credentials could be refreshed,
/// 429/503 retried after Retry-After (bounded), timeouts, the Date header fed to the cluster clock, and every
/// failure turned into one typed exception naming the server and context.
/// </summary>
internal sealed class KubeTransport : IDisposable
{
    private static readonly MediaTypeWithQualityHeaderValue AcceptJson = new("application/json");

    private readonly HttpClient _http;
    private readonly KubeClientConfiguration _config;
    private readonly KubeClientOptions _options;
    private readonly ClusterClock _clock;
    private readonly ILogger? _logger;
    private readonly string _base;

    public KubeTransport(KubeClientConfiguration config, HttpMessageHandler handler, KubeClientOptions options, ClusterClock clock, ILogger? logger)
    {
        _config = config;
        _options = options;
        _clock = clock;
        _logger = logger;
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _base = config.Server.GetLeftPart(UriPartial.Path).TrimEnd('/');
    }

    public KubeClientConfiguration Configuration => _config;

    public KubeClientOptions Options => _options;

    public string ServerName => _config.Server.GetLeftPart(UriPartial.Path).TrimEnd('/');

    public string ContextName => _config.ContextName;

    public Uri BuildUri(string pathAndQuery) => new(_base + pathAndQuery);

    public KubeRequestInfo Info(string verb, string resource, string? ns, string? name) =>
        new(verb, resource, ns, name, ServerName, _config.ContextName);

    /// <summary>Sends and returns the successful response's body.</summary>
    public async Task<byte[]> SendAsync(KubeHttpRequest request, CancellationToken cancellationToken)
    {
        var (_, body) = await SendCoreAsync(request, streaming: false, cancellationToken).ConfigureAwait(false);
        return body!;
    }

    /// <summary>Sends and returns the successful response with its body unread (watch). The caller disposes it.</summary>
    public async Task<HttpResponseMessage> SendStreamingAsync(KubeHttpRequest request, CancellationToken cancellationToken)
    {
        var (response, _) = await SendCoreAsync(request, streaming: true, cancellationToken).ConfigureAwait(false);
        return response!;
    }

    private async Task<(HttpResponseMessage? Response, byte[]? Body)> SendCoreAsync(KubeHttpRequest request, bool streaming, CancellationToken cancellationToken)
    {
        var throttled = 0;
        var reauthenticated = false;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            HttpResponseMessage response;
            // The request is built (credentials fetched) with the caller's time, before the request's own: an exec plugin
            // has its own bound, and a login it runs may take minutes.
            var built = await BuildAsync(request, cancellationToken).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(streaming ? _options.StreamConnectTimeout : _options.RequestTimeout);
            var sent = DateTimeOffset.UtcNow;
            using (var message = built)
            {
                try
                {
                    response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    throw TimeoutError(request, ex);
                }
                catch (HttpRequestException ex)
                {
                    throw TransportError(ex, request);
                }
            }
            if (response.Headers.Date is DateTimeOffset date) _clock.Observe(date, sent, DateTimeOffset.UtcNow);
            _logger?.LogDebug("{Method} {Path} -> {Code}", request.Method, request.PathAndQuery, (int)response.StatusCode);
            if (response.IsSuccessStatusCode)
            {
                if (streaming) return (response, null);
                // Read the body under the same deadline, so a server that stalls mid-body cannot hang us.
                using (response)
                {
                    try
                    {
                        return (null, await ReadBodyAsync(response, request, _options.MaxResponseBytes, timeout.Token).ConfigureAwait(false));
                    }
                    catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                    {
                        throw TimeoutError(request, ex);
                    }
                }
            }

            KubeApiError error;
            using (response)
            {
                byte[] body;
                try
                {
                    body = await ReadBodyAsync(response, request, 1024 * 1024, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    throw TimeoutError(request, ex);
                }
                var retryAfter = response.Headers.TryGetValues("Retry-After", out var values) ? values.FirstOrDefault() : null;
                error = KubeErrorFactory.FromResponse((int)response.StatusCode, body, retryAfter, request.Info);
            }

            if (error.Code == 401 && !reauthenticated && await _config.Credentials.OnUnauthorizedAsync(cancellationToken).ConfigureAwait(false))
            {
                reauthenticated = true;
                continue;
            }
            if (IsThrottle(error) && throttled < _options.MaxThrottleRetries)
            {
                throttled++;
                var wait = TimeSpan.FromSeconds(Math.Max(error.RetryAfterSeconds ?? 1, 0));
                if (wait > _options.MaxRetryAfter) wait = _options.MaxRetryAfter;
                _logger?.LogDebug("{Method} {Path}: {Reason}, retrying in {Wait}", request.Method, request.PathAndQuery, error.Reason, wait);
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                continue;
            }
            throw KubeErrorFactory.Create(error);
        }
    }

    private static bool IsThrottle(KubeApiError e) =>
        e.Code == 429 || e.Code == 503 || (e.RetryAfterSeconds is not null && e.Code is 500 or 504);

    private async Task<HttpRequestMessage> BuildAsync(KubeHttpRequest request, CancellationToken cancellationToken)
    {
        var message = new HttpRequestMessage(request.Method, BuildUri(request.PathAndQuery))
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrHigher,
        };
        _config.ConfigureRequest(message);
        message.Headers.Accept.Add(AcceptJson);
        message.Headers.TryAddWithoutValidation("User-Agent", _options.UserAgent);
        if (request.Body is ReadOnlyMemory<byte> body)
        {
            var content = new ReadOnlyMemoryContent(body);
            content.Headers.TryAddWithoutValidation("Content-Type", request.ContentType ?? "application/json");
            message.Content = content;
        }
        // Added, never replaced (one value each: several groups are refused in KubeCredentials).
        await _config.Credentials.ApplyAsync((name, value) => message.Headers.TryAddWithoutValidation(name, value), cancellationToken)
            .ConfigureAwait(false);
        return message;
    }

    private async Task<byte[]> ReadBodyAsync(HttpResponseMessage response, KubeHttpRequest request, int limit, CancellationToken cancellationToken)
    {
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                using var ms = new MemoryStream();
                var buffer = new byte[16 * 1024];
                int n;
                while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    if (ms.Length + n > limit)
                    {
                        throw new KubeProtocolException("KubeResponseTooLarge",
                            $"The answer of {ServerName} to {request.Method} {request.PathAndQuery} exceeds {limit} bytes.", null, ServerName);
                    }
                    ms.Write(buffer, 0, n);
                }
                return ms.ToArray();
            }
        }
        catch (HttpRequestException ex)
        {
            throw TransportError(ex, request);
        }
        catch (IOException ex)
        {
            throw new KubeConnectionException($"The connection to the Kubernetes API server {ServerName}{ContextText()} broke while reading the answer to {request.Method} {request.PathAndQuery}: {ex.Message}", ex, ServerName);
        }
    }

    internal KtException TimeoutError(KubeHttpRequest request, Exception inner) =>
        new KubeRequestTimeoutException(
            $"The Kubernetes API server {ServerName}{ContextText()} did not answer {request.Info.Verb} {request.Info.Resource} within the timeout.", inner, ServerName);

    internal KtException TransportError(Exception ex, KubeHttpRequest? request)
    {
        var what = request is null ? "" : $" ({request.Info.Verb} {request.Info.Resource})";
        if (IsTls(ex))
        {
            return new KubeTlsException(
                $"TLS with the Kubernetes API server {ServerName}{ContextText()} failed{what}: {Innermost(ex).Message}", ex, ServerName);
        }
        return new KubeConnectionException(
            $"Cannot reach the Kubernetes API server {ServerName}{ContextText()}{what}: {Innermost(ex).Message}", ex, ServerName);
    }

    internal string ContextText()
    {
        var parts = new List<string>();
        if (_config.ContextName.Length > 0) parts.Add($"context \"{_config.ContextName}\"");
        if (_config.ClusterName.Length > 0) parts.Add($"cluster \"{_config.ClusterName}\"");
        if (_config.SourceFile is { Length: > 0 } f) parts.Add("from " + f);
        return parts.Count == 0 ? "" : " (" + string.Join(", ", parts) + ")";
    }

    private static bool IsTls(Exception ex)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is AuthenticationException) return true;
            if (e is HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError }) return true;
        }
        return false;
    }

    private static Exception Innermost(Exception ex)
    {
        var e = ex;
        while (e.InnerException is not null) e = e.InnerException;
        // The socket error alone ("Connection refused") loses which layer failed; keep the outer text when short.
        return e.Message.Length == 0 ? ex : e;
    }

    public void Dispose() => _http.Dispose();
}
