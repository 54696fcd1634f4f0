using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// Preview: a new Service backed by local ports (reference/kt-connect.md §2.3 preview). A shadow pod
/// (<c>kt-role=shadow-preview</c>) whose sshd forwards each port to this machine, and a Service <c>name</c> selecting it
/// (ClusterIP, or LoadBalancer with --external), labelled and heart-beaten like kt-connect's so `ktctl clean` and
/// `kt clean` know it. An existing Service of that name is refused before anything is created; everything created is
/// deleted on every exit path.
/// </summary>
public sealed class PreviewWorker(KubeClient client, string ns, PreviewOptions options) : ClusterWorker<PreviewOptions>(client, ns, options)
{
    private protected override async Task RunAsync(SessionContext context, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var journal = _options.JournalOrDefault();
        var sessionId = context.JournalId;
        var key = _namespace + "/" + _options.Name;

        await ThrowIfExistsAsync(key, cancellationToken).ConfigureAwait(false);
        var mappings = PortMapper.MapPreview(_options.Ports);
        await RemoteForwards.CheckLocalPortsAsync(mappings, _options.SkipPortChecking, output, cancellationToken).ConfigureAwait(false);

        ShadowPodSpec? spec = null;
        // One kt-target for every shadow of this session (a lost one is replaced): the preview Service's selector stays valid.
        var target = KtConventions.NewTarget();
        var serviceRef = new KtObjectRef(KtObjectKind.Service, _namespace, _options.Name);
        var serviceCreated = false;
        var guard = new ShadowGuard(context, _client, _namespace, $"the preview Service {key}", sameName: false, async (ctx, generation, ct) =>
        {
            var c = await ShadowSetup.StartAsync(ctx, _client, _options, k => spec = _options.ToShadowSpec(
                KtConventions.PreviewShadowName(_options.Name), _namespace, KtConventions.Roles.ShadowPreview, k) with
            {
                Target = target,
                Config = [new(KtConventions.ConfigService, _options.Name)],
                Ports = [.. mappings.Select(m => ShadowPort.Default(m.TargetPort))],
                ExtraAnnotations = new Dictionary<string, string>(_options.Annotations, StringComparer.Ordinal)
                {
                    [ExchangeHolders.HostAnnotation] = Environment.MachineName,
                    [ExchangeHolders.SessionAnnotation] = sessionId,
                },
            }, ct).ConfigureAwait(false);
            await RemoteForwards.StartAsync(ctx, c.Link, mappings, _options.Name, announce: generation == 0, ct).ConfigureAwait(false);
            // The preview Service is heart-beaten by whichever shadow serves it.
            if (Volatile.Read(ref serviceCreated)) c.Heartbeat.Track(serviceRef);
            return c;
        });
        var connection = await guard.StartAsync(cancellationToken).ConfigureAwait(false);

        var service = BuildService(spec!.SelectorLabels(), mappings, _client.Clock.UtcNow);
        await KtServices.CreateOwnedAsync(context, _client, journal, connection.Heartbeat, service, sessionId, e => Exists(key, e), cancellationToken)
            .ConfigureAwait(false);
        Volatile.Write(ref serviceCreated, true);
        // A lost shadow: the Service has no endpoint until the new one runs (there are no original pods to give it back to).
        guard.Arm();
        output.Verbose($"Service {key} ({_options.ServiceType}) selects the shadow {connection.PodName}.");
        output.Progress("Previewing", "Previewing", 100, completed: true);
    }

    /// <summary>kt-connect's preview Service: ports <c>kt-&lt;remote&gt;</c> remote→remote, selector = the shadow's labels, control-by=kt, heartbeat.</summary>
    internal Service BuildService(IReadOnlyDictionary<string, string> selector, IReadOnlyList<PortMapping> mappings, DateTimeOffset clusterNow) =>
        KtServices.Build(_options.Name, _namespace, _options.ServiceType.ToString(), selector, mappings.Select(m => KtServices.Port(m.TargetPort, m.TargetPort)),
            _options.Labels, clusterNow);

    private async Task ThrowIfExistsAsync(string key, CancellationToken cancellationToken)
    {
        var existing = await _client.Services.TryGetAsync(_options.Name, _namespace, cancellationToken).ConfigureAwait(false);
        if (existing is not null) throw Exists(key, null);
    }

    private static KtException Exists(string key, Exception? inner) =>
        new("PreviewServiceExists", KtErrorCategory.ResourceExists,
            $"Service '{key}' already exists; a preview creates a new Service. Choose another name, or exchange the existing one with kt exchange (Start-KtExchange).",
            inner, key);
}
