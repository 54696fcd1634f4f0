using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>
/// Who already holds a Service (an exchange in either mode, or a mesh): read from the cluster, so a second exchange
/// is refused with a message that names the user, host and session instead of silently stacking on the first.
/// </summary>
public static class ExchangeHolders
{
    /// <summary>Annotation on our shadows: the machine the session runs on (kt-user names the person).</summary>
    public const string HostAnnotation = "ktconnect.io/host";

    /// <summary>Annotation on our shadows: the session's instance id.</summary>
    public const string SessionAnnotation = "ktconnect.io/session";

    /// <summary>Throws <c>ServiceAlreadyExchanged</c> when the Service is exchanged or meshed.</summary>
    public static async Task ThrowIfHeldAsync(KubeClient client, Service service, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(service);
        var ns = service.Metadata.Namespace ?? "";
        var name = service.Metadata.Name ?? "";
        var selector = service.Spec?.Selector ?? [];
        var recorded = service.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is not null;
        Pod? holder = null;
        if (recorded || selector.ContainsKey(KtConventions.RoleLabel))
        {
            if (selector.Count > 0)
            {
                var selected = await client.Pods.ListAsync(ns, new ListOptions { LabelSelector = KtConventions.SelectorQuery(selector) }, cancellationToken)
                    .ConfigureAwait(false);
                holder = selected.Items.FirstOrDefault(p => p.Metadata.GetLabel(KtConventions.RoleLabel) is not null);
            }
            throw Held(ns, name, holder, "its selector points at a kt pod (kt-selector is set)");
        }
        // Scale mode changes nothing on the Service: its shadow says which Service it serves.
        var shadows = await client.Pods.ListAsync(ns, new ListOptions
        {
            LabelSelector = KtConventions.RoleLabel + "=" + KtConventions.Roles.ShadowExchange,
        }, cancellationToken).ConfigureAwait(false);
        holder = shadows.Items.FirstOrDefault(p => p.Metadata.DeletionTimestamp is null
            && KtConventions.ParseConfig(p.Metadata.GetAnnotation(KtConventions.ConfigAnnotation)).GetValueOrDefault(KtConventions.ConfigService) == name
            && KtConventions.ParseConfig(p.Metadata.GetAnnotation(KtConventions.ConfigAnnotation)).ContainsKey(KtConventions.ConfigApp));
        if (holder is not null) throw Held(ns, name, holder, "its Deployment is scaled to 0 by a scale exchange");
    }

    /// <summary>
    /// Throws <c>ServiceAlreadyExchanged</c> when a manual mesh's shadow is among the Service's endpoints (it carries the
    /// Service's selector labels and a version label for the service mesh to route by). A selector-mode exchange would
    /// point the Service away from it, and that mesh's version would reach nobody. Other manual meshes, an auto mesh
    /// (whose stuntman keeps selecting it) and a scale-mode exchange leave it served, and do not call this.
    /// </summary>
    public static async Task ThrowIfMeshedManuallyAsync(KubeClient client, Service service, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(service);
        if (service.Spec?.Selector is not { Count: > 0 } selector || selector.ContainsKey(KtConventions.RoleLabel)) return;
        var ns = service.Metadata.Namespace ?? "";
        var shadows = await client.Pods.ListAsync(ns, new ListOptions
        {
            LabelSelector = KtConventions.SelectorQuery(selector) + "," + KtConventions.RoleLabel + "=" + KtConventions.Roles.ShadowMesh,
        }, cancellationToken).ConfigureAwait(false);
        if (shadows.Items.FirstOrDefault(p => p.Metadata.DeletionTimestamp is null) is { } holder)
            throw Held(ns, service.Metadata.Name ?? "", holder, "a manual mesh's shadow is among its endpoints");
    }

    /// <summary>The refusal, naming whoever the holder's annotations name.</summary>
    public static KtException Held(string ns, string service, Pod? holder, string how)
    {
        string who;
        if (holder is null)
        {
            who = "another kt session (no shadow found)";
        }
        else
        {
            var m = holder.Metadata;
            var user = m.GetAnnotation(KtConventions.UserAnnotation) ?? "an unknown user";
            var host = m.GetAnnotation(HostAnnotation);
            var session = m.GetAnnotation(SessionAnnotation);
            var role = m.GetLabel(KtConventions.RoleLabel) == KtConventions.Roles.ShadowExchange ? "exchange" : "mesh";
            who = $"user '{user}'" + (host is null ? "" : $" on host '{host}'") + $" ({role}" + (session is null ? "" : $" session {session}") +
                $", pod {m.Name})";
        }
        return new KtException("ServiceAlreadyExchanged", KtErrorCategory.ResourceBusy,
            $"Service '{ns}/{service}' is already taken over by {who}: {how}. Stop that session first; if it crashed, " +
            "`kt clean` / Clear-KtResource or `kt recover` / Restore-KtService gives the Service back.", null, service);
    }
}
