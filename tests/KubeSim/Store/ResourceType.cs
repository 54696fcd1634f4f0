namespace KtConnect.KubeSim.Store;

/// <summary>
/// One REST resource KubeSim serves: where it lives (group/version/plural), what it holds (kind), and which
/// behaviours of the real registry apply to it (status and scale subresources, generation tracking).
/// </summary>
public sealed record ResourceType(
    string Group,
    string Version,
    string Plural,
    string Kind,
    bool Namespaced,
    string[] ShortNames,
    string[] Verbs,
    bool HasStatus = false,
    bool HasScale = false,
    bool TracksGeneration = false,
    bool Categorized = false,
    bool AllowCreateOnUpdate = false)
{
    /// <summary>"v1" for the core group, else "group/version".</summary>
    public string ApiVersion => Group.Length == 0 ? Version : Group + "/" + Version;

    /// <summary>What error messages call the resource: "services", "deployments.apps".</summary>
    public string QualifiedName => Group.Length == 0 ? Plural : Plural + "." + Group;

    /// <summary>The internal API group Go's conversion errors name ("core", "apps", "networking").</summary>
    public string InternalGroup => Group.Length == 0 ? "core" : Group.Split('.')[0];

    public bool Supports(string verb) => Verbs.Contains(verb, StringComparer.Ordinal);

    /// <summary>The key objects are ordered by in lists, like etcd's key order.</summary>
    internal static string SortKey(string? ns, string name) => ns is null ? name : ns + "/" + name;
}

/// <summary>The resources KubeSim serves (what KtConnect touches), with the real server's verbs and short names.</summary>
public static class ResourceTypes
{
    private static readonly string[] AllVerbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    private static readonly string[] NoCollectionDelete = ["create", "delete", "get", "list", "patch", "update", "watch"];

    public static readonly ResourceType Pods = new("", "v1", "pods", "Pod", true, ["po"], AllVerbs, HasStatus: true, Categorized: true);
    public static readonly ResourceType Services = new("", "v1", "services", "Service", true, ["svc"], NoCollectionDelete, HasStatus: true, Categorized: true);
    public static readonly ResourceType ConfigMaps = new("", "v1", "configmaps", "ConfigMap", true, ["cm"], AllVerbs);
    public static readonly ResourceType Secrets = new("", "v1", "secrets", "Secret", true, [], AllVerbs);
    public static readonly ResourceType Namespaces = new("", "v1", "namespaces", "Namespace", false, ["ns"], NoCollectionDelete, HasStatus: true);
    public static readonly ResourceType Nodes = new("", "v1", "nodes", "Node", false, ["no"], AllVerbs, HasStatus: true);
    public static readonly ResourceType Endpoints = new("", "v1", "endpoints", "Endpoints", true, ["ep"], AllVerbs, AllowCreateOnUpdate: true);
    public static readonly ResourceType Events = new("", "v1", "events", "Event", true, ["ev"], AllVerbs);
    public static readonly ResourceType ServiceAccounts = new("", "v1", "serviceaccounts", "ServiceAccount", true, ["sa"], AllVerbs);
    public static readonly ResourceType Deployments = new("apps", "v1", "deployments", "Deployment", true, ["deploy"], AllVerbs,
        HasStatus: true, HasScale: true, TracksGeneration: true, Categorized: true);
    public static readonly ResourceType ReplicaSets = new("apps", "v1", "replicasets", "ReplicaSet", true, ["rs"], AllVerbs,
        HasStatus: true, HasScale: true, TracksGeneration: true, Categorized: true);
    public static readonly ResourceType EndpointSlices = new("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, [], AllVerbs);
    public static readonly ResourceType Ingresses = new("networking.k8s.io", "v1", "ingresses", "Ingress", true, ["ing"], AllVerbs,
        HasStatus: true, TracksGeneration: true);
    public static readonly ResourceType Leases = new("coordination.k8s.io", "v1", "leases", "Lease", true, [], AllVerbs, AllowCreateOnUpdate: true);
    public static readonly ResourceType SelfSubjectAccessReviews = new("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
        "SelfSubjectAccessReview", false, [], ["create"]);

    public static IReadOnlyList<ResourceType> All { get; } =
    [
        Pods, Services, ConfigMaps, Secrets, Namespaces, Nodes, Endpoints, Events, ServiceAccounts,
        Deployments, ReplicaSets, EndpointSlices, Ingresses, Leases, SelfSubjectAccessReviews,
    ];

    /// <summary>Group/versions in the order /apis lists them (the core group is served at /api).</summary>
    public static IReadOnlyList<(string Group, string Version)> GroupVersions { get; } =
        All.Select(t => (t.Group, t.Version)).Distinct().ToArray();

    public static ResourceType? Find(string group, string version, string plural) =>
        All.FirstOrDefault(t => t.Group == group && t.Version == version && t.Plural == plural);

    public static ResourceType? FindByKind(string apiVersion, string kind) =>
        All.FirstOrDefault(t => t.ApiVersion == apiVersion && t.Kind == kind);

    public static bool IsServedGroupVersion(string group, string version) =>
        All.Any(t => t.Group == group && t.Version == version);
}
