using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Controllers;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;
using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Cluster;

/// <summary>How a <see cref="SimCluster"/> starts. Every property has a usable default.</summary>
public sealed class SimClusterOptions
{
    /// <summary>Where the node keeps state.json, pod directories and DNS files (a temp directory when null).</summary>
    public string? StateDirectory { get; init; }

    /// <summary>The API server's port (0: a free one).</summary>
    public int Port { get; init; }

    /// <summary>The admin bearer token (random when null).</summary>
    public string? AdminToken { get; init; }

    /// <summary>Which process each image runs (default <see cref="Images.ImageCatalog"/>).</summary>
    public IImageCatalog? Images { get; init; }

    /// <summary>How long the node waits for a pod to become ready.</summary>
    public TimeSpan PodReadyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Names outside the cluster domain the cluster DNS answers (name → IPv4), as a CoreDNS stub domain would.</summary>
    public IReadOnlyDictionary<string, string> ClusterDnsHostRecords { get; init; } = new Dictionary<string, string>();

    /// <summary>How long a pod shows ErrImagePull before ImagePullBackOff.</summary>
    public TimeSpan ImagePullBackOffDelay { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// The whole simulated cluster: a <see cref="SimNode"/> (pods as processes, Service DNAT, cluster DNS), a
/// laptop namespace that reaches only the API server, and a <see cref="KubeSimServer"/> listening on the
/// laptop-facing address (reachable from the root namespace too) whose pods run on the node
/// (<see cref="NodeKubeletController"/>), with the deployment, replicaset and endpoints controllers
/// (<see cref="WorkloadControllers"/>) and the node's Services kept in step with the Services and Endpoints.
/// A kube-dns Service (kube-system, ClusterIP = the node's DNS address) is seeded. Dispose stops everything and
/// removes every namespace, device, process and file the node made. Needs Linux and root.
/// </summary>
public sealed class SimCluster : IAsyncDisposable
{
    private readonly ConcurrentQueue<Exception> _failures = new();
    private readonly SemaphoreSlim _syncLock = new(1, 1);
    private NodeKubeletController? _kubelet;
    private WorkloadControllers? _controllers;
    private string? _lastServices;
    private int _disposed;

    private SimCluster(SimNode node, SimLaptop laptop)
    {
        Node = node;
        Laptop = laptop;
    }

    public SimNode Node { get; }

    /// <summary>The laptop namespace: its only route is to <see cref="SimLaptop.ApiServerAddress"/>, where the API server listens.</summary>
    public SimLaptop Laptop { get; }

    public KubeSimServer Server { get; private set; } = null!;

    public ObjectStore Store => Server.Store;

    /// <summary>https://&lt;laptop-facing address&gt;:port, the kubeconfig's server (reachable from the laptop and the root namespace).</summary>
    public string ServerUrl => Server.ServerUrl;

    public string AdminToken => Server.AdminToken;

    /// <summary>Unexpected failures of the controllers and the kubelet (a test asserts this stays empty).</summary>
    public IReadOnlyCollection<Exception> Failures => _failures;

    /// <summary>Throws the first recorded controller failure, if any.</summary>
    public void ThrowIfFailed()
    {
        if (_failures.TryPeek(out var e)) throw new InvalidOperationException("the simulated cluster's controllers failed: " + e.Message, e);
    }

    public static async Task<SimCluster> StartAsync(SimClusterOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new SimClusterOptions();
        var node = await SimNode.StartAsync(new SimNodeOptions
        {
            StateDirectory = options.StateDirectory,
            Images = options.Images,
            ReadyTimeout = options.PodReadyTimeout,
            ClusterDnsHostRecords = options.ClusterDnsHostRecords,
        }, cancellationToken).ConfigureAwait(false);
        SimCluster? cluster = null;
        try
        {
            var laptop = await node.CreateLaptopAsync(cancellationToken).ConfigureAwait(false);
            cluster = new SimCluster(node, laptop);
            var bridge = new NodePodBridge(node);
            var serverOptions = new KubeSimOptions
            {
                ListenAddress = IPAddress.Parse(laptop.ApiServerAddress),
                Port = options.Port,
                AdminToken = options.AdminToken ?? "kubesim-admin-" + Guid.NewGuid().ToString("N"),
                ExtraCertificateNames = [laptop.ApiServerAddress],
                ServiceCidr = node.Options.ServiceCidr,
                RunPods = false,
                PodNetwork = bridge,
                PodExec = bridge,
                PodAttach = bridge,
            };
            cluster.Server = await KubeSimServer.StartAsync(serverOptions, cancellationToken).ConfigureAwait(false);
            cluster.SeedClusterDns();
            // What kt-connect reads to learn the pod range: the node's spec.podCIDR, as the node allocates pod IPs.
            cluster.Store.Mutate(ResourceTypes.Nodes, null, serverOptions.NodeName, n =>
            {
                var spec = ObjectDefaults.Obj(n, "spec");
                spec["podCIDR"] = node.Options.NodePodCidr;
                spec["podCIDRs"] = new JsonArray(node.Options.NodePodCidr);
                return n;
            }, keepStatus: true);
            cluster.Server.Hooks.BeforeRequest = cluster.RefreshPodLogAsync;
            var events = new EventRecorder(cluster.Store, serverOptions.NodeName);
            cluster._kubelet = new NodeKubeletController(cluster.Store, node, serverOptions.NodeName, NodeHostIp, events, cluster._failures)
            {
                ImagePullBackOffDelay = options.ImagePullBackOffDelay,
            };
            cluster._controllers = new WorkloadControllers(cluster.Store, events, cluster._failures, cluster.SyncServicesAsync);
            await cluster.SyncServicesAsync(cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            if (cluster is not null) await cluster.DisposeAsync().ConfigureAwait(false);
            else await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // pods/log answers from Hooks.PodLogs: refresh that entry from the node's container log just before the request
    // is handled (authentication and the 404 for a missing pod stay the API server's). A test that sets its own
    // BeforeRequest replaces this.
    private Task<bool> RefreshPodLogAsync(Microsoft.AspNetCore.Http.HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        if (HttpMethods.IsGet(context.Request.Method) && path.EndsWith("/log", StringComparison.Ordinal)
            && path.Split('/', StringSplitOptions.RemoveEmptyEntries) is ["api", "v1", "namespaces", var ns, "pods", var pod, "log"]
            && Node.GetPod(ns + "/" + pod) is not null)
        {
            try
            {
                Server.Hooks.PodLogs[(ns, pod)] = File.ReadAllText(Node.LogPath(ns + "/" + pod));
            }
            catch (Exception e) when (e is IOException or KtException)
            {
                // The pod went away meanwhile: the handler answers from what it has.
            }
        }
        return Task.FromResult(false);
    }

    /// <summary>The node's InternalIP as the seeded Node object reports it (pods' status.hostIP).</summary>
    public const string NodeHostIp = "10.255.255.1";

    // There is no CoreDNS pod: dnsmasq in the node namespace answers on the DNS address, so the Service has no
    // selector and its Endpoints name that address.
    private void SeedClusterDns()
    {
        var dnsIp = Node.ClusterDnsIp;
        Store.Create(ResourceTypes.Services, "kube-system", new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["name"] = "kube-dns",
                ["labels"] = new JsonObject
                {
                    ["k8s-app"] = "kube-dns",
                    ["kubernetes.io/cluster-service"] = "true",
                    ["kubernetes.io/name"] = "KubeDNS",
                },
            },
            ["spec"] = new JsonObject
            {
                ["clusterIP"] = dnsIp,
                ["ports"] = new JsonArray(
                    new JsonObject { ["name"] = "dns", ["port"] = 53, ["protocol"] = "UDP", ["targetPort"] = 53 },
                    new JsonObject { ["name"] = "dns-tcp", ["port"] = 53, ["protocol"] = "TCP", ["targetPort"] = 53 }),
                ["type"] = "ClusterIP",
            },
        });
        Store.Create(ResourceTypes.Endpoints, "kube-system", new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = "kube-dns", ["labels"] = new JsonObject { ["k8s-app"] = "kube-dns" } },
            ["subsets"] = new JsonArray(new JsonObject
            {
                ["addresses"] = new JsonArray(new JsonObject { ["ip"] = dnsIp }),
                ["ports"] = new JsonArray(
                    new JsonObject { ["name"] = "dns", ["port"] = 53, ["protocol"] = "UDP" },
                    new JsonObject { ["name"] = "dns-tcp", ["port"] = 53, ["protocol"] = "TCP" }),
            }),
        });
    }

    /// <summary>Pushes every Service with its ready endpoints to the node when that table changed (DNAT + DNS).</summary>
    public async Task SyncServicesAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        await _syncLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var table = ServiceTable.Build(Store);
            var fingerprint = ServiceTable.Fingerprint(table);
            if (fingerprint == _lastServices) return;
            await Node.SetServicesAsync(table, cancellationToken).ConfigureAwait(false);
            _lastServices = fingerprint;
        }
        finally
        {
            _syncLock.Release();
        }
    }

    /// <summary>Writes a kubeconfig for the admin (server = <see cref="ServerUrl"/>) and returns its path.</summary>
    public string WriteKubeconfig(string? path = null, string @namespace = "default") => Server.WriteKubeconfig(path, @namespace);

    /// <summary>An HttpClient for the API (BaseAddress = <see cref="ServerUrl"/>, admin bearer token, trusts only the cluster CA).</summary>
    public HttpClient CreateHttpClient()
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = RawPortForward.TrustOnly(Server.CaCertificate);
        var client = new HttpClient(handler) { BaseAddress = new Uri(ServerUrl.TrimEnd('/') + "/") };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
        return client;
    }

    /// <summary>Opens a port-forward to <paramref name="port"/> of a pod through the API server (v4.channel.k8s.io).</summary>
    public Task<RawPortForward> PortForwardAsync(string @namespace, string pod, int port, CancellationToken cancellationToken = default) =>
        RawPortForward.OpenAsync(ServerUrl, AdminToken, Server.CaCertificate, @namespace, pod, port, cancellationToken);

    /// <summary>Runs a command in a pod through the API server's exec (v4.channel.k8s.io), as kubectl exec does.</summary>
    public Task<RawExecResult> ExecThroughApiAsync(string @namespace, string pod, IReadOnlyList<string> command, CancellationToken cancellationToken = default) =>
        RawExec.RunAsync(ServerUrl, AdminToken, Server.CaCertificate, @namespace, pod, command, cancellationToken);

    /// <summary>A snapshot of the namespaced objects (see <see cref="ClusterSnapshot"/>).</summary>
    public ClusterSnapshot Snapshot(string? @namespace = null, bool includeEvents = false) => ClusterSnapshot.Take(Store, @namespace, includeEvents);

    /// <summary>Creates or replaces an object given as JSON (status kept as given).</summary>
    public JsonObject Apply(string json) => Server.Apply(json);

    /// <summary>Creates or replaces every object of a manifest (JSON, a List, or YAML documents; see <see cref="Manifests"/>).</summary>
    public IReadOnlyList<JsonObject> ApplyManifest(string text) => [.. Manifests.Parse(text).Select(Server.Apply)];

    /// <summary>Polls <paramref name="condition"/> on the object until it holds or <paramref name="timeout"/> passes (then throws with the last state).</summary>
    public async Task<JsonObject?> WaitForAsync(ResourceType type, string? ns, string name, Func<JsonObject?, bool> condition, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        JsonObject? obj = null;
        try
        {
            await WaitUntilAsync(() => condition(obj = Store.Get(type, ns, name)), $"{type.Kind} {ns}/{name} to reach the expected state", timeout,
                cancellationToken).ConfigureAwait(false);
            return obj;
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message} Last: {obj?.ToJsonString() ?? "(absent)"}", e);
        }
    }

    /// <summary>
    /// <see cref="Wait.UntilAsync(Func{bool}, string, TimeSpan?, TimeSpan?, CancellationToken)"/> (60 s by default, every 100 ms),
    /// which also ends as soon as the cluster's node or controllers have failed.
    /// </summary>
    public Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Wait.UntilAsync(() =>
        {
            if (condition()) return true;
            ThrowIfFailed();
            return false;
        }, what, timeout ?? TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100), cancellationToken);

    /// <summary>The pods of a namespace matching a label selector ("app=echo").</summary>
    public IReadOnlyList<JsonObject> Pods(string @namespace, string? labelSelector = null) =>
        Store.List(ResourceTypes.Pods, @namespace, labelSelector is null ? null : LabelSelector.Parse(labelSelector)).Items;

    /// <summary>Runs a command inside a pod's network namespace with its environment (the pod must run on the node).</summary>
    public Task<ProcessResult> RunInPodAsync(string @namespace, string pod, IReadOnlyList<string> argv, string? stdin = null, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default) =>
        Node.RunInPodAsync(@namespace + "/" + pod, argv, stdin, timeout, cancellationToken);

    /// <summary>Runs a command in the laptop namespace.</summary>
    public Task<ProcessResult> RunInLaptopAsync(IReadOnlyList<string> argv, string? stdin = null, TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string?>? environment = null, CancellationToken cancellationToken = default) =>
        Laptop.RunAsync(argv, stdin, timeout, environment, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            if (_controllers is not null) await _controllers.DisposeAsync().ConfigureAwait(false);
            if (_kubelet is not null) await _kubelet.DisposeAsync().ConfigureAwait(false);
            if (Server is not null) await Server.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            await Node.DisposeAsync().ConfigureAwait(false);
            _syncLock.Dispose();
        }
    }
}
