using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>A container port of a shadow (exchange/preview): number and the name kt-connect gives it (§2.2).</summary>
public sealed record ShadowPort(int Port, string Name)
{
    /// <summary>kt-connect's default name <c>http-&lt;port&gt;</c>.</summary>
    public static ShadowPort Default(int port) => new(port, "http-" + port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>For a Service whose targetPort is a number: <c>kt-&lt;targetPort&gt;</c>.</summary>
    public static ShadowPort ForIntTarget(int targetPort) => new(targetPort, KtConventions.ServicePortName(targetPort));
}

/// <summary>
/// Everything that shapes a shadow pod (or Deployment) and its SSH ConfigMap, built exactly as kt-connect does
/// (reference/kt-connect.md §2.3). Pure: <see cref="BuildConfigMap"/>, <see cref="BuildPod"/> and
/// <see cref="BuildDeployment"/> only produce objects.
/// </summary>
public sealed record ShadowPodSpec
{
    public required string Name { get; init; }

    public required string Namespace { get; init; }

    /// <summary><c>kt-role</c>: <see cref="KtConventions.Roles"/>.</summary>
    public string Role { get; init; } = KtConventions.Roles.ShadowConnect;

    /// <summary>The public key line for <c>authorized_keys</c> (<c>ssh-rsa AAAA... comment</c>).</summary>
    public required string AuthorizedKey { get; init; }

    /// <summary>Only for a shared shadow: stored in the ConfigMap (<c>privateKey</c>) so other users can log in. Opaque text.</summary>
    public string? PrivateKey { get; init; }

    public string Image { get; init; } = KtConventions.DefaultShadowImage;

    /// <summary><c>-f</c>/force update: pull policy Always instead of IfNotPresent.</summary>
    public bool AlwaysPullImage { get; init; }

    public string? ImagePullSecret { get; init; }

    public IReadOnlyDictionary<string, string>? NodeSelector { get; init; }

    public string ServiceAccount { get; init; } = "default";

    public PodQuota? Quota { get; init; }

    /// <summary><c>kt-target</c>; kt-connect sets it on deployments and on exchange/mesh/preview shadows. Null = none.</summary>
    public string? Target { get; init; }

    /// <summary>Role-specific labels (scale exchange: the Deployment's matchLabels; manual mesh: the version label).</summary>
    public IReadOnlyDictionary<string, string>? RoleLabels { get; init; }

    /// <summary><c>kt-config</c> entries (<c>service=svc</c>, or <c>app=d,replicas=n</c>); null or empty = no annotation.</summary>
    public IReadOnlyList<KeyValuePair<string, string>>? Config { get; init; }

    /// <summary><c>--withLabel</c>.</summary>
    public IReadOnlyDictionary<string, string>? ExtraLabels { get; init; }

    /// <summary><c>--withAnnotation</c>.</summary>
    public IReadOnlyDictionary<string, string>? ExtraAnnotations { get; init; }

    /// <summary>Container environment (connect: <see cref="ConnectEnvironment"/>).</summary>
    public IReadOnlyList<KeyValuePair<string, string>>? Environment { get; init; }

    public IReadOnlyList<ShadowPort> Ports { get; init; } = [];

    /// <summary><c>--useShadowDeployment</c>: a Deployment instead of a bare pod.</summary>
    public bool UseDeployment { get; init; }

    /// <summary><c>kt-user</c>.</summary>
    public string User { get; init; } = KtConventions.CurrentUser();

    /// <summary>
    /// The env of a connect shadow: <c>KT_DNS_PROTOCOL</c> (tcp in localDNS mode, else udp; its presence makes run.sh start the
    /// shadow DNS server), <c>KT_LOG_LEVEL</c>, <c>KT_LOCAL_DOMAIN</c> (the client's search domains, comma-separated).
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ConnectEnvironment(string dnsProtocol = "udp", bool debug = false,
        string localDomain = "") =>
    [
        new("KT_DNS_PROTOCOL", dnsProtocol),
        new("KT_LOG_LEVEL", debug ? "debug" : "info"),
        new("KT_LOCAL_DOMAIN", localDomain),
    ];

