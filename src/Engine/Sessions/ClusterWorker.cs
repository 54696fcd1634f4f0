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
    /// other and the second sees the first as the holder (<see cref="JournalledLockAsync"/>). Returns the release, which
    /// the set-up calls when it is done; the undo calls it too, for a set-up that failed or was stopped half-way.
    /// </summary>
    private protected async Task<Func<CancellationToken, Task>> LockServiceAsync(SessionContext context, ChangeJournal journal, string sessionId,
        string service, string activity, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Output.Progress(activity, $"Locking Service {_namespace}/{service}");
        return await JournalledLockAsync(journal, sessionId, service, cancellationToken,
            unlock => context.Defer($"unlock Service {_namespace}/{service}", unlock)).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the Service's kt-lock, journalled so that a crash's undo removes it, and renewed while held (a step under it
    /// may wait longer than a lock lives: a shadow or router waited for up to --podCreationTimeout); each renewed value is
    /// journalled before it is written. Returns the release (idempotent), which also completes the entries; with
    /// <paramref name="defer"/> it is handed there as soon as the lock is held.
    /// </summary>
    private protected async Task<Func<CancellationToken, Task>> JournalledLockAsync(ChangeJournal journal, string sessionId, string service,
        CancellationToken cancellationToken, Action<Func<CancellationToken, Task>>? defer = null)
    {
        ArgumentNullException.ThrowIfNull(journal);
        var serviceLock = await ServiceLock.AcquireAsync(_client, _namespace, service, cancellationToken: cancellationToken).ConfigureAwait(false);
        // Every value the Service may hold is journalled until it is known not to be: the first, and each renewal's.
        var entries = new Dictionary<string, JournalEntry>(StringComparer.Ordinal);
        async Task CompleteAsync(Func<string, bool> which, CancellationToken ct)
        {
            List<KeyValuePair<string, JournalEntry>> done;
            lock (entries) done = entries.Where(e => which(e.Key)).ToList();
            foreach (var (key, entry) in done)
            {
                // Forgotten only once completed: one that fails stays for the release to complete.
                await journal.CompleteAsync(entry, ct).ConfigureAwait(false);
                lock (entries) entries.Remove(key);
            }
        }
        async Task UnlockAsync(CancellationToken ct)
        {
            await serviceLock.ReleaseAsync(ct).ConfigureAwait(false);
            await CompleteAsync(_ => true, ct).ConfigureAwait(false);
        }
        defer?.Invoke(UnlockAsync);
        try
        {
            // The lock's value (cluster time) is chosen inside the compare-and-swap that takes it, so it is journalled right
            // after; a crash in between leaves a kt-lock that expires by itself after 180 s (and `kt clean` removes).
            var first = await ClusterJournal.RecordAsync(journal, Locked(serviceLock.Value), sessionId, cancellationToken).ConfigureAwait(false);
            lock (entries) entries[serviceLock.Value] = first;
        }
        catch when (defer is null)
        {
            // Not journalled, so let go now; if even that fails, the lock expires by itself (the error is the journal's).
            try
            {
                await serviceLock.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is KtException or HttpRequestException or IOException or OperationCanceledException)
            {
            }
            throw;
        }
        serviceLock.KeepRenewing(
            async (next, ct) =>
            {
                lock (entries)
                {
                    if (entries.ContainsKey(next)) return; // journalled already (a value tried before, not known to have landed)
                }
                var entry = await ClusterJournal.RecordAsync(journal, Locked(next), sessionId, ct).ConfigureAwait(false);
                lock (entries) entries[next] = entry;
            },
            // Held: the others are done with; not held: that one is; not known: all stay until the release.
            (value, written, ct) => written is { } w ? CompleteAsync(key => w ? key != value : key == value, ct) : Task.CompletedTask,
            _options.LockRenewInterval);
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
