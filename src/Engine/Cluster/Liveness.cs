using System.Globalization;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>A process on this machine whose journal entries name a kt object, and whether it still runs.</summary>
public sealed record LocalOwner(int Pid, string? SessionId, bool Alive)
{
    public override string ToString() => $"pid {Pid.ToString(CultureInfo.InvariantCulture)}" + (SessionId is null ? "" : $", session {SessionId}");
}

/// <summary>
/// What this machine's journal says about the kt objects of one API server and namespace: which process made or
/// changed each one (Created, SelectorChanged, Scaled, Locked entries) and whether that process is alive (pid plus
/// process identity, <see cref="ChangeJournal.IsOrphaned"/>). An object no entry names is unknown here: it may
/// belong to another machine.
/// </summary>
public sealed class LocalOwners
{
    private readonly Dictionary<(KtObjectKind Kind, string Name), LocalOwner> _owners;

    private LocalOwners(Dictionary<(KtObjectKind, string), LocalOwner> owners) => _owners = owners;

    /// <summary>No journal: every object is unknown.</summary>
    public static LocalOwners None { get; } = new([]);

    /// <summary>Reads <paramref name="journal"/>; <paramref name="isOrphaned"/> defaults to <see cref="ChangeJournal.IsOrphaned"/>.</summary>
    public static LocalOwners Read(IChangeJournal journal, Uri server, string ns, Func<JournalEntry, bool>? isOrphaned = null)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(server);
        ArgumentException.ThrowIfNullOrEmpty(ns);
        isOrphaned ??= ChangeJournal.IsOrphaned;
        var owners = new Dictionary<(KtObjectKind, string), LocalOwner>();
        foreach (var entry in journal.ReadAll())
        {
            if (entry.Kind != ClusterChange.JournalKind || ClusterChange.FromEntry(entry) is not { } change
                || change.Namespace != ns || !ClusterRecovery.SameServer(change.Server, server))
                continue;
            var owner = new LocalOwner(entry.OwnerPid, entry.SessionId, !isOrphaned(entry));
            var key = (change.ObjectKind, change.Name);
            // A live owner wins over a dead one that named the same object earlier.
            if (!owners.TryGetValue(key, out var known) || (!known.Alive && owner.Alive)) owners[key] = owner;
        }
        return new LocalOwners(owners);
    }

    /// <summary>The process that journalled the object (a live one first); null when this machine never did.</summary>
    public LocalOwner? Find(KtObjectKind kind, string? name) =>
        name is not null && _owners.TryGetValue((kind, name), out var owner) ? owner : null;

    /// <summary>True when a live process on this machine journalled the object.</summary>
    public bool IsLive(KtObjectKind kind, string? name) => Find(kind, name)?.Alive == true;
}

/// <summary>
/// When an object's owner counts as alive, for `kt clean`, `kt recover`, Clear-KtResource and Restore-KtService: a live
/// process of this machine journalled it, or its <c>kt-last-heart-beat</c> is younger than <see cref="Floor"/> (what no
/// threshold can go below, so <c>--thresholdInMinus 0</c> means "every stale object", never "every object").
/// </summary>
public static class Liveness
{
    /// <summary>Three heartbeat periods (ours beat every 60 s, ktctl's every 2 min − jitter): younger than this, the owner may be alive.</summary>
    public static readonly TimeSpan Floor = Heartbeat.DefaultInterval * 3;

    /// <summary>The heartbeat age above which an object no journal of this machine knows is stale.</summary>
    public static TimeSpan EffectiveThreshold(TimeSpan threshold) => threshold > Floor ? threshold : Floor;

    /// <summary>The heartbeat's age in cluster time; null without a readable heartbeat.</summary>
    public static TimeSpan? HeartbeatAge(KubeObject o, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(o);
        return KtConventions.TryParseUnixSeconds(o.Metadata.GetAnnotation(KtConventions.HeartbeatAnnotation), out var beat) ? now - beat : null;
    }

    /// <summary>
    /// Why <paramref name="o"/>'s owner counts as alive, or null when it does not: a live local owner, else (when this
    /// machine never owned it) a heartbeat younger than <see cref="Floor"/>. A local owner that died makes it dead at once.
    /// </summary>
    public static string? LiveBecause(KtObjectKind kind, KubeObject o, LocalOwners owners, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(owners);
        var owner = owners.Find(kind, o.Metadata.Name);
        if (owner is { Alive: true }) return $"owned by a live session on this machine ({owner})";
        if (owner is not null) return null;
        return HeartbeatAge(o, now) is { } age && age <= Floor
            ? $"last heartbeat {Seconds(age)} ago, within {Seconds(Floor)} (3 heartbeat periods): its session may be alive on another machine"
            : null;
    }

    /// <summary>The user, host and session a kt object's annotations name (kt-user, ktconnect.io/host, ktconnect.io/session).</summary>
    public static string Who(KubeObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var m = o.Metadata;
        var user = m.GetAnnotation(KtConventions.UserAnnotation) ?? "an unknown user";
        var host = m.GetAnnotation(ExchangeHolders.HostAnnotation);
        var session = m.GetAnnotation(ExchangeHolders.SessionAnnotation);
        return $"user '{user}'" + (host is null ? "" : $" on host '{host}'") + (session is null ? "" : $", session {session}");
    }

    internal static string Seconds(TimeSpan t) => $"{Math.Max(0, t.TotalSeconds).ToString("0", CultureInfo.InvariantCulture)} s";
}
