using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Sessions;

namespace KtConnect.Engine.Cluster.Exchange;

/// <summary>
/// Mesh, manual mode (reference/kt-connect.md §2.3 "mesh manual"): a shadow pod <c>&lt;service&gt;-kt-mesh-&lt;version&gt;</c>
/// carrying all of the Service's selector labels plus <c>kt-role=shadow-mesh</c> and the version mark, whose sshd
/// forwards the Service's target ports to local ports. The Service itself is not changed: it balances across the
/// original pods and the shadow, and a service mesh (an Istio subset on the version label, say) routes marked requests
/// to the shadow alone. The shadow is deleted on every exit path; after a crash its heartbeat goes stale for
/// `kt clean`, and `kt recover` deletes it at once.
/// </summary>
public sealed class MeshWorker : ISessionWorker
{
    private readonly KubeClient _client;
    private readonly MeshOptions _options;
    private readonly string _namespace;

    public MeshWorker(KubeClient client, string ns, MeshOptions options)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(ns);
        _namespace = ns;
    }

    public async Task StartAsync(SessionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        _options.Validate();
        var output = context.Output;
        var sessionId = context.InstanceId.ToString("N");
        var mark = _options.Mark;
        var key = _namespace + "/" + _options.Service;
        context.SetMode(_options.Mode.ToString().ToLowerInvariant());
        context.SetMesh(mark.Key, mark.Version);

        // Checks that change nothing.
        await ClusterSessions.EnsureNamespaceAsync(_client, _namespace, cancellationToken).ConfigureAwait(false);
        var service = await _client.Services.TryGetAsync(_options.Service, _namespace, cancellationToken).ConfigureAwait(false)
            ?? throw new KtException("ServiceNotFound", KtErrorCategory.ObjectNotFound,
                $"Service '{_options.Service}' does not exist in namespace '{_namespace}'.", null, _options.Service);
        if (service.Spec?.Selector is not { Count: > 0 } selector)
            throw new KtException("ServiceHasNoSelector", KtErrorCategory.InvalidOperation,
                $"Service '{key}' has no selector (its endpoints are managed by hand), so a shadow cannot join it.", null, _options.Service);
        if (selector.ContainsKey(mark.Key))
            throw new KtException("InvalidVersionMark", KtErrorCategory.InvalidArgument,
                $"Service '{key}' already selects on label '{mark.Key}', so a shadow with another '{mark.Key}' would not join it; choose another key with --versionMark <key>:<version>.",
                null, mark.ToString());
        // An exchanged Service selects only its exchange shadow: a mesh shadow would never be reached.
        await ExchangeHolders.ThrowIfHeldAsync(_client, service, cancellationToken).ConfigureAwait(false);
        var name = KtConventions.MeshShadowName(_options.Service, mark.Version);
        if (await _client.Pods.TryGetAsync(name, _namespace, cancellationToken).ConfigureAwait(false) is not null
            || await _client.Deployments.TryGetAsync(name, _namespace, cancellationToken).ConfigureAwait(false) is not null)
            throw new KtException("MeshVersionInUse", KtErrorCategory.ResourceExists,
                $"'{_namespace}/{name}' already exists: another session meshes Service '{key}' with version '{mark.Version}'. Choose another version with --versionMark.",
                null, name);
        var pods = await _client.Pods.ListAsync(_namespace, new ListOptions { LabelSelector = ExchangeWorker.FormatSelector(selector) }, cancellationToken)
            .ConfigureAwait(false);
        var mappings = PortMapper.Map(service, _options.Ports, ExchangeWorker.NamedContainerPorts(pods.Items.Select(p => p.Spec)));
        await RemoteForwards.CheckLocalPortsAsync(mappings, _options.SkipPortChecking, output, cancellationToken).ConfigureAwait(false);

        var labels = new Dictionary<string, string>(selector, StringComparer.Ordinal) { [mark.Key] = mark.Version };
        var connection = await ShadowSetup.StartAsync(context, _client, _options, k => _options.ToShadowSpec(name, _namespace, KtConventions.Roles.ShadowMesh, k) with
        {
            RoleLabels = labels,
            Ports = ExchangeWorker.ShadowPorts(service, mappings),
            ExtraAnnotations = new Dictionary<string, string>(_options.Annotations, StringComparer.Ordinal)
            {
                [ExchangeHolders.HostAnnotation] = Environment.MachineName,
                [ExchangeHolders.SessionAnnotation] = sessionId,
            },
        }, cancellationToken).ConfigureAwait(false);
        await RemoteForwards.StartAsync(context, connection.Link, mappings, _options.Service, cancellationToken).ConfigureAwait(false);
        output.Verbose($"Shadow {_namespace}/{connection.PodName} carries {ExchangeWorker.FormatSelector(labels)}: Service {key} now balances across it and " +
            $"the original pods. Route requests to it with your service mesh on label {mark.Key}={mark.Version} (e.g. an Istio subset).");
        output.Progress("Meshing", "Meshed", 100, completed: true);
    }
}
