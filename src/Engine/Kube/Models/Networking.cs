namespace KtConnect.Engine.Kube.Models;

/// <summary>discovery.k8s.io/v1 EndpointSlice (no spec: the fields are top level).</summary>
public sealed class EndpointSlice : KubeObject
{
    /// <summary>IPv4, IPv6 or FQDN.</summary>
    public string? AddressType { get; set; }
    public List<Endpoint>? Endpoints { get; set; }
    public List<EndpointPort>? Ports { get; set; }
}

public sealed class Endpoint : KubeModel
{
    public List<string>? Addresses { get; set; }
    public EndpointConditions? Conditions { get; set; }
    public string? Hostname { get; set; }
    public string? NodeName { get; set; }
    public ObjectReference? TargetRef { get; set; }
}

public sealed class EndpointConditions : KubeModel
{
    public bool? Ready { get; set; }
    public bool? Serving { get; set; }
    public bool? Terminating { get; set; }
}

public sealed class EndpointPort : KubeModel
{
    public string? Name { get; set; }
    public string? Protocol { get; set; }
    public int? Port { get; set; }
    public string? AppProtocol { get; set; }
}

/// <summary>networking.k8s.io/v1 Ingress. status and tls are not modelled and survive in ExtensionData.</summary>
public sealed class Ingress : KubeObject
{
    public IngressSpec? Spec { get; set; }
}

public sealed class IngressSpec : KubeModel
{
    public string? IngressClassName { get; set; }
    public IngressBackend? DefaultBackend { get; set; }
    public List<IngressRule>? Rules { get; set; }
}

public sealed class IngressRule : KubeModel
{
    public string? Host { get; set; }
    public HttpIngressRuleValue? Http { get; set; }
}

public sealed class HttpIngressRuleValue : KubeModel
{
    public List<HttpIngressPath> Paths { get; set; } = [];
}

public sealed class HttpIngressPath : KubeModel
{
    public string? Path { get; set; }

    /// <summary>Exact, Prefix, ImplementationSpecific.</summary>
    public string? PathType { get; set; }

    public IngressBackend? Backend { get; set; }
}

public sealed class IngressBackend : KubeModel
{
    public IngressServiceBackend? Service { get; set; }
}

public sealed class IngressServiceBackend : KubeModel
{
    public string? Name { get; set; }
    public ServiceBackendPort? Port { get; set; }
}

public sealed class ServiceBackendPort : KubeModel
{
    public string? Name { get; set; }
    public int? Number { get; set; }
}
