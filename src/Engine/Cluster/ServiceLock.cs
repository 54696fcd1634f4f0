using KtConnect.Engine.Kube;

namespace KtConnect.Engine.Cluster;

/// <summary>
/// ktctl's <c>kt-lock</c> on a Service (general/lock.go), held while an exchange or mesh rewires it: the annotation
/// holds the cluster time in Unix seconds; a lock older than <see cref="KtConventions.LockTimeout"/> is taken over.
/// Taking it is a compare-and-swap JSON patch (test resourceVersion, add annotation), so two users never both win.
/// Dispose removes it only if it is still ours.
/// </summary>
public sealed class ServiceLock : IAsyncDisposable
{
    private readonly KubeClient _client;
    private int _released;

    private ServiceLock(KubeClient client, string ns, string service, string value)
    {
        _client = client;
        Namespace = ns;
        Service = service;
        Value = value;
    }

    public string Namespace { get; }

    public string Service { get; }

    /// <summary>The kt-lock value written (Unix seconds, cluster time).</summary>
    public string Value { get; }

    /// <summary>ktctl retries 10 times, 3 s apart.</summary>
    public static async Task<ServiceLock> AcquireAsync(KubeClient client, string ns, string service, int attempts = 10, TimeSpan? retryDelay = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var delay = retryDelay ?? TimeSpan.FromSeconds(3);
        string? heldSince = null;
        for (var attempt = 1; ; attempt++)
        {
            var svc = await client.Services.GetAsync(service, ns, cancellationToken).ConfigureAwait(false);
            var now = client.Clock.UtcNow;
            var current = svc.Metadata.GetAnnotation(KtConventions.LockAnnotation);
            var free = current is null
                || !KtConventions.TryParseUnixSeconds(current, out var since)
                || now - since > KtConventions.LockTimeout;
            if (free)
            {
                var value = KtConventions.FormatUnixSeconds(now);
                var ops = new JsonPatchBuilder().Test("/metadata/resourceVersion", svc.Metadata.ResourceVersion);
                if (svc.Metadata.Annotations is null) ops.Add("/metadata/annotations", new System.Text.Json.Nodes.JsonObject());
                ops.Add("/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.LockAnnotation), value);
                try
                {
                    await client.Services.PatchAsync(service, KubePatch.Json(ops), ns, cancellationToken).ConfigureAwait(false);
                    return new ServiceLock(client, ns, service, value);
                }
                catch (KubeApiException e) when (e is KubeInvalidException or KubeConflictException)
                {
                    // Someone changed the Service between our read and our patch: look again.
                }
            }
            else
            {
                heldSince = current;
            }
            if (attempt >= attempts)
            {
                var age = KtConventions.TryParseUnixSeconds(heldSince, out var t) ? $" since {t:u} (cluster time)" : "";
                throw new KtException("ServiceLocked", KtErrorCategory.ResourceBusy,
                    $"Service '{ns}/{service}' is locked by another exchange or mesh being set up{age} (annotation kt-lock). Try again in a moment; " +
                    $"a lock older than {KtConventions.LockTimeout.TotalSeconds:0} s is taken over, and Clear-KtResource / ktctl clean removes stale locks.",
                    null, service);
            }
            await Task.Delay(free ? TimeSpan.FromMilliseconds(Random.Shared.Next(5, 50)) : delay, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Removes kt-lock if it still holds our value (test + remove in one JSON patch).</summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        var path = "/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.LockAnnotation);
        try
        {
            await _client.Services.PatchAsync(Service, KubePatch.Json(new JsonPatchBuilder().Test(path, Value).Remove(path)), Namespace,
                cancellationToken).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (e is KubeInvalidException or KubeNotFoundException or KubeConflictException)
        {
            // Gone, already removed, or taken over after it went stale: not ours to remove any more.
        }
        catch
        {
            // Not removed (cancelled, or the API server did not answer): a later release, the session's undo, tries again.
            Interlocked.Exchange(ref _released, 0);
            throw;
        }
    }

    public async ValueTask DisposeAsync() => await ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
}
