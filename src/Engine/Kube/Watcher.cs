using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using KtConnect.Engine.Kube.Models;
using Microsoft.Extensions.Logging;

namespace KtConnect.Engine.Kube;

/// <summary>Behaviour of a <see cref="Watcher{T}"/>.</summary>
public sealed class WatcherOptions
{
    /// <summary>Server-side length of each watch request; the watcher restarts when the server ends it.</summary>
    public int WatchTimeoutSeconds { get; set; } = 300;

    /// <summary>Pass BOOKMARK events on to the consumer (they always advance the resourceVersion).</summary>
    public bool DeliverBookmarks { get; set; }

    /// <summary>Page size of the (re-)lists.</summary>
    public int ListPageSize { get; set; } = 500;

    /// <summary>First and largest wait between failed attempts.</summary>
    public TimeSpan MinBackoff { get; set; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// An informer-like loop: LIST (paged), then WATCH from the list's resourceVersion with bookmarks; restart the
/// watch from the last seen resourceVersion when the server ends it; re-LIST after 410 Expired or any ERROR
/// event, delivering the difference (ADDED/MODIFIED/DELETED) so consumers see a consistent sequence. Transient
/// failures back off and retry; 401/403/404 stop the watcher and fault <see cref="Completion"/>.
/// It owns its loop and cancellation; Dispose stops it.
/// </summary>
public sealed class Watcher<T> : IAsyncDisposable, IDisposable where T : KubeObject
{
    private readonly ResourceClient<T> _client;
    private readonly string? _namespace;
    private readonly ListOptions _listOptions;
    private readonly WatcherOptions _options;
    private readonly ILogger? _logger;
    private readonly Func<WatchEvent<T>, CancellationToken, ValueTask>? _callback;
    private readonly Channel<WatchEvent<T>> _channel = Channel.CreateUnbounded<WatchEvent<T>>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly ConcurrentDictionary<string, T> _cache = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _cts = new();
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;
    private int _disposed;

    internal Watcher(ResourceClient<T> client, string? ns, ListOptions? listOptions, WatcherOptions options,
        Func<WatchEvent<T>, CancellationToken, ValueTask>? onEvent, ILogger? logger)
    {
        _client = client;
        _namespace = ns;
        _listOptions = listOptions?.CloneList() ?? new ListOptions();
        _options = options;
        _logger = logger;
        _callback = onEvent;
    }

    /// <summary>The resourceVersion the next watch resumes from.</summary>
    public string? ResourceVersion { get; private set; }

    /// <summary>How many LISTs ran (1 after start, more after each re-list).</summary>
    public int ListCount { get; private set; }

    /// <summary>How many WATCH requests were started.</summary>
    public int WatchCount { get; private set; }

    /// <summary>Completes when the first list has been delivered.</summary>
    public Task Synced => _synced.Task;

    /// <summary>Completes when the watcher stops: cleanly on Dispose, faulted on a fatal error.</summary>
    public Task Completion => _loop ?? Task.CompletedTask;

    /// <summary>The current state of every object seen (namespace/name keys).</summary>
    public IReadOnlyCollection<T> Snapshot => _cache.Values.ToArray();

    public bool TryGet(string key, out T? value) => _cache.TryGetValue(key, out value);

    /// <summary>Starts the loop (idempotent).</summary>
    public Watcher<T> Start()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _loop ??= Task.Run(() => RunAsync(_cts.Token));
        return this;
    }

    /// <summary>The events, in order, until the watcher stops (throws the fatal error if it failed). Not used when a callback is set.</summary>
    public IAsyncEnumerable<WatchEvent<T>> ReadAllAsync(CancellationToken cancellationToken = default) =>
        _channel.Reader.ReadAllAsync(cancellationToken);

    /// <summary>A round shorter than this that delivered nothing ended "at once"; a server's own timeout ends later.</summary>
    private TimeSpan QuickRound => TimeSpan.FromSeconds(Math.Min(1.0, _options.WatchTimeoutSeconds / 2.0));

    private async Task RunAsync(CancellationToken ct)
    {
        var needList = true;
        var backoff = _options.MinBackoff;
        Exception? fatal = null;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var roundStarted = Stopwatch.GetTimestamp();
                var progressed = false;
                try
                {
                    if (needList)
                    {
                        await RelistAsync(ct).ConfigureAwait(false);
                        needList = false;
                    }
                    var options = new WatchOptions
                    {
                        LabelSelector = _listOptions.LabelSelector,
                        FieldSelector = _listOptions.FieldSelector,
                        ResourceVersion = ResourceVersion,
                        TimeoutSeconds = _options.WatchTimeoutSeconds,
                        AllowWatchBookmarks = true,
                    };
                    WatchCount++;
                    await foreach (var ev in _client.WatchAsync(_namespace, options, ct).ConfigureAwait(false))
                    {
                        if (ev.Type == WatchEventType.Error)
                        {
                            _logger?.LogDebug("watch {Resource}: ERROR event {Code} {Reason}: {Message}; re-listing",
                                _client.Resource.QualifiedName, ev.Status?.Code, ev.Status?.Reason, ev.Status?.Message);
                            needList = true;
                            break;
                        }
                        progressed = true;
                        backoff = _options.MinBackoff;
                        var obj = ev.Object!;
                        if (!string.IsNullOrEmpty(obj.Metadata.ResourceVersion)) ResourceVersion = obj.Metadata.ResourceVersion;
                        switch (ev.Type)
                        {
                            case WatchEventType.Bookmark:
                                if (_options.DeliverBookmarks) await DeliverAsync(ev, ct).ConfigureAwait(false);
                                continue;
                            case WatchEventType.Deleted:
                                _cache.TryRemove(obj.Key, out _);
                                break;
                            default:
                                obj.ApiVersion ??= _client.Resource.ApiVersion;
                                obj.Kind ??= _client.Resource.Kind;
                                _cache[obj.Key] = obj;
                                break;
                        }
                        await DeliverAsync(ev, ct).ConfigureAwait(false);
                    }
                    // The server ended the stream (timeoutSeconds) or an ERROR asked for a re-list: go round again.
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }
                catch (KubeGoneException)
                {
                    needList = true;
                }
                catch (KubeApiException ex) when (ex is KubeUnauthorizedException or KubeForbiddenException or KubeNotFoundException or KubeBadRequestException)
                {
                    fatal = ex;
                    break;
                }
                catch (KtException ex)
                {
                    _logger?.LogDebug(ex, "watch {Resource} failed; retrying in {Backoff}", _client.Resource.QualifiedName, backoff);
                    await Task.Delay(backoff, ct).ConfigureAwait(false);
                    backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
                    continue;
                }
                // A stream that ended at once without an event, or an ERROR event straight away (a proxy that closes
                // watches, a server that fails them), must not turn the loop into a stream of requests: back off as for a
                // failure. A stream that ran its course, or delivered, goes round at once.
                if (!progressed && Stopwatch.GetElapsedTime(roundStarted) < QuickRound)
                {
                    _logger?.LogDebug("watch {Resource} ended at once; restarting in {Backoff}", _client.Resource.QualifiedName, backoff);
                    await Task.Delay(backoff, ct).ConfigureAwait(false);
                    backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (ConsumerFailedException ex)
        {
            fatal = ex.InnerException;
        }
        catch (Exception ex)
        {
            fatal = ex;
        }
        if (fatal is null) _synced.TrySetCanceled();
        else _synced.TrySetException(fatal);
        _channel.Writer.TryComplete(fatal);
        if (fatal is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(fatal);
    }

    private async Task RelistAsync(CancellationToken ct)
    {
        var list = await _client.ListAllAsync(_namespace, _listOptions, _options.ListPageSize, ct).ConfigureAwait(false);
        ListCount++;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in list.Items)
        {
            var key = item.Key;
            seen.Add(key);
            if (_cache.TryGetValue(key, out var old))
            {
                if (old.Metadata.ResourceVersion == item.Metadata.ResourceVersion) continue;
                _cache[key] = item;
                await DeliverAsync(new WatchEvent<T>(WatchEventType.Modified, item), ct).ConfigureAwait(false);
            }
            else
            {
                _cache[key] = item;
                await DeliverAsync(new WatchEvent<T>(WatchEventType.Added, item), ct).ConfigureAwait(false);
            }
        }
        foreach (var (key, old) in _cache.ToArray())
        {
            if (seen.Contains(key)) continue;
            _cache.TryRemove(key, out _);
            await DeliverAsync(new WatchEvent<T>(WatchEventType.Deleted, old), ct).ConfigureAwait(false);
        }
        ResourceVersion = list.Metadata.ResourceVersion;
        _synced.TrySetResult();
    }

    private async ValueTask DeliverAsync(WatchEvent<T> ev, CancellationToken ct)
    {
        if (_callback is null)
        {
            _channel.Writer.TryWrite(ev);
            return;
        }
        try
        {
            await _callback(ev, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            // A consumer's failure must stop the watcher, not pass for a transient API error that is retried
            // (the event would be lost, since the resourceVersion has already moved on).
            throw new ConsumerFailedException(ex);
        }
    }

    private sealed class ConsumerFailedException(Exception inner) : Exception(inner.Message, inner);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _cts.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is KtException or OperationCanceledException)
            {
                // Already surfaced through Completion / ReadAllAsync.
            }
        }
        _channel.Writer.TryComplete();
        _cts.Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _cts.Cancel();
        _channel.Writer.TryComplete();
        // The loop observes cancellation and ends by itself; its outcome stays on Completion.
    }
}
