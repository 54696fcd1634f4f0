namespace KtConnect.KubeSim.Node;

/// <summary>A container port as the node needs it: the number and "TCP" or "UDP".</summary>
public sealed record ContainerPortLite(int Port, string Protocol = "TCP", string? Name = null);

/// <summary>
/// What the node needs to run one pod, independent of any Kubernetes model: the control plane flattens
/// a Pod (first container) into this. <see cref="Volumes"/> maps a container mount path to its files
/// (file name → bytes), already resolved from ConfigMaps/Secrets and their <c>items</c>.
/// <see cref="Args"/> are the container's args; launchers may read them, none passes them on blindly
/// (the process stands in for the image's entrypoint, which would not understand them), except when
/// <see cref="Command"/> (the container's <c>command</c>) replaces the entrypoint of an application image: then
/// command + args run as the main process. <see cref="Stdin"/>, <see cref="StdinOnce"/> and <see cref="Tty"/> are the
/// container's fields of those names: the main process's stdin stays open for attachers (closed at once otherwise),
/// and with a tty it runs on a pseudo-terminal.
/// </summary>
public sealed record PodSpecLite(
    string Namespace,
    string Name,
    string Image,
    IReadOnlyList<ContainerPortLite> ContainerPorts,
    IReadOnlyDictionary<string, string> Env,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> Volumes,
    IReadOnlyList<string>? Args = null,
    IReadOnlyList<string>? Command = null,
    bool Stdin = false,
    bool StdinOnce = false,
    bool Tty = false)
{
    /// <summary>"namespace/name": how every node call names a pod.</summary>
    public string Key => Namespace + "/" + Name;

    public static PodSpecLite Create(string ns, string name, string image, params int[] ports) =>
        new(ns, name, image, [.. ports.Select(p => new ContainerPortLite(p))],
            new Dictionary<string, string>(), new Dictionary<string, IReadOnlyDictionary<string, byte[]>>());
}

/// <summary>One Service port: what clients dial (<see cref="Port"/>) and where it lands on the pod.</summary>
public sealed record ServicePortLite(int Port, int TargetPort, string Protocol = "TCP", string? Name = null);

/// <summary>
/// A Service as the node programs it. <see cref="Endpoints"/> are the ready pod IPs (the control plane
/// computes them from the selector and readiness). Headless Services (<see cref="Headless"/>, no
/// ClusterIP) get DNS records for their endpoints and no DNAT.
/// </summary>
public sealed record ServiceLite(
    string Namespace,
    string Name,
    string? ClusterIp,
    IReadOnlyList<ServicePortLite> Ports,
    IReadOnlyList<string> Endpoints,
    bool Headless = false)
{
    public string DnsName(string clusterDomain) => $"{Name}.{Namespace}.svc.{clusterDomain}";
}

/// <summary>What the node reports about a running pod.</summary>
public sealed record SimPodInfo(string Key, string Ip, string NetNsName, string PodDirectory, int ProcessId, string Launcher);
