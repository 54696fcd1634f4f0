using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>Starts a Preview session: what New-KtPreview and `kt preview` both call.</summary>
public static class Previewer
{
    /// <summary>Validates the options, then starts the session and returns it once Running (target: the new Service's name).</summary>
    public static Task<Session> StartAsync(PreviewOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ClusterSessions.StartAsync(options, SessionKind.Preview,
            (client, ns) => new PreviewWorker(client, ns, options), output, registry, loader, options.Name, cancellationToken);
    }
}
