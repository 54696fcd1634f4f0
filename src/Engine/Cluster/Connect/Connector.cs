using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using KtConnect.Engine.Sessions;

namespace KtConnect.Engine.Cluster.Connect;

/// <summary>Starts a Connect session from options: what Connect-KtCluster and `kt connect` both call.</summary>
public static class Connector
{
    /// <summary>
    /// Resolves the kubeconfig context and namespace, then starts the session and returns it once Running.
    /// A bad kubeconfig, context or namespace fails here with one typed error before anything is changed.
    /// </summary>
    public static async Task<Session> StartAsync(ConnectOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Mode != ConnectMode.Socks) ConnectWorker.EnsurePrivileges(options.Mode);
        var config = (loader ?? new KubeConfigLoader()).CreateClientConfiguration(options.Kubeconfig, options.Context);
        var ns = string.IsNullOrEmpty(options.Namespace) ? config.Namespace : options.Namespace;
        var client = new KubeClient(config);
        var request = new SessionRequest
        {
            Kind = SessionKind.Connect,
            Namespace = ns,
            Context = config.ContextName,
            Target = string.IsNullOrEmpty(config.ClusterName) ? config.Server.Host : config.ClusterName,
            Mode = options.Mode.ToString().ToLowerInvariant(),
        };
        return await (registry ?? SessionRegistry.Default)
            .StartAsync(request, new ConnectWorker(client, ns, options, ownsClient: true), output, cancellationToken)
            .ConfigureAwait(false);
    }
}
