using System.Globalization;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster.Recovery;

/// <summary>`kt recover` / Restore-KtService refused: a live session holds the Service (ErrorId <c>RecoverServiceInUse</c>).</summary>
public sealed class RecoverServiceInUseException(string ns, string service, string holder)
    : KtException(ServiceRecovery.ServiceInUseErrorId, KtErrorCategory.ResourceBusy,
        $"Service '{ns}/{service}' is in use by a live session: {holder}. Stop that session (it gives the Service back itself); " +
        "recover is for sessions that are gone. Nothing was changed.", null, service)
{
    /// <summary>Who holds the Service, as the message says it.</summary>
    public string Holder { get; } = holder;
}

/// <summary>
/// ktctl recover: puts a Service that an exchange (or a crash during one) changed back to how it was, now, without
/// waiting for a heartbeat threshold: selector from <c>kt-selector</c> (kt-selector and kt-lock removed), else a kt-lock
/// removed; the exchange and manual-mesh shadows the current selector picks deleted, and a scale exchange's Deployment
/// scaled back from the shadow's <c>kt-config</c>. Unlike ktctl it refuses a Service a live session holds
/// (<see cref="RecoverServiceInUseException"/>, <c>RecoverServiceInUse</c>, naming the holder, nothing changed): a live
/// local session journalled a change of it, a kt-lock on it is younger than 180 s, or a shadow it selects (for an auto
/// mesh: a mesh shadow of it) is alive by <see cref="Liveness"/>. The check is made when planning and again right before
/// the plan is applied. Planning changes nothing; <see cref="StaleResources.ExecuteAsync"/> applies the plan.
/// </summary>
public static class ServiceRecovery
{
    public const string ServiceNotFoundErrorId = "RecoverServiceNotFound";

    /// <summary>ErrorId when a live session holds the Service.</summary>
    public const string ServiceInUseErrorId = "RecoverServiceInUse";

    public static Task<CleanupPlan> PlanAsync(KubeClient client, string ns, string name, CancellationToken cancellationToken = default) =>
        PlanAsync(client, ns, name, null, cancellationToken);

    /// <summary>As above, with this machine's journal given (null: the user's journal).</summary>
    public static async Task<CleanupPlan> PlanAsync(KubeClient client, string ns, string name, IChangeJournal? journal, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(ns);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var svc = await GetServiceAsync(client, ns, name, cancellationToken).ConfigureAwait(false);
        await ThrowIfInUseAsync(client, ns, svc, journal, cancellationToken).ConfigureAwait(false);
        var actions = new List<CleanupAction>();
        var deletes = new List<CleanupAction>();
        var warnings = new List<string>();
        var annotation = svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation);
        if (annotation is not null)
        {
            try
            {
                actions.Add(new CleanupAction(CleanupActionKind.RestoreServiceSelector, ns, name, "recover requested")
                {
                    Selector = KtConventions.ParseSelector(annotation, svc.Key),
                });
            }
            catch (KtAnnotationInvalidException e)
            {
                warnings.Add(e.Message);
            }
        }
        else if (svc.Metadata.GetAnnotation(KtConventions.LockAnnotation) is not null)
        {
            actions.Add(new CleanupAction(CleanupActionKind.UnlockService, ns, name, "recover requested"));
        }

