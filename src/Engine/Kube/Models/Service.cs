using System.Text.Json.Serialization;

namespace KtConnect.Engine.Kube.Models;

/// <summary>A Service. status (load balancer ingress) is not modelled and survives in ExtensionData.</summary>
public sealed class Service : KubeObject
{
    public ServiceSpec? Spec { get; set; }
}

public sealed class ServiceSpec : KubeModel
{
    public List<ServicePort>? Ports { get; set; }
    public Dictionary<string, string>? Selector { get; set; }

    [JsonPropertyName("clusterIP")]
    public string? ClusterIP { get; set; }

    [JsonPropertyName("clusterIPs")]
    public List<string>? ClusterIPs { get; set; }

    /// <summary>ClusterIP, NodePort, LoadBalancer, ExternalName.</summary>
    public string? Type { get; set; }

    public string? ExternalName { get; set; }
    public string? SessionAffinity { get; set; }
}

public sealed class ServicePort : KubeModel
{
    public string? Name { get; set; }
    public string? Protocol { get; set; }
    public int Port { get; set; }
    public IntOrString? TargetPort { get; set; }
    public int? NodePort { get; set; }
}
