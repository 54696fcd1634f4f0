using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KtConnect.Engine;

/// <summary>
/// One change to the local machine (a route, a resolver file, a firewall table, a hosts block), written
/// to disk before the change is made so that it can be undone even if this process dies.
/// <see cref="Data"/> holds what the matching <see cref="IJournalUndoHandler"/> needs to undo it.
/// </summary>
public sealed record JournalEntry
{
    public required string Id { get; init; }

    /// <summary>Which undo handler owns the entry, for example <c>route</c>, <c>dns-resolved</c>.</summary>
    public required string Kind { get; init; }

    public string? SessionId { get; init; }

    public required int OwnerPid { get; init; }

    /// <summary>Start time of the owner process, so a reused pid is not mistaken for a live owner.</summary>
    public DateTimeOffset? OwnerStartTime { get; init; }

    /// <summary>
    /// The owner's <see cref="ProcessIdentity"/> where the platform has one (Linux); preferred over
    /// <see cref="OwnerStartTime"/>, which a wall-clock step moves there.
    /// </summary>
    public string? OwnerIdentity { get; init; }

    public required DateTimeOffset Time { get; init; }

    public required IReadOnlyDictionary<string, string> Data { get; init; }

    /// <summary>A one-line description for people (<c>Clear-KtResource -Local -WhatIf</c> prints it).</summary>
    public string Description { get; init; } = "";
}

/// <summary>Knows how to undo one <see cref="JournalEntry.Kind"/> of change.</summary>
public interface IJournalUndoHandler
{
    string Kind { get; }

    /// <summary>Undoes the change. Must be idempotent: a change already undone is not an error.</summary>
    Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken);
}

/// <summary>The journal of local changes. Each area records before it changes and completes after it undoes.</summary>
public interface IChangeJournal
{
    /// <summary>Writes the entry durably; call before making the change.</summary>
    Task<JournalEntry> RecordAsync(string kind, IReadOnlyDictionary<string, string> data, string description,
        string? sessionId = null, CancellationToken cancellationToken = default);

    /// <summary>Removes the entry; call after the change has been undone.</summary>
    Task CompleteAsync(JournalEntry entry, CancellationToken cancellationToken = default);

    /// <summary>Every entry still on disk.</summary>
    IReadOnlyList<JournalEntry> ReadAll();
}

