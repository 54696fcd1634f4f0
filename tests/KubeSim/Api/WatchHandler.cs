using System.Globalization;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// ?watch=1: a chunked HTTP/1.1 200 with one chunk per event (<c>{"type":..,"object":..}\n</c>, flushed at once),
/// a BOOKMARK shortly before timeoutSeconds when allowWatchBookmarks, and the stream ends at the timeout (5b).
/// A too-old resourceVersion is a 200 with a single ERROR event carrying a 410 Expired Status (5f).
/// </summary>
internal sealed class WatchHandler(ObjectStore store, KubeSimOptions options)
{
    public async Task HandleAsync(HttpContext context, ResourceType type, string? ns, CancellationToken ct)
    {
        var q = context.Request.Query;
        var labels = LabelSelector.Parse(q["labelSelector"]);
        var fields = FieldSelector.Parse(q["fieldSelector"]);
        var bookmarks = ApiHandler.IsTrue(q["allowWatchBookmarks"]);
        var tableVersion = Tables.RequestedVersion(context.Request.Headers.Accept);
        var columnsSent = false;
        var timeout = options.DefaultWatchTimeout;
        if (long.TryParse(q["timeoutSeconds"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds) && seconds > 0)
        {
            timeout = TimeSpan.FromSeconds(seconds);
        }

        var response = context.Response;
        WatchSubscription subscription;
        try
        {
            subscription = store.Watch(type, ns, q["resourceVersion"], labels, fields, bookmarks);
        }
        catch (KubeApiException e) when (e.Code == 410)
        {
            StartStream(response);
            await WriteEventAsync(response, WatchEvent.Error, e.Status, ct).ConfigureAwait(false);
            return;
        }

        using (subscription)
        {
            StartStream(response);
            await response.StartAsync(ct).ConfigureAwait(false);
            await response.Body.FlushAsync(ct).ConfigureAwait(false);

            var time = options.TimeProvider;
            var deadline = time.GetUtcNow() + timeout;
            var bookmarkAt = bookmarks && timeout > options.BookmarkBeforeTimeout ? deadline - options.BookmarkBeforeTimeout : (DateTimeOffset?)null;
            var reader = subscription.Events;
            while (true)
            {
                var now = time.GetUtcNow();
                if (now >= deadline) return;
                if (bookmarkAt is { } at && now >= at)
                {
                    bookmarkAt = null;
                    subscription.RequestBookmark();
                }
                var wait = (bookmarkAt ?? deadline) - now;
                // The timer runs on the configured clock, so a fake TimeProvider drives timeouts and bookmarks too.
                using var timer = new CancellationTokenSource(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, time);
                using var waitCts = CancellationTokenSource.CreateLinkedTokenSource(ct, timer.Token);
                try
                {
                    if (!await reader.WaitToReadAsync(waitCts.Token).ConfigureAwait(false)) return;
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    continue;
                }
                while (reader.TryRead(out var e))
                {
                    var obj = e.Object;
                    if (tableVersion is not null && e.Type is WatchEvent.Added or WatchEvent.Modified or WatchEvent.Deleted)
                    {
                        // As Table: one row per event (kubectl get -w); the columns come with the first event only.
                        obj = Tables.Build(type, [obj], new JsonObject { ["resourceVersion"] = obj["metadata"]?["resourceVersion"]?.DeepClone() }, tableVersion,
                            q["includeObject"], time.GetUtcNow(), withColumns: !columnsSent);
                        columnsSent = true;
                    }
                    await WriteEventAsync(response, e.Type, obj, ct).ConfigureAwait(false);
                }
            }
        }
    }

    private static void StartStream(HttpResponse response)
    {
        response.StatusCode = 200;
        response.Headers.CacheControl = "no-cache, private";
        response.ContentType = "application/json";
    }

    private static async Task WriteEventAsync(HttpResponse response, string type, JsonObject obj, CancellationToken ct)
    {
        // One write + flush per event gives one HTTP/1.1 chunk per event, like the Go server.
        var line = KubeJson.ToBytesWithNewline(new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() });
        await response.Body.WriteAsync(line, ct).ConfigureAwait(false);
        await response.Body.FlushAsync(ct).ConfigureAwait(false);
    }
}
