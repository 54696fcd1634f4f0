using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// The scheduler and the kubelet of a cluster whose pods run on a <see cref="SimNode"/>: binds every new pod to
/// the node, starts it there (<see cref="SimNode.StartPodAsync"/>) and reports what really happens: Pending →
/// Running with its IP, Ready when the node says so, ErrImagePull then ImagePullBackOff (with Events) for an
/// image the node does not know, FailedMount while a volume's ConfigMap/Secret is missing, and the exit of
/// the process (terminated; CrashLoopBackOff for restartPolicy Always, since the node never restarts it; phase
/// Succeeded/Failed otherwise). Deleting the pod stops it on the node. One worker task per pod, all owned
/// here; unexpected failures go to the failure queue given.
/// </summary>
public sealed class NodeKubeletController : IAsyncDisposable
{
    private readonly ObjectStore _store;
    private readonly SimNode _node;
    private readonly string _nodeName;
    private readonly string _hostIp;
    private readonly EventRecorder _events;
    private readonly CancellationTokenSource _cts = new();
    private readonly WatchSubscription _watch;
    private readonly Dictionary<string, PodWorker> _workers = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly ConcurrentQueue<Exception> _failures;
    private readonly Task _loop;

    public NodeKubeletController(ObjectStore store, SimNode node, string nodeName, string hostIp, EventRecorder events,
        ConcurrentQueue<Exception> failures)
    {
        _store = store;
        _node = node;
        _nodeName = nodeName;
        _hostIp = hostIp;
        _events = events;
        _failures = failures;
        // From "now" with the existing pods as ADDED: pods created before the controller started are run too.
        _watch = store.Watch(ResourceTypes.Pods, null, null);
        _loop = RunAsync(_cts.Token);
    }

    /// <summary>How long an image stays in ErrImagePull before the kubelet reports ImagePullBackOff.</summary>
    public TimeSpan ImagePullBackOffDelay { get; init; } = TimeSpan.FromSeconds(1);