public static class ChangeJournalExtensions
{
    /// <summary>Undoes one recorded change with its handler, then removes its entry: the order every undo follows.</summary>
    public static async Task UndoAndCompleteAsync(this IChangeJournal journal, IJournalUndoHandler handler, JournalEntry entry,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentNullException.ThrowIfNull(entry);
        await handler.UndoAsync(entry, cancellationToken).ConfigureAwait(false);
        await journal.CompleteAsync(entry, cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>
/// File-backed journal: one JSON file per entry in a directory, written to a temporary name and renamed
/// so that a crash never leaves half an entry. Safe to use from several processes.
/// </summary>
public sealed class ChangeJournal : IChangeJournal
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly string _directory;

    public ChangeJournal(string? directory = null)
    {
        _directory = directory ?? KtPaths.JournalDirectory;
    }

    public string Directory => _directory;

    public async Task<JournalEntry> RecordAsync(string kind, IReadOnlyDictionary<string, string> data, string description,
        string? sessionId = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(kind);
        var entry = new JournalEntry
        {
            Id = $"{DateTimeOffset.UtcNow:yyyyMMddHHmmssfff}-{Environment.ProcessId}-{Guid.NewGuid():N}"[..48],
            Kind = kind,
            SessionId = sessionId,
            OwnerPid = Environment.ProcessId,
            OwnerStartTime = ThisProcessStart,
            OwnerIdentity = ProcessIdentity.Current,
            Time = DateTimeOffset.UtcNow,
            Data = new Dictionary<string, string>(data),
            Description = description,
        };
        if (data.TryGetValue(ClaimData, out var claim)) MachineClaims.Claim(claim, sessionId ?? "", entry.Id);
        try
        {
            System.IO.Directory.CreateDirectory(_directory);
            var path = PathOf(entry.Id);
            var tmp = path + ".tmp";
            await using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                await JsonSerializer.SerializeAsync(fs, entry, Json, cancellationToken).ConfigureAwait(false);
                await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            File.Move(tmp, path, overwrite: true);
            return entry;
        }
        catch
        {
            if (claim is not null) MachineClaims.Release(claim, entry.Id);
            throw;
        }
    }

    public Task CompleteAsync(JournalEntry entry, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        File.Delete(PathOf(entry.Id));
        if (entry.Data.TryGetValue(ClaimData, out var claim)) MachineClaims.Release(claim, entry.Id);
        return Task.CompletedTask;
    }

    /// <summary>
    /// The data key of an entry whose change is on an object every KtConnect process of the machine shares (a firewall
    /// table, a device, a resolver file); its value names the object for people ("firewall table ktconnect"). Recording
    /// such an entry claims the object machine-wide (<see cref="MachineClaim"/>) until the entry is completed or this
    /// process ends, and is refused (<c>MachineObjectInUse</c>) while a live session of any home holds it; undoing an
    /// orphaned entry leaves the object alone while another live session holds it.
    /// </summary>
    public const string ClaimData = "claim";

    public IReadOnlyList<JournalEntry> ReadAll()
    {
        if (!System.IO.Directory.Exists(_directory)) return [];
        var list = new List<JournalEntry>();
        foreach (var file in System.IO.Directory.EnumerateFiles(_directory, "*.json"))
        {
            try
            {
                var entry = JsonSerializer.Deserialize<JournalEntry>(File.ReadAllText(file), Json);
                if (entry is not null) list.Add(entry);
            }
            catch (JsonException)
            {
                // A file we cannot read is left for a person to look at; it is never silently deleted.
            }
            catch (IOException)
            {
            }
        }
        return list.OrderBy(e => e.Time).ThenBy(e => e.Id, StringComparer.Ordinal).ToList();
    }

    private static readonly ConcurrentDictionary<string, byte> EndedSessions = new(StringComparer.Ordinal);

    private static readonly DateTimeOffset? ThisProcessStart = CurrentStartTime();

    private static DateTimeOffset? CurrentStartTime()
    {
        using var self = Process.GetCurrentProcess();
        return TryStartTime(self);
    }

    /// <summary>
    /// Says that the session <paramref name="sessionId"/> of this process has ended (its own undo has run): what it
    /// could not undo is then orphaned like a dead process's entries, so a later command in this same process
    /// (Clear-KtResource in the same PowerShell) retries it.
    /// </summary>
    public static void MarkSessionEnded(string sessionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        EndedSessions.TryAdd(sessionId, 0);
    }

    /// <summary>
    /// True when the process that wrote the entry is gone (or its pid now belongs to another process), or when it
    /// is this process and the entry's session has ended here.
    /// </summary>
    public static bool IsOrphaned(JournalEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.OwnerPid == Environment.ProcessId)
        {
            // Our pid, written by an earlier process that had it (a container's pid 1, Windows reusing pids).
            if (entry.OwnerIdentity is { } id && ProcessIdentity.Current is { } me)
            {
                if (id != me) return true;
            }
            else if (entry.OwnerStartTime is { } recorded && ThisProcessStart is { } mine && Math.Abs((recorded - mine).TotalSeconds) > 2)
            {
                return true;
            }
            return entry.SessionId is { } session && EndedSessions.ContainsKey(session);
        }
        if (entry.OwnerIdentity is { } owner && ProcessIdentity.Of(entry.OwnerPid, out var exited) is { } now)
            return exited || now != owner;
        try
        {
            using var p = Process.GetProcessById(entry.OwnerPid);
            if (p.HasExited) return true;
            var started = TryStartTime(p);
            return entry.OwnerStartTime is { } recorded && started is { } then
                && Math.Abs((recorded - then).TotalSeconds) > 2;
        }
        catch (ArgumentException)
        {
            return true;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    /// <summary>
    /// Undoes entries in reverse order of recording (last change first). With <paramref name="onlyOrphaned"/>
    /// only entries whose owner died are touched; live sessions of other processes are left alone.
    /// Returns the entries undone; an entry whose kind has no handler, or whose undo fails, stays on disk.
    /// </summary>
    public async Task<IReadOnlyList<JournalEntry>> UndoAsync(IEnumerable<IJournalUndoHandler> handlers, bool onlyOrphaned = true,
        Func<JournalEntry, bool>? shouldProcess = null, Action<JournalEntry, Exception>? onError = null,
        CancellationToken cancellationToken = default)
    {
        var byKind = handlers.ToDictionary(h => h.Kind, StringComparer.Ordinal);
        var done = new List<JournalEntry>();
        foreach (var entry in ReadAll().Reverse())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (onlyOrphaned && !IsOrphaned(entry)) continue;
            if (!byKind.TryGetValue(entry.Kind, out var handler)) continue;
            if (shouldProcess is not null && !shouldProcess(entry)) continue;
            IDisposable? claim = null;
            try
            {
                // An object another live session has taken since (a KtConnect of another home) is that session's to undo.
                if (entry.Data.TryGetValue(ClaimData, out var key)) claim = MachineClaims.ClaimForUndo(key, entry.Id);
                await this.UndoAndCompleteAsync(handler, entry, cancellationToken).ConfigureAwait(false);
                done.Add(entry);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                onError?.Invoke(entry, e);
            }
            finally
            {
                claim?.Dispose();
            }
        }
        return done;
    }

    private string PathOf(string id) => Path.Combine(_directory, id + ".json");

    private static DateTimeOffset? TryStartTime(Process p)
    {
        try
        {
            return new DateTimeOffset(p.StartTime.ToUniversalTime(), TimeSpan.Zero);
        }
        catch (InvalidOperationException)
        {
            return null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
        catch (NotSupportedException)
        {
            return null;
        }
    }
}