        var selector = svc.Spec?.Selector;
        if (selector is { Count: > 0 })
        {
            var kt = new ListOptions { LabelSelector = KtConventions.ControlBySelector };
            // Exchange shadows and routers the selector points at, and manual-mesh shadows that joined the Service.
            bool Exchanged(ObjectMeta? m) => m?.GetLabel(KtConventions.RoleLabel)
                    is KtConventions.Roles.ShadowExchange or KtConventions.Roles.Router or KtConventions.Roles.ShadowMesh
                && Matches(selector, m.Labels);
            var pods = (await client.Pods.ListAllAsync(ns, kt, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
            var deployments = (await client.Deployments.ListAllAsync(ns, kt, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
            var scaled = new HashSet<string>(StringComparer.Ordinal);
            void ScaleBack(KubeObject owner)
            {
                var config = KtConventions.ParseConfig(owner.Metadata.GetAnnotation(KtConventions.ConfigAnnotation));
                if (config.TryGetValue(KtConventions.ConfigApp, out var app) && config.TryGetValue(KtConventions.ConfigReplicas, out var r)
                    && int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out var replicas) && scaled.Add(app))
                    actions.Add(new CleanupAction(CleanupActionKind.ScaleDeployment, ns, app, $"scale exchange {owner.Metadata.Name}") { Replicas = replicas });
            }
            // A Deployment's pods are deleted with it; only bare shadow pods are deleted one by one.
            foreach (var d in deployments.Where(d => Exchanged(d.Spec?.Template?.Metadata)))
            {
                ScaleBack(d);
                deletes.Add(new CleanupAction(CleanupActionKind.DeleteDeployment, ns, d.Metadata.Name ?? "", $"a kt shadow of {name}"));
                deletes.Add(new CleanupAction(CleanupActionKind.DeleteConfigMap, ns, d.Metadata.Name ?? "", $"a kt shadow of {name}"));
            }
            foreach (var p in pods.Where(p => Exchanged(p.Metadata) && p.Metadata.OwnerReferences is not { Count: > 0 }))
            {
                ScaleBack(p);
                deletes.Add(new CleanupAction(CleanupActionKind.DeletePod, ns, p.Metadata.Name ?? "", $"a kt shadow of {name}"));
                if (p.Metadata.GetLabel(KtConventions.RoleLabel) != KtConventions.Roles.Router)
                    deletes.Add(new CleanupAction(CleanupActionKind.DeleteConfigMap, ns, p.Metadata.Name ?? "", $"a kt shadow of {name}"));
            }
            // Mesh auto mode (ktctl recover's router case): the stuntman, and every mesh shadow of this Service with its Service.
            if (selector.GetValueOrDefault(KtConventions.RoleLabel) == KtConventions.Roles.Router)
            {
                var prefix = name + "-kt-mesh-";
                deletes.Add(new CleanupAction(CleanupActionKind.DeleteService, ns, KtConventions.StuntmanName(name), $"the stuntman of {name}"));
                foreach (var d in deployments.Where(d => IsMeshShadow(d.Metadata)))
                {
                    deletes.Add(new CleanupAction(CleanupActionKind.DeleteDeployment, ns, d.Metadata.Name!, $"a mesh shadow of {name}"));
                    deletes.Add(new CleanupAction(CleanupActionKind.DeleteConfigMap, ns, d.Metadata.Name!, $"a mesh shadow of {name}"));
                    deletes.Add(new CleanupAction(CleanupActionKind.DeleteService, ns, d.Metadata.Name!, $"a mesh shadow of {name}"));
                }
                foreach (var p in pods.Where(p => IsMeshShadow(p.Metadata) && p.Metadata.OwnerReferences is not { Count: > 0 }))
                {
                    deletes.Add(new CleanupAction(CleanupActionKind.DeletePod, ns, p.Metadata.Name!, $"a mesh shadow of {name}"));
                    deletes.Add(new CleanupAction(CleanupActionKind.DeleteConfigMap, ns, p.Metadata.Name!, $"a mesh shadow of {name}"));
                    deletes.Add(new CleanupAction(CleanupActionKind.DeleteService, ns, p.Metadata.Name!, $"a mesh shadow of {name}"));
                }
                bool IsMeshShadow(ObjectMeta m) => m.GetLabel(KtConventions.RoleLabel) == KtConventions.Roles.ShadowMesh
                    && m.Name?.StartsWith(prefix, StringComparison.Ordinal) == true;
            }
        }
        if (!client.Clock.IsKnown) await client.GetServerVersionAsync(cancellationToken).ConfigureAwait(false);
        return new CleanupPlan(ns, client.Clock.UtcNow, TimeSpan.Zero, [.. actions, .. deletes]) { Warnings = warnings, Service = name };
    }

    /// <summary>
    /// Applies the plan's actions in order; an object already gone counts as done. The Service's holders are checked
    /// again first (a session may have started while the plan waited for confirmation): a live one refuses the plan whole.
    /// </summary>
    public static async Task<IReadOnlyList<CleanupOutcome>> ExecuteAsync(KubeClient client, CleanupPlan plan, IChangeJournal? journal,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Service is { } name)
        {
            var svc = await client.Services.TryGetAsync(name, plan.Namespace, cancellationToken).ConfigureAwait(false);
            if (svc is not null) await ThrowIfInUseAsync(client, plan.Namespace, svc, journal, cancellationToken).ConfigureAwait(false);
        }
        return await new StaleResources(client, journal).ExecuteAsync(plan, null, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<Service> GetServiceAsync(KubeClient client, string ns, string name, CancellationToken ct) =>
        await client.Services.TryGetAsync(name, ns, ct).ConfigureAwait(false)
        ?? throw new KtException(ServiceNotFoundErrorId, KtErrorCategory.ObjectNotFound, $"Service '{name}' does not exist in namespace '{ns}'.", target: name);

    /// <summary>
    /// Throws <see cref="RecoverServiceInUseException"/> when a live session holds <paramref name="svc"/>: a live process of
    /// this machine journalled a change of it; its kt-lock is younger than <see cref="KtConventions.LockTimeout"/> (and no
    /// journal entry here says its taker died); or a kt
    /// shadow it selects, or a scale shadow serving it, is alive by <see cref="Liveness.LiveBecause"/>. An auto mesh's
    /// router is judged by its users, the Service's mesh shadows (every user has one; the router's own heartbeat is kept
    /// fresh by all of them and says nothing about any one).
    /// </summary>
    public static async Task ThrowIfInUseAsync(KubeClient client, string ns, Service svc, IChangeJournal? journal, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(ns);
        ArgumentNullException.ThrowIfNull(svc);
        var name = svc.Metadata.Name ?? "";
        var owners = LocalOwners.Read(journal ?? new ChangeJournal(), client.Configuration.Server, ns);
        var serviceOwner = owners.Find(KtObjectKind.Service, name);
        if (serviceOwner is { Alive: true })
            throw new RecoverServiceInUseException(ns, name, $"a session on this machine ({serviceOwner}) changed it and still runs");
        if (!client.Clock.IsKnown) await client.GetServerVersionAsync(cancellationToken).ConfigureAwait(false);
        var now = client.Clock.UtcNow;
        // A fresh lock is a session setting up, unless this machine knows the one that changed the Service died (a crash mid-setup).
        if (serviceOwner is null && KtConventions.TryParseUnixSeconds(svc.Metadata.GetAnnotation(KtConventions.LockAnnotation), out var locked)
            && now - locked <= KtConventions.LockTimeout)
            throw new RecoverServiceInUseException(ns, name, $"its kt-lock was taken {Liveness.Seconds(now - locked)} ago (an exchange or mesh is being set up)");

        var selector = svc.Spec?.Selector ?? [];
        var kt = new ListOptions { LabelSelector = KtConventions.ControlBySelector };
        var pods = (await client.Pods.ListAllAsync(ns, kt, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
        List<Deployment> deployments;
        try
        {
            deployments = (await client.Deployments.ListAllAsync(ns, kt, cancellationToken: cancellationToken).ConfigureAwait(false)).Items;
        }
        catch (KubeForbiddenException)
        {
            // kt-connect's minimal RBAC grants no list on deployments: shadows are pods there.
            deployments = [];
        }
        var meshPrefix = name + "-kt-mesh-";
        var routed = selector.GetValueOrDefault(KtConventions.RoleLabel) == KtConventions.Roles.Router;
        bool Holds(ObjectMeta? m, ObjectMeta? own)
        {
            if (m is null || own is null) return false;
            var role = m.GetLabel(KtConventions.RoleLabel);
            if (role == KtConventions.Roles.Router) return false; // judged by its users, below
            if (routed && role == KtConventions.Roles.ShadowMesh && own.Name?.StartsWith(meshPrefix, StringComparison.Ordinal) == true) return true;
            if (role is KtConventions.Roles.ShadowExchange or KtConventions.Roles.ShadowMesh && selector.Count > 0 && Matches(selector, m.Labels)) return true;
            // A scale exchange's shadow says in kt-config which Service it serves.
            return role == KtConventions.Roles.ShadowExchange
                && KtConventions.ParseConfig(own.GetAnnotation(KtConventions.ConfigAnnotation)).GetValueOrDefault(KtConventions.ConfigService) == name;
        }
        foreach (var d in deployments.Where(d => Holds(d.Spec?.Template?.Metadata, d.Metadata)))
        {
            if (Liveness.LiveBecause(KtObjectKind.Deployment, d, owners, now) is { } why)
                throw new RecoverServiceInUseException(ns, name, $"{Liveness.Who(d)} (shadow Deployment {d.Metadata.Name}: {why})");
        }
        // A Deployment's pods carry the template's heartbeat, never refreshed: their Deployment was judged above.
        foreach (var p in pods.Where(p => p.Metadata.DeletionTimestamp is null && p.Metadata.OwnerReferences is not { Count: > 0 } && Holds(p.Metadata, p.Metadata)))
        {
            if (Liveness.LiveBecause(KtObjectKind.Pod, p, owners, now) is { } why)
                throw new RecoverServiceInUseException(ns, name, $"{Liveness.Who(p)} (shadow pod {p.Metadata.Name}: {why})");
        }
    }

    private static bool Matches(IReadOnlyDictionary<string, string> selector, IReadOnlyDictionary<string, string>? labels) =>
        labels is not null && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
}
