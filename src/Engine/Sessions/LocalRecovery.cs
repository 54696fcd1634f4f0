using KtConnect.Engine.Dns;
using KtConnect.Engine.Net.Redirect;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Engine.Sessions;

/// <summary>
/// Undoes the local changes (routes, firewall tables, resolver configuration, hosts blocks) that a
/// crashed KtConnect process left in the journal. Run at the start of every command that changes the
/// machine, and by `kt clean` / Clear-KtResource -Local.
/// </summary>
public static class LocalRecovery
{
    /// <summary>One undo handler for every kind of change the engine journals.</summary>
    public static IReadOnlyList<IJournalUndoHandler> Handlers(IChangeJournal journal) =>
        [new RouteUndoHandler(), new FirewallUndoHandler(), .. DnsConfigurators.UndoHandlers(journal)];

    /// <summary>
    /// Undoes entries whose owner process is gone (all entries with <paramref name="includeLive"/>), last change
    /// first. <paramref name="shouldProcess"/> lets a caller confirm or preview each one (-WhatIf, --dryRun).
    /// </summary>
    public static Task<IReadOnlyList<JournalEntry>> UndoAsync(ChangeJournal journal, bool includeLive = false,
        Func<JournalEntry, bool>? shouldProcess = null, IKtOutput? output = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(journal);
        output ??= NullOutput.Instance;
        return journal.UndoAsync(Handlers(journal), onlyOrphaned: !includeLive, shouldProcess,
            (entry, e) => output.Warning($"Could not undo {entry.Description}: {e.Message}"), cancellationToken);
    }

    /// <summary>What <see cref="UndoAsync"/> would undo now, last change first.</summary>
    public static IReadOnlyList<JournalEntry> Pending(ChangeJournal journal, bool includeLive = false)
    {
        ArgumentNullException.ThrowIfNull(journal);
        var kinds = Handlers(journal).Select(h => h.Kind).ToHashSet(StringComparer.Ordinal);
        return journal.ReadAll().Reverse()
            .Where(e => kinds.Contains(e.Kind) && (includeLive || ChangeJournal.IsOrphaned(e)))
            .ToList();
    }
}
