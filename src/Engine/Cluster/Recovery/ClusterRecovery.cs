using KtConnect.Engine.Kube;

namespace KtConnect.Engine.Cluster.Recovery;

/// <summary>
/// The undo side of the cluster journal: what a crashed KtConnect process on this machine changed in a cluster is
/// undone at once by the next command that reaches the same API server and namespace, or by `kt clean` /
/// Clear-KtResource. Entries of live processes, of other servers and of other namespaces are never touched.
/// </summary>
public static class ClusterRecovery
{
    /// <summary>ErrorId when an entry is offered to a client of another API server.</summary>
    public const string ServerMismatchErrorId = "ClusterJournalServerMismatch";

    /// <summary>The form a server URL is journalled in (scheme, host, port and path, no trailing slash).</summary>
    public static string ServerKey(Uri server)
    {
        ArgumentNullException.ThrowIfNull(server);
        var path = server.AbsolutePath.TrimEnd('/');
        return $"{server.Scheme}://{server.Host}:{server.Port}{path}".ToLowerInvariant();
    }

    /// <summary>True when the journalled server string names <paramref name="server"/>.</summary>
    public static bool SameServer(string journalled, Uri server) =>
        Uri.TryCreate(journalled, UriKind.Absolute, out var uri) && ServerKey(uri) == ServerKey(server);