    /// <summary>
    /// The labels without <c>control-by</c>: extra labels, then the role labels, kt-role and kt-target (Deployment selector
    /// and template). The user's extra labels never replace one of ours: an <c>app</c> of theirs over the Service's selector
    /// would leave a scale-mode exchange's Service with no endpoints.
    /// </summary>
    public Dictionary<string, string> SelectorLabels()
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ExtraLabels is not null) foreach (var (k, v) in ExtraLabels) labels[k] = v;
        if (RoleLabels is not null) foreach (var (k, v) in RoleLabels) labels[k] = v;
        labels[KtConventions.RoleLabel] = Role;
        if (Target is not null) labels[KtConventions.TargetLabel] = Target;
        return labels;
    }

    /// <summary>The pod's (or Deployment's) labels: <see cref="SelectorLabels"/> plus <c>control-by=kt</c>.</summary>
    public Dictionary<string, string> Labels()
    {
        var labels = SelectorLabels();
        labels[KtConventions.ControlByLabel] = KtConventions.ControlByValue;
        return labels;
    }

    /// <summary>kt-user, kt-ref-count=1, kt-last-heart-beat, kt-config, plus <see cref="ExtraAnnotations"/>.</summary>
    public Dictionary<string, string> Annotations(DateTimeOffset clusterNow)
    {
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ExtraAnnotations is not null) foreach (var (k, v) in ExtraAnnotations) annotations[k] = v;
        annotations[KtConventions.UserAnnotation] = User;
        annotations[KtConventions.RefCountAnnotation] = "1";
        annotations[KtConventions.HeartbeatAnnotation] = KtConventions.FormatUnixSeconds(clusterNow);
        if (Config is { Count: > 0 }) annotations[KtConventions.ConfigAnnotation] = KtConventions.FormatConfig(Config);
        return annotations;
    }

    /// <summary>The SSH ConfigMap: same name as the shadow, shadow labels + control-by, heartbeat, data authorized (+ privateKey when shared).</summary>
    public ConfigMap BuildConfigMap(DateTimeOffset clusterNow)
    {
        var data = new Dictionary<string, string>(StringComparer.Ordinal) { [KtConventions.ConfigMapAuthorizedKey] = AuthorizedKey };
        if (PrivateKey is not null) data[KtConventions.ConfigMapPrivateKey] = PrivateKey;
        return new ConfigMap
        {
            ApiVersion = "v1",
            Kind = "ConfigMap",
            Metadata = new ObjectMeta
            {
                Name = Name,
                Namespace = Namespace,
                Labels = Labels(),
                Annotations = ConfigMapAnnotations(clusterNow),
            },
            Data = data,
        };
    }

    /// <summary>
    /// The heartbeat, and the session the shadow belongs to when it names one: undoing a crashed session never deletes
    /// another laptop's ConfigMap of the same name (a mesh shadow's name is fixed by Service and version).
    /// </summary>
    private Dictionary<string, string> ConfigMapAnnotations(DateTimeOffset clusterNow)
    {
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [KtConventions.HeartbeatAnnotation] = KtConventions.FormatUnixSeconds(clusterNow),
        };
        if (ExtraAnnotations?.TryGetValue(ExchangeHolders.SessionAnnotation, out var session) == true)
            annotations[ExchangeHolders.SessionAnnotation] = session;
        return annotations;
    }

    /// <summary>The pod's and the Deployment's metadata: name, namespace, kt labels and annotations (the ConfigMap has the heartbeat and the session).</summary>
    private ObjectMeta Metadata(DateTimeOffset clusterNow) => new()
    {
        Name = Name,
        Namespace = Namespace,
        Labels = Labels(),
        Annotations = Annotations(clusterNow),
    };

    /// <summary>The bare shadow pod.</summary>
    public Pod BuildPod(DateTimeOffset clusterNow) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = Metadata(clusterNow),
        Spec = BuildPodSpec(),
    };

    /// <summary>The shadow Deployment: same metadata; selector and template labels without control-by; replicas unset.</summary>
    public Deployment BuildDeployment(DateTimeOffset clusterNow) => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = Metadata(clusterNow),
        Spec = new DeploymentSpec
        {
            Selector = new LabelSelectorSpec { MatchLabels = SelectorLabels() },
            Template = new PodTemplateSpec
            {
                Metadata = new ObjectMeta { Labels = SelectorLabels(), Annotations = Annotations(clusterNow) },
                Spec = BuildPodSpec(),
            },
        },
    };

    private PodSpec BuildPodSpec()
    {
        var container = new Container
        {
            Name = KtConventions.ContainerName,
            Image = Image,
            ImagePullPolicy = AlwaysPullImage ? "Always" : "IfNotPresent",
            SecurityContext = new SecurityContext { Capabilities = new Capabilities { Add = [KtConventions.AuditWriteCapability] } },
            VolumeMounts = [new VolumeMount { Name = KtConventions.SshVolumeName, MountPath = KtConventions.SshMountPath }],
        };
        if (Environment is { Count: > 0 }) container.Env = [.. Environment.Select(e => new EnvVar { Name = e.Key, Value = e.Value })];
        if (Ports.Count > 0) container.Ports = [.. Ports.Select(p => new ContainerPortSpec { Name = p.Name, ContainerPort = p.Port })];
        if (Quota is not null) container.Resources = Quota.ToResources();
        var spec = new PodSpec
        {
            ServiceAccountName = ServiceAccount,
            Containers = [container],
            Volumes =
            [
                new Volume
                {
                    Name = KtConventions.SshVolumeName,
                    ConfigMap = new ConfigMapVolumeSource
                    {
                        Name = Name,
                        Items = [new KeyToPath { Key = KtConventions.ConfigMapAuthorizedKey, Path = KtConventions.AuthorizedKeysFile }],
                    },
                },
            ],
        };
        if (!string.IsNullOrEmpty(ImagePullSecret)) spec.ImagePullSecrets = [new LocalObjectReference { Name = ImagePullSecret }];
        if (NodeSelector is { Count: > 0 }) spec.NodeSelector = new Dictionary<string, string>(NodeSelector, StringComparer.Ordinal);
        return spec;
    }
}
