namespace KtConnect.Engine.Kube.Models;

public sealed class Deployment : KubeObject
{
    public DeploymentSpec? Spec { get; set; }
    public DeploymentStatus? Status { get; set; }
}

/// <summary>strategy, minReadySeconds and the like are not modelled and survive in ExtensionData.</summary>
public sealed class DeploymentSpec : KubeModel
{
    public int? Replicas { get; set; }
    public LabelSelectorSpec? Selector { get; set; }
    public PodTemplateSpec? Template { get; set; }
    public bool? Paused { get; set; }
}

public sealed class DeploymentStatus : KubeModel
{
    public long? ObservedGeneration { get; set; }
    public int? Replicas { get; set; }
    public int? UpdatedReplicas { get; set; }
    public int? ReadyReplicas { get; set; }
    public int? AvailableReplicas { get; set; }
    public int? UnavailableReplicas { get; set; }
    public List<WorkloadCondition>? Conditions { get; set; }
}

public sealed class WorkloadCondition : KubeModel
{
    public string? Type { get; set; }
    public string? Status { get; set; }
    public string? Reason { get; set; }
    public string? Message { get; set; }
}

public sealed class ReplicaSet : KubeObject
{
    public ReplicaSetSpec? Spec { get; set; }
    public ReplicaSetStatus? Status { get; set; }
}

public sealed class ReplicaSetSpec : KubeModel
{
    public int? Replicas { get; set; }
    public LabelSelectorSpec? Selector { get; set; }
    public PodTemplateSpec? Template { get; set; }
}

public sealed class ReplicaSetStatus : KubeModel
{
    public int Replicas { get; set; }
    public int? FullyLabeledReplicas { get; set; }
    public int? ReadyReplicas { get; set; }
    public int? AvailableReplicas { get; set; }
    public long? ObservedGeneration { get; set; }
}

/// <summary>autoscaling/v1 Scale, the body of the /scale subresource.</summary>
public sealed class Scale : KubeObject
{
    public ScaleSpec? Spec { get; set; }
    public ScaleStatus? Status { get; set; }
}

public sealed class ScaleSpec : KubeModel
{
    public int? Replicas { get; set; }
}

public sealed class ScaleStatus : KubeModel
{
    public int Replicas { get; set; }

    /// <summary>The label selector in its string form, for example "app=orders".</summary>
    public string? Selector { get; set; }
}
