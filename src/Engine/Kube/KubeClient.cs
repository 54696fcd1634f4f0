using System.Text;
using System.Text.Json;
using KtConnect.Engine.Kube.Models;
using Microsoft.Extensions.Logging;

namespace KtConnect.Engine.Kube;

/// <summary>
/// The Kubernetes REST client: typed resource clients, cluster time, pod port-forward and exec. One instance per
/// API server; thread-safe; dispose it to close its connections.
/// </summary>
public sealed class KubeClient : IDisposable
{
    /// <summary>Pass as the namespace of a list or watch to cover every namespace.</summary>
    public const string AllNamespaces = "";

    private readonly KubeWebSockets _webSockets;

    public KubeClient(KubeClientConfiguration configuration, ILogger? logger = null, KubeClientOptions? options = null)
        : this(configuration, RestHandler(configuration), logger, options)
    {
    }

    private static HttpMessageHandler RestHandler(KubeClientConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        HttpMessageHandler handler = configuration.CreateHandler();
        // Over HTTP/2 every watch holds a stream; with one connection the server's stream limit would make further
        // requests queue behind long-running watches.
        if (handler is SocketsHttpHandler sockets) sockets.EnableMultipleHttp2Connections = true;
        return handler;
    }

    /// <summary>For tests: requests go through <paramref name="handler"/>; WebSockets still use the configuration's handler.</summary>
    internal KubeClient(KubeClientConfiguration configuration, HttpMessageHandler handler, ILogger? logger, KubeClientOptions? options)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(handler);
        Configuration = configuration;
        Logger = logger;
        Options = options ?? new KubeClientOptions();
        Clock = new ClusterClock();
        Transport = new KubeTransport(configuration, handler, Options, Clock, logger);
        _webSockets = new KubeWebSockets(Transport, logger);
        Pods = new ResourceClient<Pod>(this, KubeResources.Pods);
        Services = new ResourceClient<Service>(this, KubeResources.Services);
        ConfigMaps = new ResourceClient<ConfigMap>(this, KubeResources.ConfigMaps);
        Secrets = new ResourceClient<Secret>(this, KubeResources.Secrets);
        Namespaces = new ResourceClient<Namespace>(this, KubeResources.Namespaces);
        Nodes = new ResourceClient<Node>(this, KubeResources.Nodes);
        Deployments = new ScalableResourceClient<Deployment>(this, KubeResources.Deployments);
        ReplicaSets = new ScalableResourceClient<ReplicaSet>(this, KubeResources.ReplicaSets);
        EndpointSlices = new ResourceClient<EndpointSlice>(this, KubeResources.EndpointSlices);
        Ingresses = new ResourceClient<Ingress>(this, KubeResources.Ingresses);
        Leases = new ResourceClient<Lease>(this, KubeResources.Leases);
        SelfSubjectAccessReviews = new ResourceClient<SelfSubjectAccessReview>(this, KubeResources.SelfSubjectAccessReviews);
    }

    public KubeClientConfiguration Configuration { get; }
    public KubeClientOptions Options { get; }

    /// <summary>The API server's time, learned from the Date header of every response.</summary>
    public ClusterClock Clock { get; }

    internal ILogger? Logger { get; }
    internal KubeTransport Transport { get; }

    public ResourceClient<Pod> Pods { get; }
    public ResourceClient<Service> Services { get; }
    public ResourceClient<ConfigMap> ConfigMaps { get; }

    /// <summary>Secrets (KtConnect only reads them, e.g. image pull secrets).</summary>
    public ResourceClient<Secret> Secrets { get; }

    public ResourceClient<Namespace> Namespaces { get; }
    public ResourceClient<Node> Nodes { get; }
    public ScalableResourceClient<Deployment> Deployments { get; }
    public ScalableResourceClient<ReplicaSet> ReplicaSets { get; }
    public ResourceClient<EndpointSlice> EndpointSlices { get; }
    public ResourceClient<Ingress> Ingresses { get; }
    public ResourceClient<Lease> Leases { get; }
    public ResourceClient<SelfSubjectAccessReview> SelfSubjectAccessReviews { get; }

    /// <summary>A client for any other resource, given its descriptor.</summary>
    public ResourceClient<T> For<T>(ResourceDescriptor<T> resource) where T : KubeObject => new(this, resource);

    /// <summary>GET of any path (e.g. "/version", "/healthz") returning the body as text.</summary>
    public async Task<string> GetRawAsync(string pathAndQuery, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathAndQuery);
        if (pathAndQuery[0] != '/') pathAndQuery = "/" + pathAndQuery;
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Get, pathAndQuery, Transport.Info("get", pathAndQuery, null, null)),
            cancellationToken).ConfigureAwait(false);
        return Encoding.UTF8.GetString(body);
    }

    /// <summary>The server's gitVersion (v1.20.2), from /version.</summary>
    public async Task<string> GetServerVersionAsync(CancellationToken cancellationToken = default)
    {
        var text = await GetRawAsync("/version", cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.TryGetProperty("gitVersion", out var v) ? v.GetString() ?? "" : "";
        }
        catch (JsonException ex)
        {
            throw new KubeProtocolException("KubeUnexpectedResponse", $"/version of {Transport.ServerName} is not JSON: {ex.Message}", ex, Transport.ServerName);
        }
    }

    /// <summary>
    /// Asks the server whether the current user may do <paramref name="verb"/> on a resource (SelfSubjectAccessReview).
    /// </summary>
    public async Task<SubjectAccessReviewStatus> CanIAsync(string verb, string resource, string group = "", string? ns = null,
        string? name = null, string? subresource = null, CancellationToken cancellationToken = default)
    {
        var review = new SelfSubjectAccessReview
        {
            Spec = new SelfSubjectAccessReviewSpec
            {
                ResourceAttributes = new ResourceAttributes
                {
                    Verb = verb,
                    Resource = resource,
                    Group = group,
                    Namespace = ns ?? Configuration.Namespace,
                    Name = name,
                    Subresource = subresource,
                },
            },
        };
        var answer = await SelfSubjectAccessReviews.CreateAsync(review, null, cancellationToken).ConfigureAwait(false);
        return answer.Status ?? new SubjectAccessReviewStatus();
    }

    /// <summary>
    /// Opens one port-forward connection to <paramref name="port"/> of a pod: a WebSocket (v4.channel.k8s.io)
    /// exposed as a duplex Stream. Open one per TCP connection.
    /// </summary>
    public Task<PortForwardStream> PortForwardAsync(string pod, int port, string? ns = null, CancellationToken cancellationToken = default) =>
        _webSockets.PortForwardAsync(pod, port, ns ?? Configuration.Namespace, cancellationToken);

    /// <summary>
    /// Runs a command in a pod, streaming: stdin is copied in (and half-closed at its end on v5), stdout and
    /// stderr are copied out as they arrive. Returns the exit code. A command that cannot start throws
    /// <see cref="KubeExecException"/>.
    /// </summary>
    public Task<ExecResult> ExecAsync(ExecRequest request, Stream? stdin = null, Stream? stdout = null, Stream? stderr = null,
        CancellationToken cancellationToken = default) =>
        _webSockets.ExecAsync(request, stdin, stdout, stderr, cancellationToken);

    /// <summary>Runs a command in a pod and captures its output (UTF-8) and exit code.</summary>
    public async Task<ExecOutput> RunAsync(string pod, IReadOnlyList<string> command, string? ns = null, string? container = null,
        byte[]? stdin = null, CancellationToken cancellationToken = default)
    {
        using var stdout = new MemoryStream();
        using var stderr = new MemoryStream();
        using var input = stdin is null ? null : new MemoryStream(stdin, writable: false);
        var request = new ExecRequest(pod, command) { Namespace = ns, Container = container, Stdin = stdin is not null };
        var result = await ExecAsync(request, input, stdout, stderr, cancellationToken).ConfigureAwait(false);
        return new ExecOutput(result, Encoding.UTF8.GetString(stdout.GetBuffer(), 0, (int)stdout.Length),
            Encoding.UTF8.GetString(stderr.GetBuffer(), 0, (int)stderr.Length));
    }

    public void Dispose()
    {
        _webSockets.Dispose();
        Transport.Dispose();
    }
}
