using System.Globalization;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster.Recovery;

/// <summary>Where `kt recover` / Restore-KtService work.</summary>
public sealed record RecoverOptions
{
    public string? Kubeconfig { get; init; }

    public string? Context { get; init; }

    /// <summary>Null means the context's namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>Where the kubeconfig is read from (tests give their own).</summary>
    public KubeConfigLoader? Loader { get; init; }
}

/// <summary>
/// ktctl recover: puts a Service that an exchange (or a crash during one) changed back to how it was, now, without a
/// heartbeat check: selector from <c>kt-selector</c> (kt-selector and kt-lock removed), else a kt-lock removed; the
/// exchange and manual-mesh shadows the current selector picks deleted, and a scale exchange's Deployment scaled back from the
/// shadow's <c>kt-config</c>. Planning changes nothing; <see cref="StaleResources.ExecuteAsync"/> applies the plan.
/// </summary>
public static class ServiceRecovery
{
    public const string ServiceNotFoundErrorId = "RecoverServiceNotFound";

    public static async Task<CleanupPlan> PlanAsync(KubeClient client, string ns, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(ns);
        ArgumentException.ThrowIfNullOrEmpty(name);
        var svc = await client.Services.TryGetAsync(name, ns, cancellationToken).ConfigureAwait(false)
            ?? throw new KtException(ServiceNotFoundErrorId, KtErrorCategory.ObjectNotFound, $"Service '{name}' does not exist in namespace '{ns}'.", target: name);
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
        return new CleanupPlan(ns, client.Clock.UtcNow, TimeSpan.Zero, [.. actions, .. deletes]) { Warnings = warnings };
    }

    /// <summary>Connects with <paramref name="options"/> and plans (see <see cref="PlanAsync(KubeClient, string, string, CancellationToken)"/>).</summary>
    public static async Task<CleanupPlan> PlanAsync(RecoverOptions options, string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var client = Connect(options, out var ns);
        return await PlanAsync(client, ns, name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Applies the plan's actions in order; an object already gone counts as done.</summary>
    public static async Task<IReadOnlyList<CleanupOutcome>> ExecuteAsync(RecoverOptions options, CleanupPlan plan, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Actions.Count == 0) return [];
        using var client = Connect(options, out _);
        return await new StaleResources(client).ExecuteAsync(plan, null, cancellationToken).ConfigureAwait(false);
    }

    private static bool Matches(IReadOnlyDictionary<string, string> selector, IReadOnlyDictionary<string, string>? labels) =>
        labels is not null && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static KubeClient Connect(RecoverOptions options, out string ns)
    {
        var config = (options.Loader ?? new KubeConfigLoader()).CreateClientConfiguration(options.Kubeconfig, options.Context);
        ns = string.IsNullOrEmpty(options.Namespace) ? config.Namespace : options.Namespace;
        return new KubeClient(config);
    }
}
