using System.Text.Json.Serialization.Metadata;
using KtConnect.Engine.Kube.Json;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

/// <summary>Where a resource lives in the API (group, version, plural, scope) and how its JSON is read and written.</summary>
public sealed class ResourceDescriptor<T> where T : KubeObject
{
    public ResourceDescriptor(string group, string version, string plural, string kind, bool namespaced,
        JsonTypeInfo<T> typeInfo, JsonTypeInfo<KubeList<T>> listTypeInfo)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentException.ThrowIfNullOrEmpty(version);
        ArgumentException.ThrowIfNullOrEmpty(plural);
        ArgumentException.ThrowIfNullOrEmpty(kind);
        Group = group;
        Version = version;
        Plural = plural;
        Kind = kind;
        Namespaced = namespaced;
        TypeInfo = typeInfo ?? throw new ArgumentNullException(nameof(typeInfo));
        ListTypeInfo = listTypeInfo ?? throw new ArgumentNullException(nameof(listTypeInfo));
    }

    /// <summary>"" for the core group.</summary>
    public string Group { get; }
    public string Version { get; }
    public string Plural { get; }
    public string Kind { get; }
    public bool Namespaced { get; }
    public JsonTypeInfo<T> TypeInfo { get; }
    public JsonTypeInfo<KubeList<T>> ListTypeInfo { get; }

    /// <summary>"v1" or "apps/v1".</summary>
    public string ApiVersion => Group.Length == 0 ? Version : Group + "/" + Version;

    /// <summary>"pods" or "deployments.apps", as in RBAC messages.</summary>
    public string QualifiedName => Group.Length == 0 ? Plural : Plural + "." + Group;

    /// <summary>/api/v1/namespaces/ns/pods[/name] or /apis/apps/v1/deployments.</summary>
    internal string Path(string? ns, string? name = null, string? subresource = null)
    {
        var root = Group.Length == 0 ? "/api/" + Version : "/apis/" + Group + "/" + Version;
        var p = Namespaced && !string.IsNullOrEmpty(ns)
            ? root + "/namespaces/" + Uri.EscapeDataString(ns) + "/" + Plural
            : root + "/" + Plural;
        if (name is not null) p += "/" + Uri.EscapeDataString(name);
        if (subresource is not null) p += "/" + subresource;
        return p;
    }
}

/// <summary>The descriptors of everything KtConnect reads or writes.</summary>
public static class KubeResources
{
    private static KubeJsonContext J => KubeJsonContext.Default;

    public static ResourceDescriptor<Pod> Pods { get; } = new("", "v1", "pods", "Pod", true, J.Pod, J.KubeListPod);
    public static ResourceDescriptor<Service> Services { get; } = new("", "v1", "services", "Service", true, J.Service, J.KubeListService);
    public static ResourceDescriptor<ConfigMap> ConfigMaps { get; } = new("", "v1", "configmaps", "ConfigMap", true, J.ConfigMap, J.KubeListConfigMap);
    public static ResourceDescriptor<Secret> Secrets { get; } = new("", "v1", "secrets", "Secret", true, J.Secret, J.KubeListSecret);
    public static ResourceDescriptor<Namespace> Namespaces { get; } = new("", "v1", "namespaces", "Namespace", false, J.Namespace, J.KubeListNamespace);
    public static ResourceDescriptor<Node> Nodes { get; } = new("", "v1", "nodes", "Node", false, J.Node, J.KubeListNode);
    public static ResourceDescriptor<Deployment> Deployments { get; } = new("apps", "v1", "deployments", "Deployment", true, J.Deployment, J.KubeListDeployment);
    public static ResourceDescriptor<ReplicaSet> ReplicaSets { get; } = new("apps", "v1", "replicasets", "ReplicaSet", true, J.ReplicaSet, J.KubeListReplicaSet);
    public static ResourceDescriptor<EndpointSlice> EndpointSlices { get; } = new("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, J.EndpointSlice, J.KubeListEndpointSlice);
    public static ResourceDescriptor<Ingress> Ingresses { get; } = new("networking.k8s.io", "v1", "ingresses", "Ingress", true, J.Ingress, J.KubeListIngress);
    public static ResourceDescriptor<Lease> Leases { get; } = new("coordination.k8s.io", "v1", "leases", "Lease", true, J.Lease, J.KubeListLease);
    public static ResourceDescriptor<SelfSubjectAccessReview> SelfSubjectAccessReviews { get; } =
        new("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, J.SelfSubjectAccessReview, J.KubeListSelfSubjectAccessReview);
}
