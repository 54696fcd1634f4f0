using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>Starts an Exchange session: what Start-KtExchange and `kt exchange` both call.</summary>
public static class Exchanger
{
    /// <summary>
    /// Validates the options, resolves the kubeconfig context and namespace, then starts the session and returns it once
    /// Running (target: the Service). Bad input fails here with one typed error before anything is changed.
    /// </summary>
    public static Task<Session> StartAsync(ExchangeOptions options, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return ClusterSessions.StartAsync(options, SessionKind.Exchange,
            (client, ns) => new ExchangeWorker(client, ns, options), output, registry, loader,
            ServiceTargets.Display(options.Service, options.Deployment), cancellationToken);
    }
}
