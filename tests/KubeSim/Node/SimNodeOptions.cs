using KtConnect.KubeSim.Images;

namespace KtConnect.KubeSim.Node;

/// <summary>The node's address plan and where it keeps its files. Every default can be overridden.</summary>
public sealed class SimNodeOptions
{
    /// <summary>Where the node writes state.json, pod directories, DNS files; a fresh temp dir when null.</summary>
    public string? StateDirectory { get; init; }

    /// <summary>The cluster's pod range (informational; what a control plane reports as the cluster CIDR).</summary>
    public string ClusterPodCidr { get; init; } = "10.244.0.0/16";

    /// <summary>This node's share of the pod range; its first address is the pods' gateway.</summary>
    public string NodePodCidr { get; init; } = "10.244.0.0/24";

    public string ServiceCidr { get; init; } = "10.96.0.0/16";

    /// <summary>Answered by dnsmasq in the node namespace; never programmed as a DNAT Service.</summary>
    public string ClusterDnsIp { get; init; } = "10.96.0.10";

    public string ClusterDomain { get; init; } = "cluster.local";

    /// <summary>Names outside the cluster domain the cluster DNS answers (name → IPv4), as a CoreDNS stub domain would.</summary>
    public IReadOnlyDictionary<string, string> ClusterDnsHostRecords { get; init; } = new Dictionary<string, string>();

    /// <summary>/30 links between laptop namespaces and the root namespace are carved from here, avoiding
    /// every prefix the root namespace already has an address or route in.</summary>
    public string LaptopLinkRange { get; init; } = "172.31.240.0/20";

    /// <summary>Which process runs for which image; <see cref="ImageCatalog"/> by default.</summary>
    public IImageCatalog? Images { get; init; }

    /// <summary>How long <see cref="SimNode.WaitPodReadyAsync"/> waits for a pod's ports.</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Between SIGTERM and SIGKILL when a pod is deleted.</summary>
    public TimeSpan DeleteGracePeriod { get; init; } = TimeSpan.FromSeconds(2);
}