    private async Task RunAsync(CancellationToken ct)
    {
        try
        {
            while (await _watch.Events.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (_watch.Events.TryRead(out var e))
                {
                    try
                    {
                        Handle(e);
                    }
                    catch (KubeApiException)
                    {
                        // Changed or deleted meanwhile: a later event carries the current state.
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception e)
        {
            _failures.Enqueue(e);
        }
    }

    private void Handle(WatchEvent e)
    {
        var meta = e.Object["metadata"]!;
        var ns = meta["namespace"]!.GetValue<string>();
        var name = meta["name"]!.GetValue<string>();
        var uid = meta["uid"]!.GetValue<string>();
        var key = ns + "/" + name;
        if (e.Type == WatchEvent.Deleted || meta["deletionTimestamp"] is not null)
        {
            StopWorker(key, uid);
            return;
        }
        if (e.Type is not (WatchEvent.Added or WatchEvent.Modified)) return;
        var nodeName = e.Object["spec"]?["nodeName"]?.GetValue<string>();
        if (nodeName is null)
        {
            // The scheduler: one node, so every pod fits.
            _store.Mutate(ResourceTypes.Pods, ns, name, pod =>
            {
                ObjectDefaults.Obj(pod, "spec")["nodeName"] = _nodeName;
                var status = ObjectDefaults.Obj(pod, "status");
                status["conditions"] = new JsonArray(Condition("PodScheduled", true));
                return pod;
            }, keepStatus: true);
            _events.Record(e.Object, EventRecorder.Normal, "Scheduled", $"Successfully assigned {key} to {_nodeName}", "default-scheduler");
            return;
        }
        if (nodeName != _nodeName) return;
        var phase = e.Object["status"]?["phase"]?.GetValue<string>();
        lock (_gate)
        {
            if (_workers.TryGetValue(key, out var existing) && existing.Uid == uid) return;
            if (phase is "Succeeded" or "Failed") return;
            // A pod of the same name that is still being torn down goes first (its namespace and name on the node).
            var previous = existing?.Task ?? Task.CompletedTask;
            var cts = CancellationTokenSource.CreateLinkedTokenSource(_cts.Token);
            var worker = new PodWorker(uid, cts);
            _workers[key] = worker;
            worker.Task = RunPodAsync(previous, key, ns, name, uid, cts.Token);
        }
    }

    private void StopWorker(string key, string uid)
    {
        lock (_gate)
        {
            if (_workers.TryGetValue(key, out var w) && w.Uid == uid) w.Cancellation.Cancel();
        }
    }

    private async Task RunPodAsync(Task previous, string key, string ns, string name, string uid, CancellationToken ct)
    {
        await Task.Yield();
        var started = false;
        try
        {
            try { await previous.ConfigureAwait(false); } catch (Exception) { /* observed by its own worker */ }
            var state = new PodRunState();
            SimPodInfo? info = null;
            while (info is null)
            {
                ct.ThrowIfCancellationRequested();
                var pod = _store.Get(ResourceTypes.Pods, ns, name);
                if (pod is null || pod["metadata"]?["uid"]?.GetValue<string>() != uid) return;
                state.Images = Containers(pod).Select(c => (c["name"]?.GetValue<string>() ?? "", c["image"]?.GetValue<string>() ?? "")).ToList();
                PodSpecLite spec;
                try
                {
                    spec = PodSpecMapper.Map(pod, _store);
                }
                catch (PodConfigException e)
                {
                    if (state.WaitingReason != (e.Reason == "FailedMount" ? "ContainerCreating" : e.Reason))
                    {
                        state.Waiting(e.Reason == "FailedMount" ? "ContainerCreating" : e.Reason, e.Reason == "FailedMount" ? null : e.Message);
                        WriteStatus(ns, name, uid, state);
                        _events.Record(pod, EventRecorder.Warning, e.Reason == "FailedMount" ? "FailedMount" : "Failed", e.Message, "kubelet");
                    }
                    await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
                    continue;
                }
                var image = spec.Image;
                var container = state.Images.FirstOrDefault().Name;
                var fieldPath = $"spec.containers{{{container}}}";
                try
                {
                    _events.Record(pod, EventRecorder.Normal, "Pulling", $"Pulling image \"{image}\"", "kubelet", fieldPath);
                    info = await _node.StartPodAsync(spec, ct).ConfigureAwait(false);
                    started = true;
                    _events.Record(pod, EventRecorder.Normal, "Pulled", $"Successfully pulled image \"{image}\"", "kubelet", fieldPath);
                    _events.Record(pod, EventRecorder.Normal, "Created", $"Created container {container}", "kubelet", fieldPath);
                    _events.Record(pod, EventRecorder.Normal, "Started", $"Started container {container}", "kubelet", fieldPath);
                }
                catch (SimImagePullException e)
                {
                    var message = $"rpc error: code = Unknown desc = Error response from daemon: pull access denied for {ImageCatalogRepository(image)}, repository does not exist or may require 'docker login': {e.Message}";
                    state.Waiting(SimImagePullException.ReasonErrImagePull, message);
                    WriteStatus(ns, name, uid, state);
                    _events.Record(pod, EventRecorder.Warning, "Failed", $"Failed to pull image \"{image}\": {message}", "kubelet", fieldPath);
                    _events.Record(pod, EventRecorder.Warning, "Failed", "Error: ErrImagePull", "kubelet", fieldPath);
                    await Task.Delay(ImagePullBackOffDelay, ct).ConfigureAwait(false);
                    state.Waiting("ImagePullBackOff", $"Back-off pulling image \"{image}\"");
                    WriteStatus(ns, name, uid, state);
                    _events.Record(pod, EventRecorder.Normal, "BackOff", $"Back-off pulling image \"{image}\"", "kubelet", fieldPath);
                    _events.Record(pod, EventRecorder.Warning, "Failed", "Error: ImagePullBackOff", "kubelet", fieldPath);
                    // The simulated registry never changes: no retries, the pod stays in back-off until deleted.
                    await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
                }
            }

            state.Running(info.Ip, _store.Timestamp(), "kubesim://" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
            WriteStatus(ns, name, uid, state);
            var exit = _node.WaitPodExitAsync(key, ct);
            try
            {
                await _node.WaitPodReadyAsync(key, ct).ConfigureAwait(false);
                state.Ready = true;
                WriteStatus(ns, name, uid, state);
            }
            catch (KtException e) when (e.ErrorId is "SimPodExited" or "SimPodNotReady")
            {
                // Exited before ready: reported below. Never ready: stays not ready until it exits or is deleted.
            }
            var code = await exit.ConfigureAwait(false);
            var current = _store.Get(ResourceTypes.Pods, ns, name);
            if (current is null || current["metadata"]?["deletionTimestamp"] is not null) return;
            state.Exited(code, _store.Timestamp(), current["spec"]?["restartPolicy"]?.GetValue<string>() ?? "Always");
            WriteStatus(ns, name, uid, state);
            if (state.Phase == "Running")
            {
                _events.Record(current, EventRecorder.Warning, "BackOff", "Back-off restarting failed container", "kubelet", $"spec.containers{{{state.Images.FirstOrDefault().Name}}}");
            }
            await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The pod was deleted (or the controller disposed).
        }
        catch (Exception e)
        {
            _failures.Enqueue(new InvalidOperationException($"KubeSim kubelet: pod {key} failed: {e.Message}", e));
        }
        finally
        {
            if (started) await _node.DeletePodAsync(key, CancellationToken.None).ConfigureAwait(false);
            lock (_gate)
            {
                if (_workers.TryGetValue(key, out var w) && w.Uid == uid) _workers.Remove(key);
            }
        }
    }

    private static string ImageCatalogRepository(string image) => Images.ImageCatalog.Repository(image);

    private static IEnumerable<JsonObject> Containers(JsonObject pod) => (pod["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>();

    private void WriteStatus(string ns, string name, string uid, PodRunState state)
    {
        try
        {
            _store.Mutate(ResourceTypes.Pods, ns, name, pod =>
            {
                if (pod["metadata"]?["uid"]?.GetValue<string>() != uid || pod["metadata"]?["deletionTimestamp"] is not null) return pod;
                pod["status"] = BuildStatus(pod, state);
                return pod;
            }, subresource: "status");
        }
        catch (KubeApiException e) when (e.Code == 404)
        {
            // Deleted meanwhile: the worker is being cancelled.
        }
    }

    private JsonObject BuildStatus(JsonObject pod, PodRunState s)
    {
        var old = pod["status"] as JsonObject ?? [];
        var names = s.Images.Select(i => i.Name).ToList();
        var notReady = s.Ready ? "" : $"containers with unready status: [{string.Join(' ', names)}]";
        var conditions = new JsonArray(
            Keep(old, Condition("Initialized", true)),
            Keep(old, Condition("Ready", s.Ready, s.Ready ? null : "ContainersNotReady", s.Ready ? null : notReady)),
            Keep(old, Condition("ContainersReady", s.Ready, s.Ready ? null : "ContainersNotReady", s.Ready ? null : notReady)),
            Keep(old, Condition("PodScheduled", true)));
        var statuses = new JsonArray();
        // The node runs the first container; any further container is reported with the same state.
        foreach (var (cname, image) in s.Images)
        {
            var cs = new JsonObject
            {
                ["name"] = cname,
                ["state"] = s.State(),
                ["lastState"] = s.LastState(),
                ["ready"] = s.Ready,
                ["restartCount"] = 0,
                ["image"] = image,
                ["imageID"] = s.ContainerId is null ? "" : "docker-pullable://" + image + "@sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(image))),
            };
            if (s.ContainerId is not null) cs["containerID"] = s.ContainerId;
            cs["started"] = s.Phase == "Running" && s.ExitCode is null;
            statuses.Add(cs);
        }
        var status = new JsonObject
        {
            ["phase"] = s.Phase,
            ["conditions"] = conditions,
            ["hostIP"] = _hostIp,
        };
        if (s.PodIp is not null)
        {
            status["podIP"] = s.PodIp;
            status["podIPs"] = new JsonArray(new JsonObject { ["ip"] = s.PodIp });
        }
        status["startTime"] = old["startTime"]?.DeepClone() ?? _store.Timestamp();
        status["containerStatuses"] = statuses;
        status["qosClass"] = old["qosClass"]?.DeepClone() ?? ObjectDefaults.QosClass(pod);
        return status;
    }

    // A condition keeps its lastTransitionTime while its status does not change.
    private static JsonObject Keep(JsonObject oldStatus, JsonObject condition)
    {
        var previous = (oldStatus["conditions"] as JsonArray ?? []).OfType<JsonObject>()
            .FirstOrDefault(c => c["type"]?.GetValue<string>() == condition["type"]!.GetValue<string>());
        if (previous is not null && previous["status"]?.GetValue<string>() == condition["status"]!.GetValue<string>())
            condition["lastTransitionTime"] = previous["lastTransitionTime"]?.DeepClone();
        return condition;
    }

    private JsonObject Condition(string type, bool status, string? reason = null, string? message = null)
    {
        var c = new JsonObject
        {
            ["type"] = type,
            ["status"] = status ? "True" : "False",
            ["lastProbeTime"] = null,
            ["lastTransitionTime"] = _store.Timestamp(),
        };
        if (reason is not null) c["reason"] = reason;
        if (message is not null) c["message"] = message;
        return c;
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _watch.Dispose();
        await _loop.ConfigureAwait(false);
        Task[] tasks;
        lock (_gate) tasks = [.. _workers.Values.Select(w => w.Task)];
        await Task.WhenAll(tasks).ConfigureAwait(false);
        lock (_gate)
        {
            foreach (var w in _workers.Values) w.Cancellation.Dispose();
        }
        _cts.Dispose();
    }

    private sealed class PodWorker(string uid, CancellationTokenSource cancellation)
    {
        public string Uid { get; } = uid;

        public CancellationTokenSource Cancellation { get; } = cancellation;

        public Task Task { get; set; } = Task.CompletedTask;
    }

    /// <summary>What the kubelet knows of one pod's (first) container.</summary>
    private sealed class PodRunState
    {
        public List<(string Name, string Image)> Images { get; set; } = [];

        public string Phase { get; private set; } = "Pending";

        public string? WaitingReason { get; private set; }

        private string? _waitingMessage;

        public string? PodIp { get; private set; }

        public string? ContainerId { get; private set; }

        public bool Ready { get; set; }

        private string? _startedAt;

        public int? ExitCode { get; private set; }

        private string? _finishedAt;

        private bool _crashLoop;

        public void Waiting(string reason, string? message)
        {
            WaitingReason = reason;
            _waitingMessage = message;
        }

        public void Running(string ip, string now, string containerId)
        {
            Phase = "Running";
            PodIp = ip;
            ContainerId = containerId;
            _startedAt = now;
            WaitingReason = null;
        }

        public void Exited(int code, string now, string restartPolicy)
        {
            ExitCode = code;
            _finishedAt = now;
            Ready = false;
            if (restartPolicy == "Always" || (restartPolicy == "OnFailure" && code != 0)) _crashLoop = true;
            else Phase = code == 0 ? "Succeeded" : "Failed";
        }

        private JsonObject Terminated() => new()
        {
            ["terminated"] = new JsonObject
            {
                ["exitCode"] = ExitCode,
                ["reason"] = ExitCode == 0 ? "Completed" : "Error",
                ["startedAt"] = _startedAt,
                ["finishedAt"] = _finishedAt,
                ["containerID"] = ContainerId,
            },
        };

        public JsonObject State()
        {
            if (ExitCode is not null)
            {
                return _crashLoop
                    ? new JsonObject { ["waiting"] = new JsonObject { ["reason"] = "CrashLoopBackOff", ["message"] = "back-off 10s restarting failed container (KubeSim never restarts it)" } }
                    : Terminated();
            }
            if (_startedAt is not null) return new JsonObject { ["running"] = new JsonObject { ["startedAt"] = _startedAt } };
            var waiting = new JsonObject { ["reason"] = WaitingReason ?? "ContainerCreating" };
            if (_waitingMessage is not null) waiting["message"] = _waitingMessage;
            return new JsonObject { ["waiting"] = waiting };
        }

        public JsonObject LastState() => ExitCode is not null && _crashLoop ? Terminated() : [];
    }
}
