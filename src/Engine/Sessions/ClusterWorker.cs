using KtConnect.Engine.Kube;

namespace KtConnect.Engine.Sessions;

/// <summary>
/// What every cluster session's worker shares: the API client the session owns, the namespace it works in, its options,
/// and its first step (<see cref="PrepareAsync"/>). Connect, Exchange, Mesh, Preview and Forward derive from it.
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

    public abstract Task StartAsync(SessionContext context, CancellationToken cancellationToken);

    /// <summary>The checks every worker makes first, before it changes anything (see <see cref="ClusterSessions.PrepareAsync"/>).</summary>
    private protected Task PrepareAsync(SessionContext context, CancellationToken cancellationToken) =>
        ClusterSessions.PrepareAsync(context, _client, _namespace, _options, cancellationToken);
}