    /// <summary>
    /// The orphaned cluster entries (owner process gone) for <paramref name="server"/> and, when given, namespace
    /// <paramref name="ns"/>, last change first: what <see cref="UndoOrphanedAsync"/> would undo (a dry run lists them).
    /// </summary>
    public static IReadOnlyList<JournalEntry> Pending(IChangeJournal journal, Uri server, string? ns = null)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(server);
        return journal.ReadAll().Reverse()
            .Where(e => e.Kind == ClusterChange.JournalKind && ChangeJournal.IsOrphaned(e)
                && ClusterChange.FromEntry(e) is { } c && SameServer(c.Server, server) && (ns is null || c.Namespace == ns))
            .ToList();
    }

    /// <summary>
    /// Undoes <see cref="Pending"/> entries through <paramref name="client"/>, last change first, completing each one
    /// undone. <paramref name="shouldProcess"/> may skip entries (-WhatIf, -Confirm); a failed undo is a warning and its
    /// entry stays for the next attempt. Returns the entries undone.
    /// </summary>
    public static async Task<IReadOnlyList<JournalEntry>> UndoOrphanedAsync(IChangeJournal journal, KubeClient client, string? ns = null,
        IKtOutput? output = null, Func<JournalEntry, bool>? shouldProcess = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(client);
        output ??= NullOutput.Instance;
        var handler = new ClusterUndoHandler(client);
        var done = new List<JournalEntry>();
        // An undo that needs a Service's kt-lock (leaving a router) comes before the crashed session's own lock in the
        // pass, last change first: one refused for a held lock is tried once more after the rest, that lock's undo among them.
        var locked = new List<JournalEntry>();
        foreach (var entry in Pending(journal, client.Configuration.Server, ns))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (shouldProcess is not null && !shouldProcess(entry)) continue;
            if (!await TryUndoAsync(entry, lastTry: false).ConfigureAwait(false)) locked.Add(entry);
        }
        foreach (var entry in locked) await TryUndoAsync(entry, lastTry: true).ConfigureAwait(false);
        return done;

        // False when the undo was refused for a held lock and is to be tried again after the rest.
        async Task<bool> TryUndoAsync(JournalEntry entry, bool lastTry)
        {
            try
            {
                output.Verbose($"Undoing what a crashed KtConnect process (pid {entry.OwnerPid}) left: {entry.Description}");
                await handler.UndoAsync(entry, cancellationToken).ConfigureAwait(false);
                await journal.CompleteAsync(entry, cancellationToken).ConfigureAwait(false);
                done.Add(entry);
            }
            catch (KtException e)
            {
                if (e.ErrorId == ServiceLock.LockedErrorId && !lastTry) return false;
                output.Warning($"Could not {entry.Description}: {e.Message}");
            }
            return true;
        }
    }

    /// <summary>
    /// Journals that this session is about to create <paramref name="objects"/> (call before creating them) and returns
    /// the entries, to complete once the objects are deleted again.
    /// </summary>
    public static async Task<IReadOnlyList<JournalEntry>> RecordCreatedAsync(IChangeJournal journal, KubeClient client,
        IEnumerable<KtObjectRef> objects, string? sessionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(objects);
        var server = ServerKey(client.Configuration.Server);
        var entries = new List<JournalEntry>();
        foreach (var o in objects)
        {
            entries.Add(await ClusterJournal.RecordAsync(journal, new ClusterChange
            {
                Server = server,
                Namespace = o.Namespace,
                ObjectKind = o.Kind,
                Name = o.Name,
                Change = ClusterChangeKind.Created,
            }, sessionId, cancellationToken).ConfigureAwait(false));
        }
        return entries;
    }

    /// <summary>
    /// Journals the objects a private shadow is about to be made of (before any is created) and returns the
    /// <see cref="DeferUndo"/> to hand to <see cref="ShadowPods.CreateAsync"/>: it registers the delete through <paramref name="defer"/> (the session's)
    /// and completes the entries only after the delete succeeded. If creation fails before anything was registered,
    /// the entries are completed when the session is undone (nothing was created).
    /// </summary>
    public static async Task<DeferUndo> JournalShadowAsync(DeferUndo defer, string sessionId, KubeClient client, IChangeJournal? journal,
        ShadowPodSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(defer);
        ArgumentNullException.ThrowIfNull(spec);
        journal ??= new ChangeJournal();
        KtObjectRef[] objects =
        [
            new(spec.UseDeployment ? KtObjectKind.Deployment : KtObjectKind.Pod, spec.Namespace, spec.Name),
            new(KtObjectKind.ConfigMap, spec.Namespace, spec.Name),
        ];
        var entries = await RecordCreatedAsync(journal, client, objects, sessionId, cancellationToken).ConfigureAwait(false);
        return CompleteAfterUndo(defer, journal, entries, "the shadow");
    }

    /// <summary>
    /// The <see cref="DeferUndo"/> to hand to whatever makes the changes <paramref name="entries"/> journal: it registers
    /// the undo through <paramref name="defer"/> and completes the entries only after that undo succeeded. If nothing was
    /// registered (the change failed, or its answer never came), <paramref name="otherwise"/> runs when the session is
    /// undone (an undo that finds out for itself whether the change was made), and then the entries are completed.
    /// </summary>
    public static DeferUndo CompleteAfterUndo(DeferUndo defer, IChangeJournal journal, IReadOnlyList<JournalEntry> entries, string what,
        Func<CancellationToken, Task>? otherwise = null)
    {
        ArgumentNullException.ThrowIfNull(defer);
        ArgumentNullException.ThrowIfNull(journal);
        var registered = 0;
        defer("complete the journal of " + what, async ct =>
        {
            if (Volatile.Read(ref registered) != 0) return;
            if (otherwise is not null) await otherwise(ct).ConfigureAwait(false);
            await CompleteAsync(journal, entries, ct).ConfigureAwait(false);
        });
        return (description, undo) =>
        {
            Volatile.Write(ref registered, 1);
            defer(description, async ct =>
            {
                await undo(ct).ConfigureAwait(false);
                await CompleteAsync(journal, entries, ct).ConfigureAwait(false);
            });
        };
    }

    /// <summary>Completes entries whose changes were undone.</summary>
    public static async Task CompleteAsync(IChangeJournal journal, IEnumerable<JournalEntry> entries, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(entries);
        foreach (var e in entries) await journal.CompleteAsync(e, cancellationToken).ConfigureAwait(false);
    }
}
