using System.Text.Json.Serialization;

namespace KtConnect.Engine.Kube.Models;

public sealed class Pod : KubeObject
{
    public PodSpec? Spec { get; set; }
    public PodStatus? Status { get; set; }
}

public sealed class PodTemplateSpec : KubeModel
{
    public ObjectMeta? Metadata { get; set; }
    public PodSpec? Spec { get; set; }
}

public sealed class PodSpec : KubeModel
{
    public List<Container>? InitContainers { get; set; }
    public List<Container> Containers { get; set; } = [];
    public List<Volume>? Volumes { get; set; }
    public string? RestartPolicy { get; set; }
    public long? TerminationGracePeriodSeconds { get; set; }
    public string? DnsPolicy { get; set; }
    public Dictionary<string, string>? NodeSelector { get; set; }
    public string? ServiceAccountName { get; set; }
    public bool? AutomountServiceAccountToken { get; set; }
    public string? NodeName { get; set; }
    public bool? HostNetwork { get; set; }
    public PodSecurityContext? SecurityContext { get; set; }
    public List<LocalObjectReference>? ImagePullSecrets { get; set; }
    public List<Toleration>? Tolerations { get; set; }
}

public sealed class Container : KubeModel
{
    public string? Name { get; set; }
    public string? Image { get; set; }
    public List<string>? Command { get; set; }
    public List<string>? Args { get; set; }
    public string? WorkingDir { get; set; }
    public List<ContainerPortSpec>? Ports { get; set; }
    public List<EnvVar>? Env { get; set; }
    public ResourceRequirements? Resources { get; set; }
    public List<VolumeMount>? VolumeMounts { get; set; }
    public string? ImagePullPolicy { get; set; }
    public SecurityContext? SecurityContext { get; set; }
}

public sealed class ContainerPortSpec : KubeModel
{
    public string? Name { get; set; }
    public int? HostPort { get; set; }
    public int ContainerPort { get; set; }
    public string? Protocol { get; set; }
}

/// <summary>An environment variable. valueFrom is not modelled and survives in ExtensionData.</summary>
public sealed class EnvVar : KubeModel
{
    public string? Name { get; set; }
    public string? Value { get; set; }
}

public sealed class ResourceRequirements : KubeModel
{
    public Dictionary<string, string>? Limits { get; set; }
    public Dictionary<string, string>? Requests { get; set; }
}

public sealed class VolumeMount : KubeModel
{
    public string? Name { get; set; }
    public bool? ReadOnly { get; set; }
    public string? MountPath { get; set; }
    public string? SubPath { get; set; }
}

public sealed class Volume : KubeModel
{
    public string? Name { get; set; }
    public ConfigMapVolumeSource? ConfigMap { get; set; }
    public SecretVolumeSource? Secret { get; set; }
    public EmptyDirVolumeSource? EmptyDir { get; set; }
}

public sealed class KeyToPath : KubeModel
{
    public string? Key { get; set; }
    public string? Path { get; set; }
    public int? Mode { get; set; }
}

public sealed class ConfigMapVolumeSource : KubeModel
{
    public string? Name { get; set; }
    public List<KeyToPath>? Items { get; set; }
    public int? DefaultMode { get; set; }
    public bool? Optional { get; set; }
}

public sealed class SecretVolumeSource : KubeModel
{
    public string? SecretName { get; set; }
    public List<KeyToPath>? Items { get; set; }
    public int? DefaultMode { get; set; }
    public bool? Optional { get; set; }
}

public sealed class EmptyDirVolumeSource : KubeModel
{
    public string? Medium { get; set; }
    public string? SizeLimit { get; set; }
}

public sealed class SecurityContext : KubeModel
{
    public Capabilities? Capabilities { get; set; }
    public bool? Privileged { get; set; }
    public long? RunAsUser { get; set; }
    public long? RunAsGroup { get; set; }
    public bool? RunAsNonRoot { get; set; }
    public bool? ReadOnlyRootFilesystem { get; set; }
    public bool? AllowPrivilegeEscalation { get; set; }
}

public sealed class Capabilities : KubeModel
{
    public List<string>? Add { get; set; }
    public List<string>? Drop { get; set; }
}

public sealed class PodSecurityContext : KubeModel
{
    public long? RunAsUser { get; set; }
    public long? RunAsGroup { get; set; }
    public bool? RunAsNonRoot { get; set; }
    public long? FsGroup { get; set; }
    public List<Sysctl>? Sysctls { get; set; }
}

public sealed class Sysctl : KubeModel
{
    public string? Name { get; set; }
    public string? Value { get; set; }
}

public sealed class Toleration : KubeModel
{
    public string? Key { get; set; }
    public string? Operator { get; set; }
    public string? Value { get; set; }
    public string? Effect { get; set; }
    public long? TolerationSeconds { get; set; }
}

public sealed class PodStatus : KubeModel
{
    /// <summary>Pending, Running, Succeeded, Failed, Unknown.</summary>
    public string? Phase { get; set; }
    public List<PodCondition>? Conditions { get; set; }
    public string? Message { get; set; }
    public string? Reason { get; set; }

    [JsonPropertyName("hostIP")]
    public string? HostIP { get; set; }

    [JsonPropertyName("podIP")]
    public string? PodIP { get; set; }

    [JsonPropertyName("podIPs")]
    public List<PodIP>? PodIPs { get; set; }

    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? StartTime { get; set; }

    public List<ContainerStatus>? InitContainerStatuses { get; set; }
    public List<ContainerStatus>? ContainerStatuses { get; set; }
    public string? QosClass { get; set; }
}

public sealed class PodIP : KubeModel
{
    [JsonPropertyName("ip")]
    public string? Ip { get; set; }
}

public sealed class PodCondition : KubeModel
{
    public string? Type { get; set; }
    public string? Status { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }

    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? LastTransitionTime { get; set; }
}

public sealed class ContainerStatus : KubeModel
{
    public string? Name { get; set; }
    public ContainerState? State { get; set; }
    public ContainerState? LastState { get; set; }
    public bool Ready { get; set; }
    public int RestartCount { get; set; }
    public string? Image { get; set; }

    [JsonPropertyName("imageID")]
    public string? ImageId { get; set; }

    [JsonPropertyName("containerID")]
    public string? ContainerId { get; set; }

    public bool? Started { get; set; }
}

public sealed class ContainerState : KubeModel
{
    public ContainerStateWaiting? Waiting { get; set; }
    public ContainerStateRunning? Running { get; set; }
    public ContainerStateTerminated? Terminated { get; set; }
}

public sealed class ContainerStateWaiting : KubeModel
{
    /// <summary>ContainerCreating, ErrImagePull, ImagePullBackOff, CrashLoopBackOff, ...</summary>
    public string? Reason { get; set; }
    public string? Message { get; set; }
}

public sealed class ContainerStateRunning : KubeModel
{
    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? StartedAt { get; set; }
}

public sealed class ContainerStateTerminated : KubeModel
{
    public int ExitCode { get; set; }
    public int? Signal { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }

    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? StartedAt { get; set; }

    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? FinishedAt { get; set; }
}
