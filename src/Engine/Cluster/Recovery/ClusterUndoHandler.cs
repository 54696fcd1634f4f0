using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster.Recovery;

/// <summary>
/// Undoes journalled cluster changes (<see cref="ClusterChange"/>) through a client for the same API server. Every
/// undo is idempotent: an object already gone, a selector already restored, a lock already released count as done.
/// An entry for another server is refused with <see cref="ClusterRecovery.ServerMismatchErrorId"/>, so the journal
/// keeps it for a client that can reach its cluster.
/// </summary>
public sealed class ClusterUndoHandler : IJournalUndoHandler
{
    private readonly KubeClient _client;

    public ClusterUndoHandler(KubeClient client) => _client = client ?? throw new ArgumentNullException(nameof(client));

    public string Kind => ClusterChange.JournalKind;

    public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var change = ClusterChange.FromEntry(entry)
            ?? throw new KtException("ClusterJournalEntryInvalid", KtErrorCategory.InvalidData,
                $"Journal entry {entry.Id} is not a readable cluster change; it is left for a person to look at.", target: entry.Id);
        if (!ClusterRecovery.SameServer(change.Server, _client.Configuration.Server))
            throw new KtException(ClusterRecovery.ServerMismatchErrorId, KtErrorCategory.InvalidOperation,
                $"Journal entry {entry.Id} belongs to API server {change.Server}, not {_client.Configuration.Server}; it is left.", target: entry.Id);
        return UndoAsync(change, entry.SessionId, cancellationToken);
    }

    /// <summary>Undoes one change (see the class summary).</summary>
    public Task UndoAsync(ClusterChange change, CancellationToken cancellationToken) => UndoAsync(change, null, cancellationToken);

    /// <summary>
    /// Undoes one change (see the class summary). With <paramref name="sessionId"/> (the journal entry's), an object
    /// of that name made by another session since (its <c>ktconnect.io/session</c> says so) is not deleted: the name
    /// was freed and taken again, and the object may belong to a live session.
    /// </summary>
    public async Task UndoAsync(ClusterChange change, string? sessionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        try
        {
            switch (change.Change)
            {
                case ClusterChangeKind.Created:
                    await DeleteAsync(change, sessionId, cancellationToken).ConfigureAwait(false);
                    break;
                case ClusterChangeKind.SelectorChanged:
                    await RestoreSelectorAsync(change, cancellationToken).ConfigureAwait(false);
                    break;
                case ClusterChangeKind.Scaled:
                    await ScaleBackAsync(change, cancellationToken).ConfigureAwait(false);
                    break;
                case ClusterChangeKind.Locked:
                    await UnlockAsync(change, cancellationToken).ConfigureAwait(false);
                    break;
                case ClusterChangeKind.Joined:
                    await LeaveAsync(change, sessionId, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    throw new KtException("ClusterJournalEntryInvalid", KtErrorCategory.InvalidData,
                        $"Unknown cluster change {change.Change} on {change.ObjectKind} {change.Namespace}/{change.Name}.", target: change.Name);
            }
        }
        catch (KubeNotFoundException)
        {
            // The object is gone: nothing of ours is left on it.
        }
    }

    private Task DeleteAsync(ClusterChange c, string? sessionId, CancellationToken ct) => c.ObjectKind switch
    {
        KtObjectKind.Pod => DeleteIfOursAsync(_client.Pods, c, sessionId, ct),
        KtObjectKind.ConfigMap => DeleteIfOursAsync(_client.ConfigMaps, c, sessionId, ct),
        KtObjectKind.Deployment => DeleteIfOursAsync(_client.Deployments, c, sessionId, ct),
        KtObjectKind.Service => DeleteIfOursAsync(_client.Services, c, sessionId, ct),
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    /// <summary>
    /// Deletes the object only while it is a kt object (<c>control-by=kt</c>) and, when it names its session, that
    /// session is <paramref name="sessionId"/>: by the time a crashed session is undone someone may have deleted ours
    /// and made their own of that name, kt or not. The delete is bound to the uid that was checked.
    /// </summary>
    private static async Task DeleteIfOursAsync<T>(ResourceClient<T> client, ClusterChange c, string? sessionId, CancellationToken ct) where T : KubeObject
    {
        var current = await client.TryGetAsync(c.Name, c.Namespace, ct).ConfigureAwait(false);
        if (current is null || current.Metadata.GetLabel(KtConventions.ControlByLabel) != KtConventions.ControlByValue) return;
        if (sessionId is not null && current.Metadata.GetAnnotation(ExchangeHolders.SessionAnnotation) is { } owner && owner != sessionId) return;
        await client.DeleteIfExistsAsync(c.Name, c.Namespace, new DeleteOptions
        {
            PropagationPolicy = PropagationPolicy.Background,
            PreconditionUid = current.Metadata.Uid,
        }, ct).ConfigureAwait(false);
    }

    private Task RestoreSelectorAsync(ClusterChange c, CancellationToken ct) =>
        _client.Services.UpdateWithRetryAsync(c.Name, svc =>
        {
            // Without kt-selector the Service was never changed, or was restored already: leave it as it is, it may
            // belong to someone else by now.
            var annotation = svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation);
            if (annotation is null) return false;
            // Pointing at another kt pod than ours (another user's exchange since): theirs to undo.
            var selector = svc.Spec?.Selector;
            if (c.Target is not null && selector?.ContainsKey(KtConventions.RoleLabel) == true
                && selector.GetValueOrDefault(KtConventions.TargetLabel) != c.Target) return false;
            IReadOnlyDictionary<string, string>? original;
            try
            {
                original = KtConventions.ParseSelector(annotation, svc.Key);
            }
            catch (KtAnnotationInvalidException)
            {
                original = c.OriginalSelector;
            }
            if (original is null) return false;
            svc.Spec ??= new Kube.Models.ServiceSpec();
            svc.Spec.Selector = new Dictionary<string, string>(original, StringComparer.Ordinal);
            svc.Metadata.Annotations?.Remove(KtConventions.SelectorAnnotation);
            svc.Metadata.Annotations?.Remove(KtConventions.LockAnnotation);
            return true;
        }, c.Namespace, ct);

    private async Task ScaleBackAsync(ClusterChange c, CancellationToken ct)
    {
        // We scaled it to 0: any other count is someone's since (scaled back by hand, or by their own tool).
        if (c.OriginalReplicas is { } replicas)
            await StaleResources.ScaleBackFromZeroAsync(_client, c.Namespace, c.Name, replicas, uid: null, ct).ConfigureAwait(false);
    }

    /// <summary>Takes the session out of what it joined: the shared shadow (its count), or a mesh router (<see cref="MeshRouter.LeaveAsync"/>).</summary>
    private async Task LeaveAsync(ClusterChange c, string? sessionId, CancellationToken ct)
    {
        // Membership is by session: an entry without one names nobody to take out.
        if (sessionId is null) return;
        if (c.Name == KtConventions.SharedShadowName)
        {
            await new ShadowPods(_client).ReleaseSharedAsync(c.Namespace, c.Name, c.ObjectKind == KtObjectKind.Deployment, ct, sessionId).ConfigureAwait(false);
            return;
        }
        // A router is named after its Service; LeaveAsync finds out whether it is there and lists the session.
        var suffix = KtConventions.RouterName("");
        if (c.Mark is null || !c.Name.EndsWith(suffix, StringComparison.Ordinal)) return;
        await MeshRouter.LeaveAsync(_client, c.Namespace, c.Name[..^suffix.Length], sessionId, c.Mark, lockHeld: false, restoreIfGone: false, warn: null, ct)
            .ConfigureAwait(false);
    }

    private Task UnlockAsync(ClusterChange c, CancellationToken ct) =>
        // Only our own lock: a different value is someone else's, taken after ours expired.
        _client.Services.UpdateWithRetryAsync(c.Name, svc =>
            svc.Metadata.GetAnnotation(KtConventions.LockAnnotation) is { } held
            && (c.LockValue is null || held == c.LockValue)
            && svc.Metadata.Annotations!.Remove(KtConventions.LockAnnotation), c.Namespace, ct);
}
