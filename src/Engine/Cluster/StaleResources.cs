using System.Globalization;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

public enum CleanupActionKind
{
    /// <summary>Put back the Service's selector from <c>kt-selector</c> and drop the kt annotations.</summary>
    RestoreServiceSelector,

    /// <summary>Scale a Deployment back to the replicas a scale-exchange recorded in <c>kt-config</c>.</summary>
    ScaleDeployment,

    /// <summary>Remove a stale <c>kt-lock</c>.</summary>
    UnlockService,
    DeletePod,
    DeleteDeployment,
    DeleteService,
    DeleteConfigMap,
}

/// <summary>One change <see cref="StaleResources"/> proposes; <see cref="Description"/> is what -WhatIf prints.</summary>
public sealed record CleanupAction(CleanupActionKind Kind, string Namespace, string Name, string Reason)
{
    /// <summary>
    /// RestoreServiceSelector: the selector to put back; null when the Service's selector was set since by someone else
    /// (it has no kt-role), which stays: only our annotations go.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Selector { get; init; }

    /// <summary>ScaleDeployment: the replicas to restore.</summary>
    public int? Replicas { get; init; }

    /// <summary>
    /// The object as it was planned: its uid and (a delete's) <c>kt-last-heart-beat</c>. An object replaced since, or
    /// stamped by a session that joined it, is left (<c>CleanupTargetChanged</c>). Null: by name.
    /// </summary>
    public string? Uid { get; init; }

    /// <inheritdoc cref="Uid"/>
    public string? Heartbeat { get; init; }

    /// <summary>UnlockService: the <c>kt-lock</c> value planned for removal; a lock taken since stays.</summary>
    public string? Lock { get; init; }

    /// <summary>
    /// RestoreServiceSelector: the Service's selector and <c>kt-selector</c> as planned; a Service exchanged again since
    /// (a new kt-target) or changed by hand is left.
    /// </summary>
    public string? PlannedSelector { get; init; }

    public string Description => Kind switch
    {
        CleanupActionKind.RestoreServiceSelector when Selector is null =>
            $"Remove kt-selector from Service {Namespace}/{Name}, keeping the selector someone set since ({Reason})",
        CleanupActionKind.RestoreServiceSelector => $"Restore selector of Service {Namespace}/{Name} to {KtConventions.FormatSelector(Selector)} ({Reason})",
        CleanupActionKind.ScaleDeployment => $"Scale Deployment {Namespace}/{Name} back to {Replicas} replicas ({Reason})",
        CleanupActionKind.UnlockService => $"Remove kt-lock from Service {Namespace}/{Name} ({Reason})",
        _ => $"Delete {Kind.ToString()[6..]} {Namespace}/{Name} ({Reason})",
    };

    public override string ToString() => Description;
}

/// <summary>
/// A cleanup plan: restorations first, then deletions, in the order <see cref="StaleResources.ExecuteAsync"/> applies them.
/// <see cref="Warnings"/> name what needs a person (for example a <c>kt-selector</c> that is not valid JSON).
/// </summary>
public sealed record CleanupPlan(string Namespace, DateTimeOffset ClusterTime, TimeSpan Threshold, IReadOnlyList<CleanupAction> Actions)
{
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>
    /// What the threshold alone would have cleaned but is kept because its owner is alive ("kept: ... owned by a live
    /// session ..."), one line each; `Sessions.Clean.Cleaner` says them as warnings.
    /// </summary>
    public IReadOnlyList<string> Kept { get; init; } = [];

    /// <summary>The Service a `kt recover` plan is for (its liveness is checked again right before the plan is applied).</summary>
    public string? Service { get; init; }
}

/// <summary>
/// The outcome of one action. <see cref="KeptBecause"/>: not done on purpose, since the object changed after it was
/// planned (a session took it up again): neither done nor failed.
/// </summary>
public sealed record CleanupOutcome(CleanupAction Action, bool Done, string? Error)
{
    public string? KeptBecause { get; init; }
}

