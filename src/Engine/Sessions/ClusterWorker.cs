using KtConnect.Engine.Kube;

namespace KtConnect.Engine.Sessions;

/// <summary>
/// What every cluster session's worker shares: the API client the session owns, the namespace it works in, its options,
/// and its first steps: <see cref="CheckRequest"/>, then <see cref="ClusterSessions.PrepareAsync"/> (mode, namespace), then the
/// kind's own <see cref="RunAsync"/>. Connect, Exchange, Mesh, Preview and Forward derive from it.
/// </summary>
public abstract class ClusterWorker<TOptions> : ISessionWorker
    where TOptions : ShadowOptions
{
    private protected readonly KubeClient _client;
    private protected readonly string _namespace;

    /// <summary>The options; exchange and mesh replace a <c>deploy/&lt;name&gt;</c> target by its Service here.</summary>
    private protected TOptions _options;

    protected ClusterWorker(KubeClient client, string ns, TOptions options)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        ArgumentException.ThrowIfNullOrEmpty(ns);
        _namespace = ns;
    }

    public async Task StartAsync(SessionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        CheckRequest();
        await ClusterSessions.PrepareAsync(context, _client, _namespace, _options, cancellationToken).ConfigureAwait(false);
        await RunAsync(context, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>What the kind refuses before the cluster is asked anything (beyond <see cref="ShadowOptions.Validate"/>).</summary>
    private protected virtual void CheckRequest()
    {
    }

    /// <summary>The kind's own start, once the namespace is known to exist; see <see cref="ISessionWorker.StartAsync"/>.</summary>
    private protected abstract Task RunAsync(SessionContext context, CancellationToken cancellationToken);
}
