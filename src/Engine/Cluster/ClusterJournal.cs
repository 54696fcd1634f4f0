using System.Globalization;

namespace KtConnect.Engine.Cluster;

/// <summary>What a session did to a cluster object, as recorded in the local journal.</summary>
public enum ClusterChangeKind
{
    /// <summary>The object was created by the session; undo deletes it.</summary>
    Created,

    /// <summary>A Service's selector was replaced; undo puts <see cref="ClusterChange.OriginalSelector"/> back.</summary>
    SelectorChanged,

    /// <summary>A Deployment was scaled; undo scales it back to <see cref="ClusterChange.OriginalReplicas"/>.</summary>
    Scaled,

    /// <summary>A Service was locked with kt-lock; undo removes the lock while it still holds <see cref="ClusterChange.LockValue"/>.</summary>
    Locked,

    /// <summary>
    /// The session counted itself in a shared object: the shared shadow (Pod or Deployment <c>kt-connect-shadow-daemon</c>)
    /// or a mesh router (the Pod named here, route <see cref="ClusterChange.Mark"/>). Undo leaves it as the session would
    /// have, only while the object lists the session (<see cref="KtConventions.MembersAnnotation"/>).
    /// </summary>
    Joined,
}

/// <summary>
/// One change to a cluster object, journalled on this machine before it is made. The cluster's own bookkeeping
/// (heartbeats, kt-selector, kt-config) lets any machine clean up once the heartbeat is stale; the journal lets the
/// next KtConnect command on this machine undo a crashed session's changes at once, without waiting for the
/// threshold, because it knows the owner process is gone.
/// </summary>
public sealed record ClusterChange
{
    /// <summary>The API server's URL: entries are only undone through a client for the same server.</summary>
    public required string Server { get; init; }

    public required string Namespace { get; init; }

    /// <summary>Pod, ConfigMap, Deployment or Service.</summary>
    public required KtObjectKind ObjectKind { get; init; }

    public required string Name { get; init; }

    public required ClusterChangeKind Change { get; init; }

    public IReadOnlyDictionary<string, string>? OriginalSelector { get; init; }

    public int? OriginalReplicas { get; init; }

    public string? LockValue { get; init; }

    /// <summary>SelectorChanged: the <c>kt-target</c> our selector points at, so an undo never takes over someone else's exchange.</summary>
    public string? Target { get; init; }

    /// <summary>Joined: the router's <c>header:version</c> argument of this session.</summary>
    public string? Mark { get; init; }

    /// <summary>The journal entry kind of every cluster change.</summary>
    public const string JournalKind = "kube-object";

    public string Description => Change switch
    {
        ClusterChangeKind.Created => $"delete {ObjectKind} {Namespace}/{Name}",
        ClusterChangeKind.SelectorChanged => $"restore the selector of Service {Namespace}/{Name} to {KtConventions.FormatSelector(OriginalSelector ?? new Dictionary<string, string>())}",
        ClusterChangeKind.Scaled => $"scale Deployment {Namespace}/{Name} back to {OriginalReplicas}",
        ClusterChangeKind.Locked => $"unlock Service {Namespace}/{Name}",
        ClusterChangeKind.Joined => Name == KtConventions.SharedShadowName ? $"leave the shared shadow {Namespace}/{Name}" : $"leave the router {Namespace}/{Name}",
        _ => $"{Change} {ObjectKind} {Namespace}/{Name}",
    };

    public IReadOnlyDictionary<string, string> ToData()
    {
        var data = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["server"] = Server,
            ["namespace"] = Namespace,
            ["objectKind"] = ObjectKind.ToString(),
            ["name"] = Name,
            ["change"] = Change.ToString(),
        };
        if (OriginalSelector is not null) data["selector"] = KtConventions.FormatSelector(OriginalSelector);
        if (OriginalReplicas is { } r) data["replicas"] = r.ToString(CultureInfo.InvariantCulture);
        if (LockValue is not null) data["lock"] = LockValue;
        if (Target is not null) data["target"] = Target;
        if (Mark is not null) data["mark"] = Mark;
        return data;
    }

    /// <summary>Reads an entry written by <see cref="ToData"/>; null when it is not a cluster change or is unreadable.</summary>
    public static ClusterChange? FromEntry(JournalEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var d = entry.Data;
        if (entry.Kind != JournalKind
            || !d.TryGetValue("server", out var server) || !d.TryGetValue("namespace", out var ns) || !d.TryGetValue("name", out var name)
            || !d.TryGetValue("objectKind", out var kind) || !Enum.TryParse<KtObjectKind>(kind, out var objectKind)
            || !d.TryGetValue("change", out var change) || !Enum.TryParse<ClusterChangeKind>(change, out var changeKind))
            return null;
        try
        {
            return new ClusterChange
            {
                Server = server,
                Namespace = ns,
                ObjectKind = objectKind,
                Name = name,
                Change = changeKind,
                OriginalSelector = d.TryGetValue("selector", out var s) ? KtConventions.ParseSelector(s) : null,
                OriginalReplicas = d.TryGetValue("replicas", out var r) ? int.Parse(r, NumberStyles.None, CultureInfo.InvariantCulture) : null,
                LockValue = d.GetValueOrDefault("lock"),
                Target = d.GetValueOrDefault("target"),
                Mark = d.GetValueOrDefault("mark"),
            };
        }
        catch (Exception e) when (e is FormatException or OverflowException or KtException)
        {
            return null;
        }
    }
}

/// <summary>Records cluster changes in the local journal (see <see cref="ClusterChange"/>).</summary>
public static class ClusterJournal
{
    /// <summary>Writes the change durably; call before making it, complete the entry after undoing it.</summary>
    public static Task<JournalEntry> RecordAsync(IChangeJournal journal, ClusterChange change, string? sessionId,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentNullException.ThrowIfNull(change);
        return journal.RecordAsync(ClusterChange.JournalKind, change.ToData(), change.Description, sessionId, cancellationToken);
    }
}
