using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using KtConnect.Engine.Cluster.Recovery;

namespace KtConnect.Engine.Sessions;

/// <summary>Starts a cluster session from options: what every cmdlet and `kt` verb that works in a namespace calls.</summary>
public static class ClusterSessions
{
    /// <summary>
    /// Validates the options (once, here: the façades only name the kind and the worker), resolves the kubeconfig
    /// context and namespace, builds the worker and starts the session, returning it once Running. Bad options, a bad
    /// kubeconfig or context fail here with one typed error before anything is changed; so does
    /// <paramref name="checkMachine"/> (what the kind needs of this machine, e.g. privileges), run after validation. The worker
    /// receives a client the session closes when it ends. Orphaned journalled changes of this server and namespace
    /// (a crashed process's shadow, selectors, replicas, locks) are undone before the worker is built.
    /// </summary>
    public static async Task<Session> StartAsync(ShadowOptions options, SessionKind kind,
        Func<KubeClient, string, ISessionWorker> createWorker, IKtOutput? output = null, SessionRegistry? registry = null,
        KubeConfigLoader? loader = null, string? target = null, CancellationToken cancellationToken = default,
        Action? checkMachine = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(createWorker);
        options.Validate();
        checkMachine?.Invoke();
        var client = Connect(loader, options.Kubeconfig, options.Context, options.Namespace, out var ns);
        var config = client.Configuration;
        ISessionWorker worker;
        try
        {
            // What a crashed KtConnect process on this machine left in this namespace is undone first, at once.
            if (!options.SkipCleanup)
            {
                await ClusterRecovery.UndoOrphanedAsync(options.JournalOrDefault(), client, ns, output, null, cancellationToken)
                    .ConfigureAwait(false);
            }
            worker = new ClientOwner(client, createWorker(client, ns));
        }
        catch
        {
            client.Dispose();
            throw;
        }
        var request = new SessionRequest
        {
            Kind = kind,
            Namespace = ns,
            Context = config.ContextName,
            Target = target ?? (string.IsNullOrEmpty(config.ClusterName) ? config.Server.Host : config.ClusterName),
            Mode = options.ModeName,
        };
        return await (registry ?? SessionRegistry.Default).StartAsync(request, worker, output, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A client for the kubeconfig context (a bad kubeconfig or context fails here with one typed error) and the
    /// namespace to work in: <paramref name="ns"/>, else the context's.
    /// </summary>
    internal static KubeClient Connect(KubeConfigLoader? loader, string? kubeconfig, string? context, string? ns, out string resolvedNamespace)
    {
        var config = (loader ?? new KubeConfigLoader()).CreateClientConfiguration(kubeconfig, context);
        resolvedNamespace = string.IsNullOrEmpty(ns) ? config.Namespace : ns;
        return new KubeClient(config);
    }

    /// <summary>Closes the session's API client after everything else is undone (the first deferred undo runs last).</summary>
    private sealed class ClientOwner(KubeClient client, ISessionWorker inner) : ISessionWorker
    {
        public Task StartAsync(SessionContext context, CancellationToken cancellationToken)
        {
            context.Defer("close the API client", _ => { client.Dispose(); return Task.CompletedTask; });
            return inner.StartAsync(context, cancellationToken);
        }
    }

    /// <summary>
    /// The first step of every worker, before it changes anything: the session shows its mode and the namespace must
    /// exist (<c>NamespaceNotFound</c>). Options were validated by <see cref="StartAsync"/>.
    /// </summary>
    public static Task PrepareAsync(SessionContext context, KubeClient client, string ns, ShadowOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        if (options.ModeName is { } mode) context.SetMode(mode);
        return EnsureNamespaceAsync(client, ns, cancellationToken);
    }

    /// <summary>Refuses an unknown namespace with one clear error before anything is changed.</summary>
    public static async Task EnsureNamespaceAsync(KubeClient client, string ns, CancellationToken cancellationToken)
    {
        try
        {
            await client.Namespaces.GetAsync(ns, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (e.Code == 404)
        {
            throw new KtException("NamespaceNotFound", KtErrorCategory.ObjectNotFound,
                $"Namespace '{ns}' does not exist in context '{client.Configuration.ContextName}'.", e, ns);
        }
        catch (KubeApiException e) when (e.Code == 403)
        {
            // Reading namespaces may be forbidden while working in one is allowed: go on.
        }
    }
}
