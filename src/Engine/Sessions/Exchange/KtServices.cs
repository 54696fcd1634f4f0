using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>The Services a session creates (preview, a mesh's shadow Service and stuntman): kt-connect's shape and lifetime.</summary>
internal static class KtServices
{
    /// <summary>A Service labelled <c>control-by=kt</c> (plus <paramref name="labels"/>) with kt-connect's heartbeat and user annotations.</summary>
    public static Service Build(string name, string ns, string type, IReadOnlyDictionary<string, string> selector, IEnumerable<ServicePort> ports,
        IReadOnlyDictionary<string, string>? labels, DateTimeOffset clusterNow) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = new ObjectMeta
        {
            Name = name,
            Namespace = ns,
            Labels = new Dictionary<string, string>(labels ?? new Dictionary<string, string>(), StringComparer.Ordinal)
            {
                [KtConventions.ControlByLabel] = KtConventions.ControlByValue,
            },
            Annotations = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                [KtConventions.HeartbeatAnnotation] = KtConventions.FormatUnixSeconds(clusterNow),
                [KtConventions.UserAnnotation] = KtConventions.CurrentUser(),
            },
        },
        Spec = new ServiceSpec
        {
            Type = type,
            Selector = new Dictionary<string, string>(selector, StringComparer.Ordinal),
            Ports = [.. ports],
        },
    };

    /// <summary>Port <c>kt-&lt;port&gt;</c>: port → targetPort over TCP.</summary>
    public static ServicePort Port(int port, int target) => new()
    {
        Name = KtConventions.ServicePortName(port),
        Protocol = "TCP",
        Port = port,
        TargetPort = target,
    };

    /// <summary>
    /// Creates <paramref name="service"/> as this session's own: journalled before the create, deleted on undo (only if
    /// this call created it: a refused create must not delete someone else's Service of that name), kept fresh by
    /// <paramref name="heartbeat"/>. A 409 becomes <paramref name="exists"/>'s error.
    /// </summary>
    public static async Task CreateOwnedAsync(SessionContext context, KubeClient client, IChangeJournal journal, Heartbeat heartbeat, Service service,
        string sessionId, Func<Exception, KtException> exists, CancellationToken cancellationToken)
    {
        var name = service.Metadata.Name!;
        var ns = service.Metadata.Namespace!;
        // Named after the session, so that undoing a crashed session of ours never deletes another laptop's Service that
        // took the name since (ClusterUndoHandler deletes only a kt object of its own session or of none).
        (service.Metadata.Annotations ??= new Dictionary<string, string>(StringComparer.Ordinal))[ExchangeHolders.SessionAnnotation] = sessionId;
        var serviceRef = new KtObjectRef(KtObjectKind.Service, ns, name);
        var entry = (await ClusterRecovery.RecordCreatedAsync(journal, client, [serviceRef], sessionId, cancellationToken).ConfigureAwait(false))[0];
        var created = false;
        context.Defer($"delete Service {ns}/{name}", async ct =>
        {
            heartbeat.Untrack(serviceRef);
            if (created) await client.Services.DeleteIfExistsAsync(name, ns, cancellationToken: ct).ConfigureAwait(false);
            await journal.CompleteAsync(entry, ct).ConfigureAwait(false);
        });
        try
        {
            created = true;
            await client.Services.CreateAsync(service, ns, cancellationToken).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (e.Code == 409)
        {
            created = false;
            throw exists(e);
        }
        catch (KubeApiException e) when (e.Code is >= 400 and < 500)
        {
            created = false;
            throw;
        }
        heartbeat.Track(serviceRef);
        context.AddResource("Service", ns + "/" + name, "Created");
    }
}
