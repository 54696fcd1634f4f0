using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// Writes responses the way the Go API server frames them: JSON compact with a trailing newline,
/// Content-Length up to 2048 bytes and chunked beyond (Go net/http's buffer), Cache-Control no-cache, private.
/// </summary>
internal static class HttpBodies
{
    /// <summary>Largest body Go's net/http sends with a Content-Length instead of chunked.</summary>
    public const int ContentLengthLimit = 2048;

    public static Task WriteJsonAsync(HttpContext context, int status, JsonNode body, CancellationToken cancellationToken) =>
        WriteAsync(context, status, "application/json", KubeJson.ToBytesWithNewline(body), cancellationToken);

    public static Task WriteStatusAsync(HttpContext context, KubeApiException error, CancellationToken cancellationToken)
    {
        if (error.Code == 403) context.Response.Headers["X-Content-Type-Options"] = "nosniff";
        return WriteJsonAsync(context, error.Code, error.Status.DeepClone(), cancellationToken);
    }

    public static Task WriteTextAsync(HttpContext context, int status, string text, CancellationToken cancellationToken, bool noSniff = true)
    {
        if (noSniff) context.Response.Headers["X-Content-Type-Options"] = "nosniff";
        return WriteAsync(context, status, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(text), cancellationToken);
    }

    public static async Task WriteAsync(HttpContext context, int status, string contentType, byte[] body, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.Headers.CacheControl = "no-cache, private";
        response.ContentType = contentType;
        if (body.Length <= ContentLengthLimit) response.ContentLength = body.Length;
        await response.Body.WriteAsync(body, cancellationToken).ConfigureAwait(false);
    }
}
