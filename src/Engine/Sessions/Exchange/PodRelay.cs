using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Net;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// Keeps a port of an exchanged Service that was not exposed working (issue 13 item 3): the shadow listens on its
/// targetPort (a remote forward like the exposed ones) and each connection is sent back through the same link
/// (<c>direct-tcpip</c>, dialled by the shadow's sshd) to one of the original pods, chosen round robin among the ready
/// pods the original selector picks at that moment. The bytes pass through this machine: slower than a direct path, but
/// nothing is added to the cluster. No ready pod, or a pod that refuses: that one connection is closed.
/// </summary>
internal sealed class PodRelay
{
    private readonly KubeClient _client;
    private readonly string _namespace;
    private readonly Func<IReadOnlyDictionary<string, string>> _selector;
    private readonly int _port;
    private readonly IKtOutput _output;
    private ShadowLink? _link;
    private int _next;
    private int _warned;
    private long _relayed;

    /// <param name="client">The cluster, to find the pods.</param>
    /// <param name="ns">Their namespace.</param>
    /// <param name="selector">The original pods' selector now (a redeploy may change it).</param>
    /// <param name="port">The targetPort: where the shadow listens and the pods are called.</param>
    /// <param name="output">Where refusals are said.</param>
    public PodRelay(KubeClient client, string ns, Func<IReadOnlyDictionary<string, string>> selector, int port, IKtOutput output)
    {
        _client = client;
        _namespace = ns;
        _selector = selector;
        _port = port;
        _output = output;
    }

    /// <summary>Connections relayed to a pod.</summary>
    public long Relayed => Interlocked.Read(ref _relayed);

    /// <summary>Listens on the port in the shadow behind <paramref name="link"/>; the forward's undo is registered on <paramref name="context"/>.</summary>
    public async Task StartAsync(SessionContext context, ShadowLink link, CancellationToken cancellationToken)
    {
        Volatile.Write(ref _link, link);
        var forward = await link.ForwardRemoteAsync("0.0.0.0", _port, HandleAsync, cancellationToken).ConfigureAwait(false);
        context.Defer($"stop the relay of shadow port {_port}", _ => forward.DisposeAsync().AsTask());
    }

    private async Task HandleAsync(SshChannelStream channel, CancellationToken cancellationToken)
    {
        await using var flow = new SshFlowStream(channel);
        var link = Volatile.Read(ref _link);
        if (link is null) return;
        Stream pod;
        string? ip = null;
        try
        {
            ip = await PickAsync(cancellationToken).ConfigureAwait(false);
            if (ip is null)
            {
                Warn($"A connection to shadow port {_port} came in but no original pod ({KtConventions.SelectorQuery(_selector())}) is ready; it was closed.");
                return;
            }
            pod = new SshFlowStream(await link.OpenAsync(ip, _port, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Warn($"A connection to shadow port {_port} could not be relayed to {ip ?? "an original pod"}:{_port} ({e.Message}); it was closed.");
            return;
        }
        Interlocked.Exchange(ref _warned, 0);
        Interlocked.Increment(ref _relayed);
        await using (pod.ConfigureAwait(false))
        {
            await Socks5Server.RelayAsync(flow, pod, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A ready, not terminating pod of the original selector (round robin), or null.</summary>
    private async Task<string?> PickAsync(CancellationToken cancellationToken)
    {
        var selector = _selector();
        var pods = await _client.Pods.ListAsync(_namespace, new ListOptions { LabelSelector = KtConventions.SelectorQuery(selector) }, cancellationToken)
            .ConfigureAwait(false);
        var ready = pods.Items
            .Where(p => p.Metadata.DeletionTimestamp is null && p.Status?.Phase == "Running" && p.Status.PodIP is { Length: > 0 }
                && p.Metadata.GetLabel(KtConventions.ControlByLabel) != KtConventions.ControlByValue
                && p.Status.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true)
            .Select(p => p.Status!.PodIP!)
            .Order(StringComparer.Ordinal)
            .ToList();
        return ready.Count == 0 ? null : ready[(int)((uint)Interlocked.Increment(ref _next) % (uint)ready.Count)];
    }

    private void Warn(string message)
    {
        // Once per quiet spell: a client retrying in a loop must not flood the console.
        if (Interlocked.Exchange(ref _warned, 1) == 0) _output.Warning(message);
        else _output.Debug(message);
    }
}
