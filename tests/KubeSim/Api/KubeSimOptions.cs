using System.Net;
using KtConnect.KubeSim.Streaming;

namespace KtConnect.KubeSim.Api;

/// <summary>How a <see cref="KubeSimServer"/> is started. Every property has a usable default.</summary>
public sealed class KubeSimOptions
{
    /// <summary>Address to listen on (127.0.0.1 by default; port 0 picks a free port).</summary>
    public IPAddress ListenAddress { get; init; } = IPAddress.Loopback;

    public int Port { get; init; }

    /// <summary>The bearer token with every right (system:masters). Random when not given.</summary>
    public string AdminToken { get; init; } = "kubesim-admin-" + Guid.NewGuid().ToString("N");

    /// <summary>
    /// A path the API lives under, e.g. "/k8s/clusters/c1" (no trailing slash): a server URL with a path prefix,
    /// as behind Rancher-style proxies. Requests outside it get the plain 404.
    /// </summary>
    public string PathPrefix { get; init; } = "";

    /// <summary>More bearer tokens that act as the admin (for exec plugins, OIDC id-tokens, token files in tests).</summary>
    public IReadOnlyList<string> ExtraAdminTokens { get; init; } = [];

    /// <summary>
    /// Basic-auth users (user → password) that act as the admin. (The real v1.20 server no longer accepts basic
    /// auth; this exists so clients can prove they send it.)
    /// </summary>
    public IReadOnlyDictionary<string, string> BasicAuthUsers { get; init; } = new Dictionary<string, string>();

    /// <summary>Further bearer tokens: token → user name. These users are authenticated but may do nothing (403, like 4h).</summary>
    public IReadOnlyDictionary<string, string> UnprivilegedTokens { get; init; } = new Dictionary<string, string>();

    /// <summary>Extra names (DNS or IP) for the server certificate besides 127.0.0.1, ::1 and localhost.</summary>
    public IReadOnlyList<string> ExtraCertificateNames { get; init; } = [];

    /// <summary>Service ClusterIP range. The recorded cluster used 10.96.0.0/16 (fixture 4j).</summary>
    public string ServiceCidr { get; init; } = "10.96.0.0/16";

    /// <summary>How many store events watches can replay; older resourceVersions get 410 Expired.</summary>
    public int WatchHistory { get; init; } = 10_000;

    /// <summary>Watch duration when the client gives no timeoutSeconds (the real server picks 30-60 min).</summary>
    public TimeSpan DefaultWatchTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>How long before a watch's timeout its BOOKMARK is sent (about 2 s on the real server, fixture 5b).</summary>
    public TimeSpan BookmarkBeforeTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Exec negotiates v5.channel.k8s.io when offered (stdin close via channel 255). Off by default because the
    /// recorded v1.20 server does not know v5 and picks v4 (fixture 7a).
    /// </summary>
    public bool EnableExecV5 { get; init; }

    /// <summary>Seed the objects a fresh cluster has (namespaces, the kubernetes Service and Endpoints, a node).</summary>
    public bool SeedSystemObjects { get; init; } = true;

    /// <summary>
    /// Bind new pods to the node and report them Running with a pod IP (a stand-in scheduler and kubelet,
    /// <see cref="Controllers.PodLifecycleController"/>). Turn off when a test drives pod status itself.
    /// </summary>
    public bool RunPods { get; init; } = true;

    /// <summary>The node name seeded and used as nodeName.</summary>
    public string NodeName { get; init; } = "kubesim-node";

    /// <summary>Where port-forward connections go. Default: <see cref="LocalPodNetwork"/>.</summary>
    public IPodNetwork? PodNetwork { get; init; }

    /// <summary>Where exec runs. Default: <see cref="LocalProcessExec"/> (the command as a local process).</summary>
    public IPodExec? PodExec { get; init; }

    /// <summary>Where attach joins a main process. Default: none (every attach is the kubelet's "container not found").</summary>
    public IPodAttach? PodAttach { get; init; }

    /// <summary>Clock for timestamps and the Date header's companion fields (creationTimestamp etc.).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}
