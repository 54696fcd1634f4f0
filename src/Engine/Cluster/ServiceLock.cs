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
    private volatile string _value;
    private readonly HashSet<string> _uncertain = new(StringComparer.Ordinal);
    private CancellationTokenSource? _renewStop;
    private Task? _renewing;

    private ServiceLock(KubeClient client, string ns, string service, string value)
    {
        _client = client;
        Namespace = ns;
        Service = service;
        _value = value;
    }

    public string Namespace { get; }

    public string Service { get; }

    /// <summary>The ErrorId of a lock another holder has.</summary>
    public const string LockedErrorId = "ServiceLocked";

    /// <summary>The kt-lock value written (Unix seconds, cluster time); a renewal writes a newer one.</summary>
    public string Value => _value;

    /// <summary>How often <see cref="KeepRenewing"/> writes a new value: a third of the time after which others take a lock over.</summary>
    public static TimeSpan RenewInterval { get; } = KtConventions.LockTimeout / 3;

    /// <summary>
    /// Keeps the lock from going stale while a long step runs under it (a shadow waited for, up to
    /// <c>--podCreationTimeout</c>): every <paramref name="interval"/> (<see cref="RenewInterval"/>) the value is replaced by
    /// the cluster's time, as a compare-and-swap on our current value, so a lock someone took over is never written.
    /// <paramref name="renewing"/> is told the next value before it is written (a journal records it first; if it throws,
    /// that value is not written) and <paramref name="renewed"/> after: true when the Service holds it, false when it
    /// does not, null when that could not be learned (the request's answer was lost), in which case a later look may
    /// still find it there and call it true. Renewal ends at <see cref="ReleaseAsync"/>, or once the lock is someone
    /// else's. Nothing a callback throws ends it.
    /// </summary>
    public void KeepRenewing(Func<string, CancellationToken, Task>? renewing = null, Func<string, bool?, CancellationToken, Task>? renewed = null,
        TimeSpan? interval = null)
    {
        if (_renewing is not null || Volatile.Read(ref _released) != 0) return;
        _renewStop = new CancellationTokenSource();
        _renewing = RenewLoopAsync(interval ?? RenewInterval, renewing, renewed ?? ((_, _, _) => Task.CompletedTask), _renewStop.Token);
    }

    private async Task RenewLoopAsync(TimeSpan interval, Func<string, CancellationToken, Task>? renewing, Func<string, bool?, CancellationToken, Task> renewed,
        CancellationToken stop)
    {
        while (true)
        {
            try
            {
                await Task.Delay(interval, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            // Not cut off by the release once started: the value written must be the one the release then removes.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var next = KtConventions.FormatUnixSeconds(_client.Clock.UtcNow);
            if (next == _value) continue;
            try
            {
                if (renewing is not null) await renewing(next, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                continue; // not recorded, so not written: tried again at the next interval
            }
            var (outcome, lost) = await RenewOnceAsync(next, renewed, timeout.Token).ConfigureAwait(false);
            // A value tried before, whose earlier write may have landed, is not known to be absent because this one failed.
            lock (_uncertain) if (outcome == false && _uncertain.Contains(next)) outcome = null;
            await Tell(renewed, next, outcome).ConfigureAwait(false);
            if (lost) return;
        }
    }

    /// <summary>
    /// One compare-and-swap from our value to <paramref name="next"/>, and, when its answer says nothing certain, a look.
    /// A value whose write may have landed unseen is remembered (there may be several) until a look finds one of them
    /// on the Service, which makes it ours, or a renewal lands.
    /// </summary>
    private async Task<(bool? Written, bool Lost)> RenewOnceAsync(string next, Func<string, bool?, CancellationToken, Task> renewed, CancellationToken ct)
    {
        var path = "/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.LockAnnotation);
        var unknown = false;
        try
        {
            await _client.Services.PatchAsync(Service, KubePatch.Json(new JsonPatchBuilder().Test(path, _value).Replace(path, next)), Namespace, ct)
                .ConfigureAwait(false);
            Adopt(next);
            return (true, false);
        }
        catch (KubeNotFoundException)
        {
            return (false, true); // the Service is gone
        }
        catch (KubeApiException e) when (e is KubeInvalidException or KubeConflictException)
        {
            // The test failed: not written. The Service holds someone else's value, or one of ours whose answer was lost.
        }
        catch (Exception e) when (e is KtException or OperationCanceledException or HttpRequestException or IOException)
        {
            unknown = true; // no answer: written or not
        }
        string? held;
        try
        {
            using var look = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var service = await _client.Services.GetAsync(Service, Namespace, look.Token).ConfigureAwait(false);
            held = service.Metadata.GetAnnotation(KtConventions.LockAnnotation);
        }
        catch (KubeNotFoundException)
        {
            return (false, true);
        }
        catch (Exception e) when (e is KtException or OperationCanceledException or HttpRequestException or IOException)
        {
            if (!unknown) return (false, false);
            lock (_uncertain) _uncertain.Add(next);
            return (null, false);
        }
        if (held == next && unknown)
        {
            Adopt(next);
            return (true, false);
        }
        if (held == _value) return (false, false);
        bool ours;
        lock (_uncertain) ours = held is not null && _uncertain.Contains(held);
        if (ours)
        {
            // An earlier renewal did land: that value is ours, and this one, if another, was not written.
            Adopt(held!);
            if (held == next) return (true, false);
            await Tell(renewed, held!, true).ConfigureAwait(false);
            return (false, false);
        }
        return (false, true); // taken over after it went stale, or removed
    }

    private void Adopt(string value)
    {
        _value = value;
        lock (_uncertain) _uncertain.Clear();
    }

    private static async Task Tell(Func<string, bool?, CancellationToken, Task> renewed, string value, bool? written)
    {
        try
        {
            await renewed(value, written, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The holder's bookkeeping failed; the lock itself is as the Service says.
        }
    }

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
                throw new KtException(LockedErrorId, KtErrorCategory.ResourceBusy,
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
        if (_renewing is { } renewing)
        {
            // A renewal on the wire finishes first, so the value removed is the one the Service holds.
            await _renewStop!.CancelAsync().ConfigureAwait(false);
            await renewing.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _renewing = null;
            _renewStop.Dispose();
        }
        var path = "/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.LockAnnotation);
        try
        {
            List<string> values;
            lock (_uncertain) values = [Value, .. _uncertain];
            foreach (var value in values)
            {
                try
                {
                    await _client.Services.PatchAsync(Service, KubePatch.Json(new JsonPatchBuilder().Test(path, value).Remove(path)), Namespace,
                        cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (KubeApiException e) when (e is KubeInvalidException or KubeConflictException)
                {
                    // Not this value: a renewal whose answer was lost may have written another.
                }
            }
        }
        catch (KubeNotFoundException)
        {
            // Gone: nothing to remove. (A value of neither kind is someone else's, taken over after ours went stale.)
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