/// <summary>
/// Finds what crashed KtConnect or ktctl sessions left in a namespace (objects labelled <c>control-by=kt</c> whose
/// <c>kt-last-heart-beat</c> is older than the threshold in cluster time; objects without the annotation are never
/// stale, as in ktctl) and plans their cleanup: Service selectors restored from <c>kt-selector</c>, scale-exchanged
/// Deployments scaled back from <c>kt-config</c>, stale locks removed, orphans deleted. An object whose owner is alive is
/// never touched, whatever the threshold (<see cref="Liveness"/>): a live process of this machine journalled it, or no
/// journal here knows it and its heartbeat is younger than <see cref="Liveness.Floor"/>; a Service is kept while it
/// selects a live kt pod or a live local session changed it. What the threshold alone would have taken is listed in
/// <see cref="CleanupPlan.Kept"/>. Planning changes nothing; <see cref="ExecuteAsync"/> applies a plan.
/// </summary>
public sealed class StaleResources
{
    private readonly KubeClient _client;
    private readonly IChangeJournal _journal;

    public StaleResources(KubeClient client) : this(client, null)
    {
    }

    /// <param name="client">The namespace's API client.</param>
    /// <param name="journal">This machine's journal, for which objects live local processes own (default: the user's journal).</param>
    public StaleResources(KubeClient client, IChangeJournal? journal)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _journal = journal ?? new ChangeJournal();
    }

    public async Task<CleanupPlan> PlanAsync(string ns, TimeSpan? threshold = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(ns);
        var limit = threshold ?? KtConventions.DefaultStaleThreshold;
        var kt = new ListOptions { LabelSelector = KtConventions.ControlBySelector };
        var warnings = new List<string>();
        // What we may not list we cannot clean; say so instead of failing the whole plan (kt-connect's minimal RBAC
        // grants no list on configmaps or deployments, §1.9.10). Null: not listable.
        async Task<List<T>?> List<T>(ResourceClient<T> client, ListOptions? options, string consequence) where T : KubeObject
        {
            try
            {
                return (await client.ListAllAsync(ns, options, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
            }
            catch (KubeForbiddenException e)
            {
                warnings.Add($"Cannot list {client.Resource.Plural} in '{ns}' ({e.ServerMessage}); {consequence}");
                return null;
            }
        }
        // What cannot be seen is taken to be alive: without pods no Service is known to be unserved and no ConfigMap
        // to have lost its shadow; without Deployments no Deployment-made pod is known to have lost its Deployment.
        var listedPods = await List(_client.Pods, null,
            "they were not checked, and no Service selector or ConfigMap is restored or deleted.").ConfigureAwait(false);
        var listedDeployments = await List(_client.Deployments, null,
            "they were not checked, and no Deployment is scaled back and no pod a Deployment made or ConfigMap is deleted.").ConfigureAwait(false);
        var pods = listedPods ?? [];
        var allDeployments = listedDeployments ?? [];
        var deployments = allDeployments.Where(d => d.Metadata.GetLabel(KtConventions.ControlByLabel) == KtConventions.ControlByValue).ToList();
        var configMaps = await List(_client.ConfigMaps, kt, "they were not checked.").ConfigureAwait(false) ?? [];
        var services = await List(_client.Services, null, "they were not checked.").ConfigureAwait(false) ?? [];
        if (!_client.Clock.IsKnown) await _client.GetServerVersionAsync(cancellationToken).ConfigureAwait(false);
        var now = _client.Clock.UtcNow; // cluster time: the server's Date header, never the local clock
        var owners = LocalOwners.Read(_journal, _client.Configuration.Server, ns);
        var kept = new List<string>();

        string Age(KubeObject o) =>
            Liveness.HeartbeatAge(o, now) is { } age
                ? $"last heartbeat {age.TotalMinutes.ToString("0.#", CultureInfo.InvariantCulture)} min ago"
                : "no heartbeat";
        // Stale: the heartbeat is older than the threshold and the owner is not alive. What only the liveness check
        // keeps is said, so a user who asked for threshold 0 sees why a live session's objects stayed.
        bool Stale(KtObjectKind kind, KubeObject o)
        {
            if (Liveness.HeartbeatAge(o, now) is not { } age || age <= limit) return false;
            if (Liveness.LiveBecause(kind, o, owners, now) is not { } why) return true;
            kept.Add($"kept: {kind} {ns}/{o.Metadata.Name} ({Age(o)}): {why}");
            return false;
        }

        var restores = new List<CleanupAction>();
        var deletes = new List<CleanupAction>();
        var restoredServices = new HashSet<string>(StringComparer.Ordinal);
        var scaled = new HashSet<string>(StringComparer.Ordinal);
        var servicesByName = services.ToDictionary(s => s.Metadata.Name ?? "", StringComparer.Ordinal);
        var deploymentsByName = new Dictionary<string, Deployment>(StringComparer.Ordinal);
        foreach (var d in allDeployments) deploymentsByName[d.Metadata.Name ?? ""] = d;

        // Verdicts first: a Deployment's pods live and die with it (their heartbeat is the template's, never refreshed),
        // and a router lives while one of its mesh shadows does.
        var staleDeployments = deployments.Where(d => Stale(KtObjectKind.Deployment, d)).ToList();
        var staleTargets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in staleDeployments)
            if (d.Spec?.Selector?.MatchLabels?.GetValueOrDefault(KtConventions.TargetLabel) is { } t) staleTargets.Add(t);
        var liveTargets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in deployments.Except(staleDeployments))
            if (d.Spec?.Selector?.MatchLabels?.GetValueOrDefault(KtConventions.TargetLabel) is { } t) liveTargets.Add(t);
        var ktPods = pods.Where(p => p.Metadata.GetLabel(KtConventions.ControlByLabel) == KtConventions.ControlByValue).ToList();
        var stalePods = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in ktPods)
        {
            // A Deployment's pod is judged with it and goes with it (its delete propagates): deleted on its own, it would
            // go even when a session joined the Deployment after the plan (a join stamps the Deployment, not its pods).
            if (p.Metadata.OwnerReferences is { Count: > 0 } && (listedDeployments is null
                || p.Metadata.GetLabel(KtConventions.TargetLabel) is { } t && (liveTargets.Contains(t) || staleTargets.Contains(t)))) continue;
            if (Stale(KtObjectKind.Pod, p)) stalePods.Add(p.Metadata.Name ?? "");
        }
        foreach (var router in ktPods.Where(p => p.Metadata.GetLabel(KtConventions.RoleLabel) == KtConventions.Roles.Router && stalePods.Contains(p.Metadata.Name ?? "")))
        {
            var service = KtConventions.ParseConfig(router.Metadata.GetAnnotation(KtConventions.ConfigAnnotation)).GetValueOrDefault(KtConventions.ConfigService);
            var user = service is null ? null : ktPods.FirstOrDefault(p => p.Metadata.GetLabel(KtConventions.RoleLabel) == KtConventions.Roles.ShadowMesh
                && p.Metadata.Name?.StartsWith(service + "-kt-mesh-", StringComparison.Ordinal) == true && !stalePods.Contains(p.Metadata.Name)
                && p.Metadata.DeletionTimestamp is null);
            if (user is null) continue;
            stalePods.Remove(router.Metadata.Name ?? "");
            kept.Add($"kept: Pod {ns}/{router.Metadata.Name} ({Age(router)}): the router still serves the mesh shadow {user.Metadata.Name}");
        }

        // A pod still serving a kt-selected Service: any pod with a kt-role that is not going away.
        bool LivePod(Pod p) =>
            p.Metadata.GetLabel(KtConventions.RoleLabel) is not null && p.Metadata.DeletionTimestamp is null
            && !stalePods.Contains(p.Metadata.Name ?? "")
            && !(p.Metadata.GetLabel(KtConventions.TargetLabel) is { } t && staleTargets.Contains(t));
        // Who keeps a Service's kt changes (selector, lock) alive: a live local session that journalled them, or a live kt pod it selects.
        string? HeldBy(Service svc)
        {
            if (owners.Find(KtObjectKind.Service, svc.Metadata.Name) is { Alive: true } owner) return $"changed by a live session on this machine ({owner})";
            var selector = svc.Spec?.Selector;
            var live = selector is { Count: > 0 } ? pods.FirstOrDefault(p => LivePod(p) && Matches(selector, p.Metadata.Labels)) : null;
            return live is null ? null : $"it selects the live kt pod {live.Metadata.Name}";
        }

        CleanupAction Delete(CleanupActionKind kind, KubeObject o) => new(kind, ns, o.Metadata.Name ?? "", Age(o))
        {
            Uid = o.Metadata.Uid,
            Heartbeat = o.Metadata.GetAnnotation(KtConventions.HeartbeatAnnotation),
        };

        void Recover(KubeObject owner)
        {
            var config = KtConventions.ParseConfig(owner.Metadata.GetAnnotation(KtConventions.ConfigAnnotation));
            var role = owner.Metadata.GetLabel(KtConventions.RoleLabel);
            if (config.TryGetValue(KtConventions.ConfigApp, out var app) && config.TryGetValue(KtConventions.ConfigReplicas, out var r)
                && int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out var replicas)
                && deploymentsByName.TryGetValue(app, out var target) && scaled.Add(app)
                // We scaled it to 0: any other count is someone's since (by hand, or their own autoscaler).
                && (target.Spec?.Replicas ?? 1) == 0 && replicas != 0)
            {
                if (owners.Find(KtObjectKind.Deployment, app) is { Alive: true } live)
                    kept.Add($"kept: Deployment {ns}/{app} scaled as it is: scaled by a live session on this machine ({live})");
                else
                    restores.Add(new CleanupAction(CleanupActionKind.ScaleDeployment, ns, app, $"scale exchange {owner.Metadata.Name} is stale")
                    {
                        Replicas = replicas,
                        Uid = target.Metadata.Uid,
                    });
            }
            if (role is KtConventions.Roles.Router or KtConventions.Roles.ShadowExchange
                && config.TryGetValue(KtConventions.ConfigService, out var svcName)
                && servicesByName.TryGetValue(svcName, out var svc))
            {
                RestoreService(svc, $"{owner.Metadata.Name} is stale");
            }
        }

        void RestoreService(Service svc, string reason)
        {
            var annotation = svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation);
            if (annotation is null || listedPods is null || !restoredServices.Add(svc.Metadata.Name ?? "")) return;
            if (HeldBy(svc) is { } holder)
            {
                kept.Add($"kept: the selector of Service {ns}/{svc.Metadata.Name}: {holder}");
                return;
            }
            try
            {
                var setSince = svc.Spec?.Selector?.ContainsKey(KtConventions.RoleLabel) != true;
                restores.Add(new CleanupAction(CleanupActionKind.RestoreServiceSelector, ns, svc.Metadata.Name ?? "", reason)
                {
                    Selector = setSince ? null : KtConventions.ParseSelector(annotation, svc.Key),
                    Uid = svc.Metadata.Uid,
                    PlannedSelector = SelectorState(svc),
                });
            }
            catch (KtAnnotationInvalidException e)
            {
                warnings.Add(e.Message);
            }
        }

        foreach (var p in ktPods.Where(p => stalePods.Contains(p.Metadata.Name ?? "")))
        {
            Recover(p);
            deletes.Add(Delete(CleanupActionKind.DeletePod, p));
        }
        foreach (var d in staleDeployments)
        {
            Recover(d);
            deletes.Add(Delete(CleanupActionKind.DeleteDeployment, d));
        }

        foreach (var svc in services)
        {
            var name = svc.Metadata.Name ?? "";
            if (svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is not null && !restoredServices.Contains(name))
            {
                var selector = svc.Spec?.Selector;
                var served = selector is { Count: > 0 } && pods.Any(p => LivePod(p) && Matches(selector, p.Metadata.Labels));
                if (!served) RestoreService(svc, "no live kt pod is selected by it");
            }
            if (!restoredServices.Contains(name) && KtConventions.TryParseUnixSeconds(svc.Metadata.GetAnnotation(KtConventions.LockAnnotation), out var locked)
                && now - locked > KtConventions.LockTimeout)
            {
                if (owners.Find(KtObjectKind.Service, name) is { Alive: true } owner)
                    kept.Add($"kept: the kt-lock of Service {ns}/{name}: held by a live session on this machine ({owner})");
                else
                    restores.Add(new CleanupAction(CleanupActionKind.UnlockService, ns, name, "kt-lock older than 180 s")
                    {
                        Lock = svc.Metadata.GetAnnotation(KtConventions.LockAnnotation),
                    });
            }
            if (svc.Metadata.GetLabel(KtConventions.ControlByLabel) == KtConventions.ControlByValue && Stale(KtObjectKind.Service, svc))
            {
                deletes.Add(Delete(CleanupActionKind.DeleteService, svc));
            }
        }
        // A shadow's ConfigMap goes with its shadow: kept while a pod or Deployment of the same name is.
        var keptShadows = ktPods.Where(p => !stalePods.Contains(p.Metadata.Name ?? "")).Select(p => p.Metadata.Name)
            .Concat(deployments.Except(staleDeployments).Select(d => d.Metadata.Name)).OfType<string>().ToHashSet(StringComparer.Ordinal);
        foreach (var cm in configMaps.Where(cm => listedPods is not null && listedDeployments is not null && Stale(KtObjectKind.ConfigMap, cm)))
        {
            if (keptShadows.Contains(cm.Metadata.Name ?? ""))
            {
                kept.Add($"kept: ConfigMap {ns}/{cm.Metadata.Name} ({Age(cm)}): its shadow is kept");
                continue;
            }
            deletes.Add(Delete(CleanupActionKind.DeleteConfigMap, cm));
        }
        return new CleanupPlan(ns, now, limit, [.. restores, .. deletes]) { Warnings = warnings, Kept = kept };
    }

    private static bool Matches(IReadOnlyDictionary<string, string> selector, IReadOnlyDictionary<string, string>? labels) =>
        labels is not null && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    /// <summary>
    /// Applies <paramref name="plan"/> in order. An object already gone counts as done; other failures are recorded per
    /// action and the rest still runs. <paramref name="shouldProcess"/> (ShouldProcess) may skip actions.
    /// </summary>
    public async Task<IReadOnlyList<CleanupOutcome>> ExecuteAsync(CleanupPlan plan, Func<CleanupAction, bool>? shouldProcess = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var outcomes = new List<CleanupOutcome>();
        foreach (var action in plan.Actions)
        {
            if (shouldProcess is not null && !shouldProcess(action)) continue;
            try
            {
                await ApplyAsync(action, cancellationToken).ConfigureAwait(false);
                outcomes.Add(new CleanupOutcome(action, true, null));
            }
            catch (KubeNotFoundException)
            {
                outcomes.Add(new CleanupOutcome(action, true, null));
            }
            catch (KtException e) when (e.ErrorId == TargetChanged)
            {
                outcomes.Add(new CleanupOutcome(action, false, null) { KeptBecause = e.Message });
            }
            catch (KtException e)
            {
                outcomes.Add(new CleanupOutcome(action, false, e.Message));
            }
        }
        return outcomes;
    }

    private async Task ApplyAsync(CleanupAction a, CancellationToken ct)
    {
        switch (a.Kind)
        {
            case CleanupActionKind.RestoreServiceSelector:
                string? moved = null;
                await RestoreServiceAsync(a.Namespace, a.Name, a.Selector, removeLock: true, svc =>
                {
                    if (svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is null) return false; // restored already
                    moved = a.Uid is not null && svc.Metadata.Uid != a.Uid ? "another Service of that name was made since"
                        : a.PlannedSelector is not null && a.PlannedSelector != SelectorState(svc)
                            ? "its selector was changed since (exchanged again, or by hand), and stays" : null;
                    return moved is null;
                }, ct).ConfigureAwait(false);
                if (moved is not null) throw Changed(a, moved);
                break;
            case CleanupActionKind.ScaleDeployment:
                // Only the Deployment planned, and only from the 0 we left: a count set since (by hand, by a new exchange)
                // stays. Patched on the Deployment (kt-connect's RBAC grants patch there), not its scale subresource, whose
                // spec leaves a 0 out (omitempty) and so cannot be tested.
                if (a.Uid is null)
                {
                    // Not planned from what was seen (kt recover names the Service): scaled as asked.
                    await _client.Deployments.SetReplicasAsync(a.Name, a.Replicas ?? 1, a.Namespace, ct).ConfigureAwait(false);
                    break;
                }
                switch (await ScaleBackFromZeroAsync(_client, a.Namespace, a.Name, a.Replicas ?? 1, a.Uid, ct).ConfigureAwait(false))
                {
                    case ScaleBack.Replaced:
                        throw Changed(a, "another Deployment of that name was made since");
                    case ScaleBack.ScaledSince:
                        throw Changed(a, "it was scaled since, and its count stays");
                }
                break;
            case CleanupActionKind.UnlockService:
                var taken = false;
                await _client.Services.UpdateWithRetryAsync(a.Name, s =>
                {
                    var current = s.Metadata.GetAnnotation(KtConventions.LockAnnotation);
                    taken = a.Lock is not null && current is not null && current != a.Lock;
                    return !taken && s.Metadata.Annotations?.Remove(KtConventions.LockAnnotation) == true;
                }, a.Namespace, ct).ConfigureAwait(false);
                if (taken) throw Changed(a, "its kt-lock was taken again, and stays");
                break;
            case CleanupActionKind.DeletePod:
                await DeleteAsPlannedAsync(_client.Pods, a, ct).ConfigureAwait(false);
                break;
            case CleanupActionKind.DeleteDeployment:
                await DeleteAsPlannedAsync(_client.Deployments, a, ct).ConfigureAwait(false);
                break;
            case CleanupActionKind.DeleteService:
                await DeleteAsPlannedAsync(_client.Services, a, ct).ConfigureAwait(false);
                break;
            case CleanupActionKind.DeleteConfigMap:
                await DeleteAsPlannedAsync(_client.ConfigMaps, a, ct).ConfigureAwait(false);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(a));
        }
    }

    /// <summary>
    /// Deletes the object only while it is the one planned (same uid, same heartbeat): a session that joined it since
    /// (a shared shadow's joiner stamps it) or a new object of the same name is left. The delete carries the uid and the
    /// resourceVersion just read, so nothing can slip in between the check and the delete.
    /// </summary>
    private async Task DeleteAsPlannedAsync<T>(ResourceClient<T> client, CleanupAction a, CancellationToken ct) where T : KubeObject
    {
        var options = new DeleteOptions { PropagationPolicy = PropagationPolicy.Background };
        if (a.Uid is null)
        {
            await client.DeleteIfExistsAsync(a.Name, a.Namespace, options, ct).ConfigureAwait(false);
            return;
        }
        for (var attempt = 0; ; attempt++)
        {
            if (await client.TryGetAsync(a.Name, a.Namespace, ct).ConfigureAwait(false) is not { } current) return;
            if (current.Metadata.Uid != a.Uid) throw Changed(a, "another object of that name was made since");
            if (current.Metadata.GetAnnotation(KtConventions.HeartbeatAnnotation) != a.Heartbeat)
                throw Changed(a, "it has a newer heartbeat than planned: a session may use it");
            if (await UserAsync(a, ct).ConfigureAwait(false) is { } user) throw Changed(a, user);
            options.PreconditionUid = a.Uid;
            options.PreconditionResourceVersion = current.Metadata.ResourceVersion;
            try
            {
                await client.DeleteAsync(a.Name, a.Namespace, options, ct).ConfigureAwait(false);
                return;
            }
            catch (KubeConflictException) when (attempt < 5)
            {
                // Changed between our read and the delete (a status update): read again and judge again.
            }
        }
    }

    /// <summary>
    /// What still uses a companion object planned for deletion: a shadow's ConfigMap while the shadow (pod or Deployment of
    /// the same name) is there, a mesh stuntman Service while its router is. A session that joined the shadow or router
    /// after the plan stamped that object only, not its companion.
    /// </summary>
    private async Task<string?> UserAsync(CleanupAction a, CancellationToken ct)
    {
        static bool Present(KubeObject? o) => o is not null && o.Metadata.DeletionTimestamp is null;
        switch (a.Kind)
        {
            case CleanupActionKind.DeleteConfigMap:
                if (Present(await _client.Pods.TryGetAsync(a.Name, a.Namespace, ct).ConfigureAwait(false))
                    || Present(await _client.Deployments.TryGetAsync(a.Name, a.Namespace, ct).ConfigureAwait(false)))
                    return "its shadow is still there";
                return null;
            case CleanupActionKind.DeleteService when a.Name.EndsWith(KtConventions.StuntmanName(""), StringComparison.Ordinal):
                var router = KtConventions.RouterName(a.Name[..^KtConventions.StuntmanName("").Length]);
                return Present(await _client.Pods.TryGetAsync(router, a.Namespace, ct).ConfigureAwait(false)) ? $"its router {router} is still there" : null;
            default:
                return null;
        }
    }

    internal enum ScaleBack { Done, ScaledSince, Replaced }

    /// <summary>
    /// Scales a Deployment that a scale exchange left at 0 back to <paramref name="replicas"/>, only from 0 (any other
    /// count was set since, by hand or by someone's exchange) and, with <paramref name="uid"/>, only that Deployment. A
    /// compare-and-swap on the scale subresource (get, then a JSON patch that tests its resourceVersion): the verbs a
    /// scale exchange itself uses. Already at <paramref name="replicas"/> is done.
    /// </summary>
    internal static async Task<ScaleBack> ScaleBackFromZeroAsync(KubeClient client, string ns, string name, int replicas, string? uid,
        CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var scale = await client.Deployments.GetScaleAsync(name, ns, ct).ConfigureAwait(false);
            if (uid is not null && scale.Metadata.Uid != uid) return ScaleBack.Replaced;
            var now = scale.Spec?.Replicas ?? 0; // a 0 is left out on the wire
            if (now == replicas) return ScaleBack.Done;
            if (now != 0) return ScaleBack.ScaledSince;
            var patch = new JsonPatchBuilder().Test("/metadata/resourceVersion", scale.Metadata.ResourceVersion).Add("/spec/replicas", replicas);
            try
            {
                await client.Deployments.PatchScaleAsync(name, KubePatch.Json(patch), ns, ct).ConfigureAwait(false);
                return ScaleBack.Done;
            }
            catch (KubeApiException e) when (e is KubeInvalidException or KubeConflictException && attempt < 5)
            {
                // Changed between the read and the patch: read again and judge again.
            }
        }
    }

    /// <summary>A Service's selector and <c>kt-selector</c> in one string, to tell whether they changed.</summary>
    private static string SelectorState(Service svc) =>
        KtConventions.FormatSelector(svc.Spec?.Selector ?? new Dictionary<string, string>()) + " " + svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation);

    private const string TargetChanged = "CleanupTargetChanged";

    private static KtException Changed(CleanupAction a, string what, Exception? inner = null) =>
        new(TargetChanged, KtErrorCategory.ResourceBusy, what, inner, a.Name);

    /// <summary>
    /// Restore-KtService / ktctl recover's selector part: spec.selector from <c>kt-selector</c> (or <paramref name="selector"/>),
    /// then <c>kt-selector</c> and <c>kt-lock</c> removed, in one resourceVersion-checked update. Returns false when the
    /// Service carries no <c>kt-selector</c> and no selector was given.
    /// </summary>
    public async Task<bool> RestoreServiceAsync(string ns, string name, IReadOnlyDictionary<string, string>? selector = null,
        CancellationToken cancellationToken = default) => await RestoreServiceAsync(ns, name, selector, removeLock: true, cancellationToken).ConfigureAwait(false);

    /// <summary>As above; with <paramref name="removeLock"/> false a kt-lock stays (its holder is still working under it).</summary>
    public Task<bool> RestoreServiceAsync(string ns, string name, IReadOnlyDictionary<string, string>? selector, bool removeLock,
        CancellationToken cancellationToken) => RestoreServiceAsync(ns, name, selector, removeLock, null, cancellationToken);

    /// <summary>As above; <paramref name="stillAsPlanned"/> sees the Service as read for the update, and false leaves it.</summary>
    private async Task<bool> RestoreServiceAsync(string ns, string name, IReadOnlyDictionary<string, string>? selector, bool removeLock,
        Func<Service, bool>? stillAsPlanned, CancellationToken cancellationToken)
    {
        var changed = false;
        await _client.Services.UpdateWithRetryAsync(name, svc =>
        {
            if (stillAsPlanned is not null && !stillAsPlanned(svc)) return changed = false;
            var annotation = svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation);
            if (annotation is not null && svc.Spec?.Selector?.ContainsKey(KtConventions.RoleLabel) != true)
            {
                // The selector no longer points at a kt pod: someone set their own since (a helm upgrade or kubectl
                // apply keeps our annotation). Theirs stays; only our leftovers go.
                svc.Metadata.Annotations!.Remove(KtConventions.SelectorAnnotation);
                if (removeLock) svc.Metadata.Annotations.Remove(KtConventions.LockAnnotation);
                return changed = true;
            }
            var original = annotation is not null ? KtConventions.ParseSelector(annotation, svc.Key) : selector;
            if (original is null) return changed = false;
            svc.Spec ??= new ServiceSpec();
            svc.Spec.Selector = new Dictionary<string, string>(original, StringComparer.Ordinal);
            svc.Metadata.Annotations?.Remove(KtConventions.SelectorAnnotation);
            if (removeLock) svc.Metadata.Annotations?.Remove(KtConventions.LockAnnotation);
            return changed = true;
        }, ns, cancellationToken).ConfigureAwait(false);
        return changed;
    }
}
