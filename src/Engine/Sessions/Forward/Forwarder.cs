using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Forward;

/// <summary>Starts a Forward session: what Start-KtForward and `kt forward` both call.</summary>
public static class Forwarder
{
    /// <summary>Resolves context and namespace, binds the local ports and returns the session once Running.</summary>
    public static Task<Session> StartAsync(ForwardOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Service);
        // A forward changes nothing in the cluster, so it leaves a crashed session's leftovers there to the commands that
        // make changes (and to clean), as ktctl's forward does: a refused forward must change nothing either.
        options = options with { SkipCleanup = true };
        return ClusterSessions.StartAsync(options, SessionKind.Forward,
            (client, ns) => new ForwardWorker(client, ns, options), output, registry, loader, options.Service, cancellationToken);
    }
}
