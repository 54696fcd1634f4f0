using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// Keeps the private shadow pod of an exchange, mesh or preview (issue 13 item 2). The pod is watched from the moment
/// it runs: when it is deleted (by someone, an eviction, a node loss) or stops, <see cref="OnLost"/> puts the traffic
/// back at once (the Service's own pods), everything of that shadow is undone (forwards, link, heartbeat, the pod and
/// its ConfigMap, their journal entries), a new shadow is started the same way, <see cref="OnRestored"/> takes the
/// traffic again, and the session goes Reconnecting → Running. When no new shadow can be made the session fails with
/// <c>ShadowPodDeleted</c>, its undo restoring the rest. The link's own failure after a deletion is not an error.
/// </summary>
internal sealed class ShadowGuard
{
    /// <summary>How many new shadows one loss tries before the session gives up.</summary>
    private const int Attempts = 2;

    /// <summary>More losses than this within <see cref="LossWindow"/> end the session: a shadow that keeps dying is not chased forever.</summary>
    private const int MaxLosses = 5;

    private static readonly TimeSpan LossWindow = TimeSpan.FromMinutes(10);

    private readonly Queue<DateTime> _losses = new();

    private readonly SessionContext _root;
    private readonly KubeClient _client;
    private readonly string _namespace;
    private readonly string _what;
    private readonly bool _sameName;
    private readonly Func<SessionContext, int, CancellationToken, Task<ShadowConnection>> _start;
    private readonly object _gate = new();
    private readonly CancellationTokenSource _recoveryCts = new();
    private Generation? _current;
    private Task _recovery = Task.CompletedTask;
    private bool _recovering;
    private bool _armed;
    private int _generations;

    /// <param name="root">The session's context.</param>
    /// <param name="client">The cluster.</param>
    /// <param name="ns">The shadow's namespace.</param>
    /// <param name="what">What the shadow serves, for messages ("the exchange of Service dev/orders").</param>
    /// <param name="sameName">The shadow's name is fixed (mesh): a new one waits until the old pod is gone.</param>
    /// <param name="start">Creates the shadow and its forwards in the given (scoped) context; the int is the generation (0 first).</param>
    public ShadowGuard(SessionContext root, KubeClient client, string ns, string what, bool sameName,
        Func<SessionContext, int, CancellationToken, Task<ShadowConnection>> start)
    {
        _root = root ?? throw new ArgumentNullException(nameof(root));
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _namespace = ns;
        _what = what;
        _sameName = sameName;
        _start = start ?? throw new ArgumentNullException(nameof(start));
    }

    /// <summary>Puts the traffic back on the original pods (the shadow is gone). Called before the old shadow is undone.</summary>
    public Func<CancellationToken, Task>? OnLost { get; set; }

    /// <summary>Takes the traffic again with the new shadow.</summary>
    public Func<ShadowConnection, CancellationToken, Task>? OnRestored { get; set; }

    /// <summary>The shadow in use now.</summary>
    public ShadowConnection Current => Volatile.Read(ref _current)?.Connection ?? throw new InvalidOperationException("No shadow yet.");

    /// <summary>The shadow in use now, or null while none runs (a replacement failed half-way).</summary>
    public ShadowConnection? CurrentOrDefault => Volatile.Read(ref _current)?.Connection;

    /// <summary>Starts the first shadow. Its undo (and every later one's) is registered on the session here, in this place of the undo order.</summary>
    public async Task<ShadowConnection> StartAsync(CancellationToken cancellationToken)
    {
        // One step made of the shadow's own steps, each bounded by the usual 60 s: the whole may take longer than one.
        _root.Defer($"remove the shadow of {_what}", async ct =>
        {
            try
            {
                await StopRecoveryAsync().WaitAsync(Session.UndoTimeout, CancellationToken.None).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                _root.Output.Warning($"The replacement of the shadow of {_what} did not stop within {Session.UndoTimeout.TotalSeconds:0} s; removing the shadow in use.");
            }
            if (Volatile.Read(ref _current) is { } g)
            {
                if (await g.Scope.UndoAsync(_root.Output, Session.UndoTimeout).ConfigureAwait(false) is { } e) throw e;
            }
        }, Timeout.InfiniteTimeSpan);
        var first = await NewGenerationAsync(cancellationToken).ConfigureAwait(false);
        return first.Connection!;
    }

