using System.Collections.Concurrent;
using KtConnect.Engine.Kube;

namespace KtConnect.Engine.Cluster;

/// <summary>The kinds of object KtConnect creates or shares.</summary>
public enum KtObjectKind
{
    Pod,
    ConfigMap,
    Deployment,
    Service,
}

/// <summary>A namespaced object reference.</summary>
public sealed record KtObjectRef(KtObjectKind Kind, string Namespace, string Name)
{
    public override string ToString() => $"{Kind} {Namespace}/{Name}";

    /// <summary>A shadow's objects (private or shared): its pod or Deployment, and its ConfigMap of the same name.</summary>
    public static IReadOnlyList<KtObjectRef> Shadow(bool isDeployment, string @namespace, string name) =>
    [
        new(isDeployment ? KtObjectKind.Deployment : KtObjectKind.Pod, @namespace, name),
        new(KtObjectKind.ConfigMap, @namespace, name),
    ];
}

/// <summary>
/// Keeps <c>kt-last-heart-beat</c> fresh on every tracked object: every <see cref="Interval"/> (default 60 s, ktctl
/// uses ~2 min against a 5 min threshold) it merge-patches the annotation with the cluster's time (from the API
/// server's Date header, never the local clock). Each user of a shared object tracks it too, so a shared shadow stays
/// fresh while anyone uses it (unlike ktctl, §1.9.6). Owns its loop; failures are reported and counted, never lost.
/// </summary>
public sealed class Heartbeat : IAsyncDisposable
{
    private readonly KubeClient _client;
    private readonly IKtOutput _output;
    private readonly ConcurrentDictionary<KtObjectRef, byte> _targets = new();
    private readonly CancellationTokenSource _cts = new();
    private Task? _loop;
    private int _beats;
    private int _failures;

    public Heartbeat(KubeClient client, TimeSpan? interval = null, IKtOutput? output = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        Interval = interval ?? DefaultInterval;
        if (Interval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(interval));
        _output = output ?? NullOutput.Instance;
    }

    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(60);

    public TimeSpan Interval { get; }

    /// <summary>Completed rounds.</summary>
    public int Beats => Volatile.Read(ref _beats);

    /// <summary>Patches that failed (all rounds).</summary>
    public int Failures => Volatile.Read(ref _failures);

    /// <summary>The most recent failure, for the session's diagnostics.</summary>
    public Exception? LastError { get; private set; }

    public IReadOnlyCollection<KtObjectRef> Targets => _targets.Keys.ToArray();

    public void Track(KtObjectRef target) => _targets.TryAdd(target ?? throw new ArgumentNullException(nameof(target)), 0);

    public void Track(IEnumerable<KtObjectRef> targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        foreach (var t in targets) Track(t);
    }

    public void Untrack(KtObjectRef target) => _targets.TryRemove(target, out _);

    /// <summary>Starts the loop (idempotent). The first beat comes after one interval; creation already stamped the objects.</summary>
    public Heartbeat Start()
    {
        ObjectDisposedException.ThrowIf(_cts.IsCancellationRequested, this);
        _loop ??= Task.Run(() => RunAsync(_cts.Token));
        return this;
    }

    /// <summary>One round now: stamps every tracked object; returns how many were stamped.</summary>
    public async Task<int> BeatOnceAsync(CancellationToken cancellationToken = default)
    {
        if (!_client.Clock.IsKnown) await _client.GetServerVersionAsync(cancellationToken).ConfigureAwait(false);
        var value = KtConventions.FormatUnixSeconds(_client.Clock.UtcNow);
        var patch = KubePatch.Merge(new System.Text.Json.Nodes.JsonObject
        {
            ["metadata"] = new System.Text.Json.Nodes.JsonObject
            {
                ["annotations"] = new System.Text.Json.Nodes.JsonObject { [KtConventions.HeartbeatAnnotation] = value },
            },
        });
        var stamped = 0;
        foreach (var target in _targets.Keys)
        {
            try
            {
                await PatchAsync(target, patch, cancellationToken).ConfigureAwait(false);
                stamped++;
            }
            catch (KubeNotFoundException e)
            {
                // Gone (deleted by clean or by hand): nothing left to keep alive.
                _targets.TryRemove(target, out _);
                Record(e);
                _output.Warning($"Heartbeat: {target} no longer exists; it is no longer kept alive.");
            }
            catch (KtException e)
            {
                Record(e);
                _output.Warning($"Heartbeat for {target} failed: {e.Message}");
            }
        }
        Interlocked.Increment(ref _beats);
        return stamped;
    }

    private Task PatchAsync(KtObjectRef t, KubePatch patch, CancellationToken ct) => t.Kind switch
    {
        KtObjectKind.Pod => _client.Pods.PatchAsync(t.Name, patch, t.Namespace, ct),
        KtObjectKind.ConfigMap => _client.ConfigMaps.PatchAsync(t.Name, patch, t.Namespace, ct),
        KtObjectKind.Deployment => _client.Deployments.PatchAsync(t.Name, patch, t.Namespace, ct),
        KtObjectKind.Service => _client.Services.PatchAsync(t.Name, patch, t.Namespace, ct),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    private void Record(Exception e)
    {
        Interlocked.Increment(ref _failures);
        LastError = e;
    }

    private async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(Interval);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    await BeatOnceAsync(ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Transport errors and the like: the next round tries again.
                    Record(e);
                    _output.Warning("Heartbeat failed: " + e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_cts.IsCancellationRequested) return;
        await _cts.CancelAsync().ConfigureAwait(false);
        if (_loop is not null) await _loop.ConfigureAwait(false);
        _cts.Dispose();
    }
}
