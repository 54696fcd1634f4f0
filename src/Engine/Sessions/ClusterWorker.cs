using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
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

    /// <summary>
    /// Takes the Service's kt-lock for a set-up, so that two laptops exchanging or meshing it at once are one after the
    /// other and the second sees the first as the holder, and journals it, so a crash's undo removes it. Returns the
    /// release, which the set-up calls when it is done; the undo calls it too, for a set-up that failed or was stopped
    /// half-way.
    /// </summary>
    private protected async Task<Func<CancellationToken, Task>> LockServiceAsync(SessionContext context, ChangeJournal journal, string sessionId,
        string service, string activity, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(journal);
        context.Output.Progress(activity, $"Locking Service {_namespace}/{service}");
        var serviceLock = await ServiceLock.AcquireAsync(_client, _namespace, service, cancellationToken: cancellationToken).ConfigureAwait(false);
        JournalEntry? lockEntry = null;
        async Task UnlockAsync(CancellationToken ct)
        {
            await serviceLock.ReleaseAsync(ct).ConfigureAwait(false);
            if (lockEntry is not null) await journal.CompleteAsync(lockEntry, ct).ConfigureAwait(false);
        }
        context.Defer($"unlock Service {_namespace}/{service}", UnlockAsync);
        // The lock's value (cluster time) is chosen inside the compare-and-swap that takes it, so it is journalled right
        // after; a crash in between leaves a kt-lock that expires by itself after 180 s (and `kt clean` removes).
        lockEntry = await ClusterJournal.RecordAsync(journal, Locked(serviceLock.Value), sessionId, cancellationToken).ConfigureAwait(false);
        // A set-up may wait longer than a lock lives (a shadow waited for up to --podCreationTimeout): the lock is renewed,
        // each new value journalled before it is written and the old entry completed after.
        JournalEntry? nextEntry = null;
        serviceLock.KeepRenewing(
            async (next, ct) => nextEntry = await ClusterJournal.RecordAsync(journal, Locked(next), sessionId, ct).ConfigureAwait(false),
            async (_, written, ct) =>
            {
                var (done, kept) = written ? (lockEntry, nextEntry) : (nextEntry, lockEntry);
                lockEntry = kept;
                nextEntry = null;
                if (done is not null) await journal.CompleteAsync(done, ct).ConfigureAwait(false);
            }, _options.LockRenewInterval);
        return UnlockAsync;

        ClusterChange Locked(string value) => Change(KtObjectKind.Service, service, ClusterChangeKind.Locked) with { LockValue = value };
    }

    /// <summary>A journal record of a change to an object of this session's namespace, on this client's API server.</summary>
    private protected ClusterChange Change(KtObjectKind kind, string name, ClusterChangeKind change) => new()
    {
        Server = ClusterRecovery.ServerKey(_client.Configuration.Server),
        Namespace = _namespace,
        ObjectKind = kind,
        Name = name,
        Change = change,
    };
}
