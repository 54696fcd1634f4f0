using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>Starts a Connect session from options: what Connect-KtCluster and `kt connect` both call.</summary>
public static class Connector
{
    /// <summary>
    /// Resolves the kubeconfig context and namespace, then starts the session and returns it once Running.
    /// A bad kubeconfig, context or namespace fails here with one typed error before anything is changed.
    /// </summary>
    public static Task<Session> StartAsync(ConnectOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.Mode != ConnectMode.Socks) ConnectWorker.EnsurePrivileges(options.Mode);
        return ClusterSessions.StartAsync(options, SessionKind.Connect, options.Mode.ToString().ToLowerInvariant(),
            (client, ns) => new ConnectWorker(client, ns, options), output, registry, loader,
            cancellationToken: cancellationToken);
    }
}
