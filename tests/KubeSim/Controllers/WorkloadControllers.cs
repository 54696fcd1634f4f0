using System.Collections.Concurrent;
using System.Threading.Channels;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// Runs the deployment, replicaset and endpoints controllers over a store: every change to Deployments,
/// ReplicaSets, Pods, Services, Endpoints or EndpointSlices triggers a reconcile pass (changes arriving during a
/// pass are coalesced into the next one), then the afterPass callback (the node's Service sync). A pass
/// that makes no change causes no event, so the loop settles. Works with the stand-in
/// <see cref="PodLifecycleController"/> (no root) as well as with a node. Unexpected failures go to
/// the failure queue given; conflicts (a controller raced a client) are retried by the next pass.
/// </summary>
public sealed class WorkloadControllers : IAsyncDisposable
{
    private static readonly ResourceType[] Watched =
    [
        ResourceTypes.Deployments, ResourceTypes.ReplicaSets, ResourceTypes.Pods, ResourceTypes.Services, ResourceTypes.Endpoints,
        ResourceTypes.EndpointSlices,
    ];

    private readonly Channel<bool> _kick = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _cts = new();
    private readonly List<WatchSubscription> _watches = [];
    private readonly List<Task> _tasks = [];
    private readonly DeploymentController _deployments;
    private readonly ReplicaSetController _replicaSets;
    private readonly EndpointsController _endpoints;
    private readonly Func<CancellationToken, Task>? _afterPass;
    private readonly ConcurrentQueue<Exception> _failures;
    private long _passes;

    public WorkloadControllers(ObjectStore store, EventRecorder events, ConcurrentQueue<Exception> failures, Func<CancellationToken, Task>? afterPass = null)
    {
        _deployments = new DeploymentController(store, events);
        _replicaSets = new ReplicaSetController(store, events);
        _endpoints = new EndpointsController(store);
        _afterPass = afterPass;
        _failures = failures;
        var rv = store.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var type in Watched)
        {
            var w = store.Watch(type, null, rv);
            _watches.Add(w);
            _tasks.Add(PumpAsync(w, _cts.Token));
        }
        _kick.Writer.TryWrite(true);
        _tasks.Add(LoopAsync(_cts.Token));
    }

    /// <summary>Reconcile passes completed so far (for tests that wait for the controllers to settle).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    private async Task PumpAsync(WatchSubscription watch, CancellationToken ct)
    {
        try
        {
            while (await watch.Events.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (watch.Events.TryRead(out _))
                {
                }
                _kick.Writer.TryWrite(true);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        try
        {
            while (await _kick.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                _kick.Reader.TryRead(out _);
                try
                {
                    _deployments.Reconcile();
                    _replicaSets.Reconcile();
                    _endpoints.Reconcile();
                }
                catch (KubeApiException e) when (e.Code is 404 or 409 or 403)
                {
                    // Raced a client or a namespace deletion: try again shortly (a short pause so a lasting refusal cannot spin).
                    await Task.Delay(50, ct).ConfigureAwait(false);
                    _kick.Writer.TryWrite(true);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _failures.Enqueue(new InvalidOperationException("KubeSim controllers: " + e.Message, e));
                }
                if (_afterPass is not null)
                {
                    try
                    {
                        await _afterPass(ct).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        _failures.Enqueue(new InvalidOperationException("KubeSim service sync: " + e.Message, e));
                    }
                }
                Interlocked.Increment(ref _passes);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        foreach (var w in _watches) w.Dispose();
        await Task.WhenAll(_tasks).ConfigureAwait(false);
        _cts.Dispose();
    }
}
