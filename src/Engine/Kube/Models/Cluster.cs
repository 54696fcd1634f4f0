using System.Text.Json.Serialization;

namespace KtConnect.Engine.Kube.Models;

public sealed class Namespace : KubeObject
{
    public NamespaceSpec? Spec { get; set; }
    public NamespaceStatus? Status { get; set; }
}

public sealed class NamespaceSpec : KubeModel
{
    public List<string>? Finalizers { get; set; }
}

public sealed class NamespaceStatus : KubeModel
{
    /// <summary>Active or Terminating.</summary>
    public string? Phase { get; set; }
}

/// <summary>A Node. capacity, nodeInfo, images are not modelled and survive in ExtensionData.</summary>
public sealed class Node : KubeObject
{
    public NodeSpec? Spec { get; set; }
    public NodeStatus? Status { get; set; }
}

public sealed class NodeSpec : KubeModel
{
    [JsonPropertyName("podCIDR")]
    public string? PodCIDR { get; set; }

    [JsonPropertyName("podCIDRs")]
    public List<string>? PodCIDRs { get; set; }

    public bool? Unschedulable { get; set; }
}

public sealed class NodeStatus : KubeModel
{
    public List<NodeAddress>? Addresses { get; set; }
    public List<WorkloadCondition>? Conditions { get; set; }
}

public sealed class NodeAddress : KubeModel
{
    /// <summary>InternalIP, ExternalIP, Hostname, ...</summary>
    public string? Type { get; set; }
    public string? Address { get; set; }
}
