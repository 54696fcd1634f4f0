using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>kt-connect's <c>deploy/&lt;name&gt;</c> targets of exchange and mesh: the one Service that selects the Deployment's pods.</summary>
public static class ServiceTargets
{
    /// <summary>
    /// The Deployment and the Service whose selector (its original one, kept in kt-selector, while it is exchanged or
    /// meshed) picks the Deployment's pod template. None or several is an error naming what to give instead.
    /// </summary>
    public static async Task<(Service Service, Deployment Deployment)> FromDeploymentAsync(KubeClient client, string ns, string deployment,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var d = await client.Deployments.TryGetAsync(deployment, ns, cancellationToken).ConfigureAwait(false)
            ?? throw new KtException("DeploymentNotFound", KtErrorCategory.ObjectNotFound, $"Deployment '{deployment}' does not exist in namespace '{ns}'.",
                null, deployment);
        var labels = d.Spec?.Template?.Metadata?.Labels ?? [];
        var services = (await client.Services.ListAllAsync(ns, cancellationToken: cancellationToken).ConfigureAwait(false)).Items
            .Where(s => s.Metadata.GetLabel(KtConventions.ControlByLabel) != KtConventions.ControlByValue && Selects(OwnSelector(s), labels))
            .ToList();
        return services.Count switch
        {
            0 => throw new KtException("NoServiceForDeployment", KtErrorCategory.ObjectNotFound,
                $"No Service in '{ns}' selects the pods of Deployment '{deployment}'; there is no traffic to take over.", null, deployment),
            1 => (services[0], d),
            _ => throw new KtException("SeveralServicesForDeployment", KtErrorCategory.InvalidOperation,
                $"Services {string.Join(", ", services.Select(s => s.Metadata.Name))} select the pods of Deployment '{deployment}'; name the Service instead.",
                null, deployment),
        };
    }

    /// <summary>
    /// The Service a session works on: <paramref name="service"/>, or with <paramref name="deployment"/> the one Service
    /// selecting its pods (said as "Deployment ns/d serves Service ns/s: <paramref name="doing"/> that."), and that
    /// Deployment. What exchange and mesh both do first.
    /// </summary>
    public static async Task<(Service Service, Deployment? Deployment)> ResolveAsync(KubeClient client, string ns, string service, string? deployment,
        IKtOutput output, string doing, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        Deployment? given = null;
        if (deployment is { Length: > 0 })
        {
            (var found, given) = await FromDeploymentAsync(client, ns, deployment, cancellationToken).ConfigureAwait(false);
            service = found.Metadata.Name!;
            output.Verbose($"Deployment {ns}/{deployment} serves Service {ns}/{service}: {doing} that.");
        }
        return (await GetServiceAsync(client, ns, service, cancellationToken).ConfigureAwait(false), given);
    }

    /// <summary>The Service, or <c>ServiceNotFound</c> naming it and the namespace.</summary>
    public static async Task<Service> GetServiceAsync(KubeClient client, string ns, string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        return await client.Services.TryGetAsync(name, ns, cancellationToken).ConfigureAwait(false)
            ?? throw new KtException("ServiceNotFound", KtErrorCategory.ObjectNotFound, $"Service '{name}' does not exist in namespace '{ns}'.", null, name);
    }

    /// <summary>Exactly one of a Service name and a Deployment name.</summary>
    public static void Validate(string service, string? deployment, string verb)
    {
        var hasService = !string.IsNullOrWhiteSpace(service);
        var hasDeployment = !string.IsNullOrWhiteSpace(deployment);
        if (!hasService && !hasDeployment)
            throw new KtException("ServiceNameMissing", KtErrorCategory.InvalidArgument, $"Name the Service to {verb}.");
        if (hasService && hasDeployment)
            throw new KtException("ServiceNameMissing", KtErrorCategory.InvalidArgument, $"Name either a Service or a Deployment to {verb}, not both.");
    }

    /// <summary>What a session shows as its target: the Service, or <c>deploy/&lt;name&gt;</c>.</summary>
    public static string Display(string service, string? deployment) => service.Length > 0 ? service : "deploy/" + deployment;

    private static IReadOnlyDictionary<string, string>? OwnSelector(Service s) =>
        s.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is { } recorded ? KtConventions.ParseSelector(recorded, s.Key) : s.Spec?.Selector;

    private static bool Selects(IReadOnlyDictionary<string, string>? selector, IReadOnlyDictionary<string, string> labels) =>
        selector is { Count: > 0 } && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);
}
