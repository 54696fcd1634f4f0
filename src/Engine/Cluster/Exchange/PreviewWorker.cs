using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions;

namespace KtConnect.Engine.Cluster.Exchange;

/// <summary>
/// Preview: a new Service backed by local ports (reference/kt-connect.md §2.3 preview). A shadow pod
/// (<c>kt-role=shadow-preview</c>) whose sshd forwards each port to this machine, and a Service <c>name</c> selecting it
/// (ClusterIP, or LoadBalancer with --external), labelled and heart-beaten like kt-connect's so `ktctl clean` and
/// `kt clean` know it. An existing Service of that name is refused before anything is created; everything created is
/// deleted on every exit path.
/// </summary>
public sealed class PreviewWorker : ISessionWorker
{
    private readonly KubeClient _client;
    private readonly PreviewOptions _options;
    private readonly string _namespace;

    public PreviewWorker(KubeClient client, string ns, PreviewOptions options)
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
        var journal = _options.Journal ?? new ChangeJournal();
        var sessionId = context.InstanceId.ToString("N");
        var key = _namespace + "/" + _options.Name;
        context.SetMode(_options.ServiceType.ToString());

        await ClusterSessions.EnsureNamespaceAsync(_client, _namespace, cancellationToken).ConfigureAwait(false);
        await ThrowIfExistsAsync(key, cancellationToken).ConfigureAwait(false);
        var mappings = PortMapper.MapPreview(_options.Ports);
        await RemoteForwards.CheckLocalPortsAsync(mappings, _options.SkipPortChecking, output, cancellationToken).ConfigureAwait(false);

        ShadowPodSpec? spec = null;
        var connection = await ShadowSetup.StartAsync(context, _client, _options, k => spec = _options.ToShadowSpec(
            KtConventions.PreviewShadowName(_options.Name), _namespace, KtConventions.Roles.ShadowPreview, k) with
        {
            Target = KtConventions.NewTarget(),
            Config = [new(KtConventions.ConfigService, _options.Name)],
            Ports = [.. mappings.Select(m => ShadowPort.Default(m.TargetPort))],
            ExtraAnnotations = new Dictionary<string, string>(_options.Annotations, StringComparer.Ordinal)
            {
                [ExchangeHolders.HostAnnotation] = Environment.MachineName,
                [ExchangeHolders.SessionAnnotation] = sessionId,
            },
        }, cancellationToken).ConfigureAwait(false);
        await RemoteForwards.StartAsync(context, connection.Link, mappings, _options.Name, cancellationToken).ConfigureAwait(false);

        var service = BuildService(spec!.SelectorLabels(), mappings, _client.Clock.UtcNow);
        var serviceRef = new KtObjectRef(KtObjectKind.Service, _namespace, _options.Name);
        var entry = (await ClusterRecovery.RecordCreatedAsync(journal, _client, [serviceRef], sessionId, cancellationToken).ConfigureAwait(false))[0];
        var created = false;
        context.Defer($"delete Service {key}", async ct =>
        {
            connection.Heartbeat.Untrack(serviceRef);
            // Only ours: a create that was refused (409) must not delete someone else's Service of that name.
            if (created) await _client.Services.DeleteIfExistsAsync(_options.Name, _namespace, cancellationToken: ct).ConfigureAwait(false);
            await journal.CompleteAsync(entry, ct).ConfigureAwait(false);
        });
        try
        {
            created = true;
            await _client.Services.CreateAsync(service, _namespace, cancellationToken).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (e.Code == 409)
        {
            created = false;
            throw Exists(key, e);
        }
        catch (KubeApiException e) when (e.Code is >= 400 and < 500)
        {
            created = false;
            throw;
        }
        connection.Heartbeat.Track(serviceRef);
        context.AddResource("Service", key, "Created");
        output.Verbose($"Service {key} ({_options.ServiceType}) selects the shadow {connection.PodName}.");
        output.Progress("Previewing", "Previewing", 100, completed: true);
    }

    /// <summary>kt-connect's preview Service: ports <c>kt-&lt;remote&gt;</c> remote→remote, selector = the shadow's labels, control-by=kt, heartbeat.</summary>
    internal Service BuildService(IReadOnlyDictionary<string, string> selector, IReadOnlyList<PortMapping> mappings, DateTimeOffset clusterNow)
    {
        var labels = new Dictionary<string, string>(_options.Labels, StringComparer.Ordinal) { [KtConventions.ControlByLabel] = KtConventions.ControlByValue };
        return new Service
        {
            ApiVersion = "v1",
            Kind = "Service",
            Metadata = new ObjectMeta
            {
                Name = _options.Name,
                Namespace = _namespace,
                Labels = labels,
                Annotations = new Dictionary<string, string>(StringComparer.Ordinal)
                {
                    [KtConventions.HeartbeatAnnotation] = KtConventions.FormatUnixSeconds(clusterNow),
                    [KtConventions.UserAnnotation] = KtConventions.CurrentUser(),
                },
            },
            Spec = new ServiceSpec
            {
                Type = _options.ServiceType.ToString(),
                Selector = new Dictionary<string, string>(selector, StringComparer.Ordinal),
                Ports = [.. mappings.Select(m => new ServicePort
                {
                    Name = KtConventions.ServicePortName(m.TargetPort),
                    Protocol = "TCP",
                    Port = m.TargetPort,
                    TargetPort = m.TargetPort,
                })],
            },
        };
    }

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