    /// <summary>The session is set up: from now on a lost shadow is replaced (before, it fails the start).</summary>
    public void Arm()
    {
        lock (_gate) _armed = true;
    }

    /// <summary>Ends a recovery in progress and waits for it: restoring the Service must not race a re-apply.</summary>
    public async Task StopRecoveryAsync()
    {
        await _recoveryCts.CancelAsync().ConfigureAwait(false);
        Task recovery;
        lock (_gate) recovery = _recovery;
        try
        {
            await recovery.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task<Generation> NewGenerationAsync(CancellationToken cancellationToken)
    {
        var g = new Generation();
        g.Scope = new UndoScope
        {
            OnFail = e => OnLinkFailed(g, e),
            OnReconnecting = e =>
            {
                if (!g.Lost) _root.ReportReconnecting(e);
            },
            OnRecovered = () =>
            {
                if (!g.Lost) _root.ReportRecovered();
            },
        };
        var number = Interlocked.Increment(ref _generations) - 1;
        Volatile.Write(ref _current, g);
        var connection = await _start(_root.WithScope(g.Scope), number, cancellationToken).ConfigureAwait(false);
        g.Connection = connection;
        var pod = connection.PodName;
        var watcher = _client.Pods.CreateWatcher(_namespace, new ListOptions { FieldSelector = "metadata.name=" + pod }, onEvent: (ev, _) =>
        {
            if (ev.Type == WatchEventType.Deleted) Lose(g, "was deleted");
            else if (ev.Object is { } p && Gone(p) is { } why) Lose(g, why);
            return ValueTask.CompletedTask;
        });
        watcher.Start();
        g.Scope.Defer($"stop watching shadow pod {_namespace}/{pod}", _ => watcher.DisposeAsync().AsTask());
        _ = watcher.Completion.ContinueWith(t =>
        {
            if (t.Exception?.GetBaseException() is { } e && !_root.Stopping.IsCancellationRequested && !g.Lost)
                _root.Output.Warning($"Stopped watching the shadow pod {_namespace}/{pod} ({e.Message}); its loss is now noticed only when the link gives up.");
        }, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        await watcher.Synced.WaitAsync(cancellationToken).ConfigureAwait(false);
        // Deleted between running and the watch's list: the list simply does not have it.
        if (!watcher.TryGet(_namespace + "/" + pod, out _)) Lose(g, "was deleted");
        return g;
    }

    /// <summary>Why a pod that still exists no longer serves, or null.</summary>
    private static string? Gone(Pod pod)
    {
        if (pod.Metadata.DeletionTimestamp is not null) return "is being deleted";
        if (pod.Status?.Phase is "Failed" or "Succeeded")
            return $"stopped (phase {pod.Status.Phase}{(pod.Status.Reason is { } r ? ", " + r : "")})";
        return null;
    }

    /// <summary>The link gave up: if the pod is gone that is the loss (already handled or handled now), else the session's failure.</summary>
    private void OnLinkFailed(Generation g, Exception cause)
    {
        lock (_gate)
        {
            if (g.Lost || _recovering || _root.Stopping.IsCancellationRequested) return;
            var previous = _recovery;
            _recovery = CheckAsync();
            async Task CheckAsync()
            {
                try
                {
                    await previous.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
                string? why;
                try
                {
                    var pod = await _client.Pods.TryGetAsync(g.Connection?.PodName ?? "", _namespace, _root.Stopping).ConfigureAwait(false);
                    why = pod is null ? "was deleted" : Gone(pod);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    why = null;
                }
                if (g.Lost) return;
                if (why is not null) Lose(g, why);
                else _root.Fail(cause);
            }
        }
    }

    private void Lose(Generation g, string why)
    {
        lock (_gate)
        {
            if (g.Lost || !ReferenceEquals(g, _current) || _root.Stopping.IsCancellationRequested || _recoveryCts.IsCancellationRequested) return;
            g.Lost = true;
            // A shadow lost while a recovery makes it is that recovery's to handle (it checks Lost).
            if (_recovering) return;
            var now = DateTime.UtcNow;
            _losses.Enqueue(now);
            while (_losses.Count > 0 && now - _losses.Peek() > LossWindow) _losses.Dequeue();
            if (_losses.Count > MaxLosses)
            {
                var lost = g.Connection?.PodName ?? "?";
                _root.Fail(new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
                    $"The shadow pod '{_namespace}/{lost}' {why}, the {_losses.Count}th shadow lost within {LossWindow.TotalMinutes:0} minutes; " +
                    $"{_what} ended and its traffic went back to the original pods. Look at the namespace's events (evictions, node problems).", lost, "Deleted"));
                return;
            }
            if (!_armed)
            {
                // Still starting: the start fails (and undoes) with this cause.
                var name = g.Connection?.PodName ?? "?";
                _root.Fail(new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
                    $"The shadow pod '{_namespace}/{name}' {why} while {_what} was being set up. Run the command again.", name, "Deleted"));
                return;
            }
            _recovering = true;
            var previous = _recovery;
            _recovery = RecoverAsync(previous, g, why);
        }
    }

    private async Task RecoverAsync(Task previous, Generation lost, string why)
    {
        await Task.Yield(); // never inside the watch callback
        try
        {
            await previous.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_root.Stopping, _recoveryCts.Token);
        var ct = linked.Token;
        var output = _root.Output;
        var pod = lost.Connection?.PodName ?? "?";
        var cause = new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
            $"The shadow pod '{_namespace}/{pod}' {why}.", pod, "Deleted");
        output.Warning($"The shadow pod {_namespace}/{pod} {why}: {_what} gives its traffic back to the original pods and starts a new shadow.");
        _root.ReportReconnecting(cause);
        Exception? last = null;
        try
        {
            await GiveBackAsync(lost, ct).ConfigureAwait(false);
            for (var attempt = 1; attempt <= Attempts; attempt++)
            {
                Generation? next = null;
                try
                {
                    next = await NewGenerationAsync(ct).ConfigureAwait(false);
                    if (!next.Lost && OnRestored is { } onRestored) await onRestored(next.Connection!, ct).ConfigureAwait(false);
                    lock (_gate)
                    {
                        if (!next.Lost) _recovering = false;
                    }
                    if (next.Lost)
                        throw new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
                            $"the new shadow pod '{_namespace}/{next.Connection?.PodName}' was lost too", next.Connection?.PodName ?? "?", "Deleted");
                    output.Warning($"{Capitalized(_what)} resumed with the new shadow pod {_namespace}/{next.Connection!.PodName}.");
                    _root.ReportRecovered();
                    return;
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    last = e;
                    output.Warning($"Could not start a new shadow for {_what} (attempt {attempt} of {Attempts}): {e.Message}");
                    var g = next ?? Volatile.Read(ref _current);
                    if (g is not null)
                    {
                        g.Lost = true;
                        await GiveBackAsync(g, ct).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return; // stopping: the session's undo takes it from here
        }
        catch (Exception e)
        {
            last = e;
        }
        lock (_gate) _recovering = false;
        _root.Fail(new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
            $"The shadow pod '{_namespace}/{pod}' {why} and no new shadow could be started ({last?.Message}); {_what} ended and its traffic went back to the original pods.",
            pod, "Deleted", last));
    }

    /// <summary>Traffic back to the original pods, then everything of the lost shadow undone (and, for a fixed name, gone).</summary>
    private async Task GiveBackAsync(Generation g, CancellationToken cancellationToken)
    {
        try
        {
            if (OnLost is { } onLost) await onLost(cancellationToken).ConfigureAwait(false);
        }
        catch (KtException e)
        {
            // Said, not fatal: a new shadow takes the traffic again, and the session's undo restores it in any case.
            _root.Output.Warning($"Could not give the traffic of {_what} back to the original pods: {e.Message}");
        }
        await g.Scope.UndoAsync(_root.Output, TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        if (g.Connection is { } lost)
            foreach (var o in lost.Shadow.Handle.Objects) _root.RemoveResource(o.Kind.ToString(), $"{o.Namespace}/{o.Name}");
        if (_sameName && g.Connection is { } c) await WaitGoneAsync(c.PodName, cancellationToken).ConfigureAwait(false);
    }

    private async Task WaitGoneAsync(string pod, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (await _client.Pods.TryGetAsync(pod, _namespace, cancellationToken).ConfigureAwait(false) is not null)
        {
            if (DateTime.UtcNow >= deadline)
                throw new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
                    $"The old shadow pod '{_namespace}/{pod}' is still terminating after 90 s; its name cannot be used again yet.", pod, "Deleted");
            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
        }
    }

    private static string Capitalized(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private sealed class Generation
    {
        public UndoScope Scope = null!;
        public ShadowConnection? Connection;
        public volatile bool Lost;
    }
}
