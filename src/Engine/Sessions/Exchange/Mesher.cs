using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>Starts a Mesh session: what Start-KtMesh and `kt mesh` both call.</summary>
public static class Mesher
{
    /// <summary>Validates the options, then starts the session and returns it once Running (target: the Service).</summary>
    public static Task<Session> StartAsync(MeshOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ClusterSessions.StartAsync(options, SessionKind.Mesh,
            (client, ns) => new MeshWorker(client, ns, options), output, registry, loader,
            ServiceTargets.Display(options.Service, options.Deployment), cancellationToken);
    }
}
