using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>Starts a Connect session from options: what Connect-KtCluster and `kt connect` both call.</summary>
public static class Connector
{
    /// <summary>
    /// Resolves the kubeconfig context and namespace, then starts the session and returns it once Running.
    /// Bad options, missing privileges, a bad kubeconfig, context or namespace fail here with one typed error before
    /// anything is changed.
    /// </summary>
    public static Task<Session> StartAsync(ConnectOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ClusterSessions.StartAsync(options, SessionKind.Connect,
            (client, ns) => new ConnectWorker(client, ns, options), output, registry, loader, cancellationToken: cancellationToken,
            checkMachine: () => { if (ConnectWorker.NeedsPrivileges(options)) ConnectWorker.EnsurePrivileges(options.Mode); });
    }
}
