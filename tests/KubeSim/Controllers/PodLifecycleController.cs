using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// A stand-in for the scheduler and the kubelet until the node runtime exists: every new pod is bound to the node
/// (spec.nodeName) and then reported Running and Ready with a pod IP from 10.244.0.0/16, in two updates as the
/// real components make them. Pods that already have a phase other than Pending are left alone.
/// </summary>
public sealed class PodLifecycleController : IAsyncDisposable
{
    private readonly ObjectStore _store;
    private readonly string _nodeName;
    private readonly string _hostIp;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;
    private readonly WatchSubscription _watch;
    private int _nextIp = 10;

    public PodLifecycleController(ObjectStore store, string nodeName, string hostIp)
    {
        _store = store;
        _nodeName = nodeName;
        _hostIp = hostIp;
        _watch = store.Watch(ResourceTypes.Pods, null, store.ResourceVersion.ToString(CultureInfo.InvariantCulture));
        _loop = RunAsync(_cts.Token);
    }

    private async Task RunAsync(CancellationToken ct)
    {
        try
        {
            while (await _watch.Events.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                while (_watch.Events.TryRead(out var e))
                {
                    if (e.Type is not (WatchEvent.Added or WatchEvent.Modified)) continue;
                    var meta = e.Object["metadata"]!;
                    if (meta["deletionTimestamp"] is not null) continue;
                    var ns = meta["namespace"]!.GetValue<string>();
                    var name = meta["name"]!.GetValue<string>();
                    var phase = e.Object["status"]?["phase"]?.GetValue<string>();
                    try
                    {
                        if (e.Object["spec"]?["nodeName"] is null)
                        {
                            _store.Mutate(ResourceTypes.Pods, ns, name, Bind, keepStatus: true);
                        }
                        else if (phase is null or "Pending" && e.Object["status"]?["podIP"] is null)
                        {
                            _store.Mutate(ResourceTypes.Pods, ns, name, Run, subresource: "status");
                        }
                    }
                    catch (KubeApiException)
                    {
                        // Deleted or changed meanwhile: the next event brings the current state.
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    private JsonObject Bind(JsonObject pod)
    {
        ObjectDefaults.Obj(pod, "spec")["nodeName"] = _nodeName;
        var status = ObjectDefaults.Obj(pod, "status");
        status["conditions"] = new JsonArray(Condition("PodScheduled"));
        return pod;
    }

    private JsonObject Run(JsonObject pod)
    {
        var now = _store.Timestamp();
        var ip = $"10.244.{(_nextIp >> 8) & 255}.{_nextIp & 255}";
        _nextIp = _nextIp >= 65533 ? 10 : _nextIp + 1;
        var containers = new JsonArray();
        foreach (var c in (pod["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>())
        {
            containers.Add(new JsonObject
            {
                ["name"] = c["name"]?.DeepClone(),
                ["state"] = new JsonObject { ["running"] = new JsonObject { ["startedAt"] = now } },
                ["lastState"] = new JsonObject(),
                ["ready"] = true,
                ["restartCount"] = 0,
                ["image"] = c["image"]?.DeepClone(),
                ["imageID"] = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(c["image"]?.GetValue<string>() ?? ""))),
                ["containerID"] = "kubesim://" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
                ["started"] = true,
            });
        }
        var status = new JsonObject
        {
            ["phase"] = "Running",
            ["conditions"] = new JsonArray(Condition("Initialized"), Condition("Ready"), Condition("ContainersReady"), Condition("PodScheduled")),
            ["hostIP"] = _hostIp,
            ["podIP"] = ip,
            ["podIPs"] = new JsonArray(new JsonObject { ["ip"] = ip }),
            ["startTime"] = now,
            ["containerStatuses"] = containers,
            ["qosClass"] = pod["status"]?["qosClass"]?.DeepClone() ?? ObjectDefaults.QosClass(pod),
        };
        pod["status"] = status;
        return pod;
    }

    private JsonObject Condition(string type) => new()
    {
        ["type"] = type,
        ["status"] = "True",
        ["lastProbeTime"] = null,
        ["lastTransitionTime"] = _store.Timestamp(),
    };

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _watch.Dispose();
        await _loop.ConfigureAwait(false);
        _cts.Dispose();
    }
}
