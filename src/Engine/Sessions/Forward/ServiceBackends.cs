using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Sessions.Forward;

/// <summary>
/// The ready pods behind a Service, kept current by a watch on the pods its selector matches (works on every API
/// version and needs only pods get/list/watch, which port-forward needs anyway). Connections stick to one pod, like
/// ktctl's and kubectl's forward, and move on when it stops being ready, goes away or refuses a port-forward.
/// </summary>
public sealed class ServiceBackends : IAsyncDisposable
{
    private readonly Watcher<Pod> _watcher;
    private string? _preferred;

    private ServiceBackends(Watcher<Pod> watcher) => _watcher = watcher;

    /// <summary>Starts watching the pods <paramref name="selector"/> matches in <paramref name="ns"/>; returns after the first list.</summary>
    public static async Task<ServiceBackends> StartAsync(KubeClient client, string ns, IReadOnlyDictionary<string, string> selector,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(selector);
        // The callback keeps the watcher from queueing events nobody reads; the cache is all we need.
        var watcher = client.Pods.CreateWatcher(ns, new ListOptions { LabelSelector = LabelSelector.FromLabels(selector).ToString() }, null,
            (_, _) => ValueTask.CompletedTask).Start();
        try
        {
            await Task.WhenAny(watcher.Synced, watcher.Completion).WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!watcher.Synced.IsCompleted) await watcher.Completion.ConfigureAwait(false); // throws the watch's error
            return new ServiceBackends(watcher);
        }
        catch
        {
            await watcher.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Ready pods to try, in order: the pod that served last (while ready), then the others by name.</summary>
    public IReadOnlyList<Pod> Candidates()
    {
        var ready = _watcher.Snapshot.Where(IsReady).OrderBy(p => p.Metadata.Name, StringComparer.Ordinal).ToList();
        var preferred = Volatile.Read(ref _preferred);
        var i = ready.FindIndex(p => p.Metadata.Name == preferred);
        if (i > 0)
        {
            var p = ready[i];
            ready.RemoveAt(i);
            ready.Insert(0, p);
        }
        return ready;
    }

    /// <summary>Makes <paramref name="podName"/> the pod later connections go to first.</summary>
    public void Served(string podName) => Volatile.Write(ref _preferred, podName);

    /// <summary>A port-forward to <paramref name="podName"/> failed: later connections try the others first.</summary>
    public void Failed(string podName) => Interlocked.CompareExchange(ref _preferred, null, podName);

    /// <summary>Running, Ready, not being deleted.</summary>
    public static bool IsReady(Pod pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        return pod.Metadata.DeletionTimestamp is null && pod.Status?.Phase == "Running"
            && pod.Status.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true;
    }

    /// <summary>
    /// The pod port a Service port reaches: targetPort as a number, a named targetPort through the pod's container
    /// ports, the Service port when targetPort is unset; null when the pod has no container port of that name.
    /// </summary>
    public static int? TargetPort(ServicePort port, Pod pod)
    {
        ArgumentNullException.ThrowIfNull(port);
        ArgumentNullException.ThrowIfNull(pod);
        if (port.TargetPort is not { } target) return port.Port;
        if (target.IntValue is { } n) return n;
        var name = target.StringValue;
        return pod.Spec?.Containers.SelectMany(c => c.Ports ?? []).FirstOrDefault(p => p.Name == name)?.ContainerPort;
    }

    public ValueTask DisposeAsync() => _watcher.DisposeAsync();
}
