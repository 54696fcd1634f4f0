using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Streaming;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// The simulated kube-apiserver, in-process: HTTPS (Kestrel, HTTP/1.1 and HTTP/2) on <see cref="KubeSimOptions.ListenAddress"/>
/// with a generated CA, bearer-token authentication, the REST API over an <see cref="ObjectStore"/>, watch,
/// port-forward and exec. Start with <see cref="StartAsync"/>; dispose to stop.
/// </summary>
public sealed class KubeSimServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerCertificates _certificates;
    private Controllers.PodLifecycleController? _pods;

    private KubeSimServer(WebApplication app, ServerCertificates certificates, ObjectStore store, KubeSimOptions options, KubeSimHooks hooks,
        IPodNetwork network, IPodExec exec, IPodAttach attach)
    {
        _app = app;
        _certificates = certificates;
        Store = store;
        Options = options;
        Hooks = hooks;
        PodNetwork = network;
        PodExec = exec;
        PodAttach = attach;
    }

    public KubeSimOptions Options { get; }

    /// <summary>The objects of the cluster: seed and read them directly (bypassing HTTP).</summary>
    public ObjectStore Store { get; }

    public KubeSimHooks Hooks { get; }

    /// <summary>Where port-forwards go (the default <see cref="LocalPodNetwork"/> unless the options gave one).</summary>
    public IPodNetwork PodNetwork { get; }

    public IPodExec PodExec { get; }

    public IPodAttach PodAttach { get; }

    /// <summary>https://127.0.0.1:port (no path; use it as HttpClient.BaseAddress when there is no path prefix).</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The URL kubeconfig's cluster.server holds: <see cref="BaseAddress"/> plus <see cref="KubeSimOptions.PathPrefix"/>.</summary>
    public string ServerUrl => BaseAddress.ToString().TrimEnd('/') + Options.PathPrefix;

    /// <summary>
    /// Accepts <paramref name="token"/> from now on, as the admin or (when <paramref name="admin"/> is false) as
    /// <paramref name="user"/> without rights. <see cref="RevokeToken"/> makes it a 401 again.
    /// </summary>
    public void AddToken(string token, bool admin = true, string user = "kubesim-admin") =>
        Hooks.Tokens[token] = admin ? (ApiHandler.AdminUser, ApiHandler.AdminGroups) : (user, ApiHandler.UserGroups);

    public void RevokeToken(string token) => Hooks.Tokens.TryRemove(token, out _);

    public string AdminToken => Options.AdminToken;

    /// <summary>The CA that signed the server certificate, as PEM.</summary>
    public string CaCertificatePem => _certificates.CaPem;

    public System.Security.Cryptography.X509Certificates.X509Certificate2 CaCertificate => _certificates.CaCertificate;

    public static async Task<KubeSimServer> StartAsync(KubeSimOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new KubeSimOptions();
        var certificates = ServerCertificates.Create(options.ExtraCertificateNames, options.TimeProvider);
        var store = new ObjectStore(options.TimeProvider, options.WatchHistory, options.ServiceCidr);
        var hooks = new KubeSimHooks();
        hooks.Tokens[options.AdminToken] = (ApiHandler.AdminUser, ApiHandler.AdminGroups);
        foreach (var t in options.ExtraAdminTokens) hooks.Tokens[t] = (ApiHandler.AdminUser, ApiHandler.AdminGroups);
        foreach (var (t, user) in options.UnprivilegedTokens) hooks.Tokens[t] = (user, ApiHandler.UserGroups);
        var network = options.PodNetwork ?? new LocalPodNetwork();
        var exec = options.PodExec ?? new LocalProcessExec();
        var attach = options.PodAttach ?? new NoMainProcessAttach();

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(KubeSimServer).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        builder.Services.AddRoutingCore();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = null;
            k.Listen(options.ListenAddress, options.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
                {
                    ServerCertificate = certificates.ServerCertificate,
                    // Like the apiserver: ask for a client certificate, accept any at the TLS layer, verify it in the authenticator (401).
                    ClientCertificateMode = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate,
                    ClientCertificateValidation = (_, _, _) => true,
                    CheckCertificateRevocation = false,
                });
            });
        });
        var app = builder.Build();
        var server = new KubeSimServer(app, certificates, store, options, hooks, network, exec, attach);
        var handler = new ApiHandler(store, options, hooks, network, exec, attach, () => $"{server.BaseAddress.Host}:{server.BaseAddress.Port}",
            certificates.Verifies);
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
        app.Run(handler.HandleAsync);

        if (options.SeedSystemObjects) server.SeedSystemObjects();
        // A fresh cluster's watch cache does not reach back to resourceVersion 1 (fixture 5f).
        store.Compact();
        if (options.RunPods) server._pods = new Controllers.PodLifecycleController(store, options.NodeName, "10.255.255.1");

        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var port = new Uri(address).Port;
        var host = options.ListenAddress.Equals(IPAddress.Any) ? "127.0.0.1"
            : options.ListenAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{options.ListenAddress}]"
            : options.ListenAddress.ToString();
        server.BaseAddress = new Uri($"https://{host}:{port}");
        return server;
    }

    /// <summary>
    /// Writes a kubeconfig for the admin token (certificate-authority-data, token, a context with the namespace)
    /// and returns its path. <paramref name="path"/> defaults to a new file in the temp directory.
    /// </summary>
    public string WriteKubeconfig(string? path = null, string @namespace = "default", string contextName = "kubesim", string? token = null,
        (string CertificatePem, string KeyPem)? clientCertificate = null)
    {
        path ??= Path.Combine(Path.GetTempPath(), "kubesim-" + Guid.NewGuid().ToString("N")[..8] + ".kubeconfig");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        File.WriteAllText(path, KubeconfigText(@namespace, contextName, token, clientCertificate));
        return path;
    }

    /// <summary>
    /// A client certificate for <paramref name="user"/> signed by the cluster CA (PEM texts); with the group
    /// system:masters it is the admin. ECDSA P-256 by default, RSA 2048 on request.
    /// </summary>
    public (string CertificatePem, string KeyPem) IssueClientCertificate(string user, IEnumerable<string>? groups = null, bool rsa = false) =>
        _certificates.IssueClientCertificate(user, groups ?? ["system:masters"], rsa, Options.TimeProvider);

    /// <summary>The kubeconfig YAML <see cref="WriteKubeconfig"/> writes.</summary>
    public string KubeconfigText(string @namespace = "default", string contextName = "kubesim", string? token = null,
        (string CertificatePem, string KeyPem)? clientCertificate = null)
    {
        var ca = Convert.ToBase64String(Encoding.ASCII.GetBytes(CaCertificatePem));
        var credential = clientCertificate is { } cc
            ? $"client-certificate-data: {Convert.ToBase64String(Encoding.ASCII.GetBytes(cc.CertificatePem))}\n    client-key-data: {Convert.ToBase64String(Encoding.ASCII.GetBytes(cc.KeyPem))}"
            : $"token: {token ?? AdminToken}";
        return $$"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: {{contextName}}
              cluster:
                server: {{ServerUrl}}
                certificate-authority-data: {{ca}}
            users:
            - name: {{contextName}}-admin
              user:
                {{credential}}
            contexts:
            - name: {{contextName}}
              context:
                cluster: {{contextName}}
                user: {{contextName}}-admin
                namespace: {{@namespace}}
            current-context: {{contextName}}
            preferences: {}

            """;
    }

    /// <summary>Creates (or replaces) an object given as JSON text or node, finding its resource from apiVersion and kind. Keeps status.</summary>
    public JsonObject Apply(string json) => Apply((JsonObject)JsonNode.Parse(json)!);

    /// <inheritdoc cref="Apply(string)"/>
    public JsonObject Apply(JsonObject obj)
    {
        var type = ResourceTypes.FindByKind(obj["apiVersion"]?.GetValue<string>() ?? "", obj["kind"]?.GetValue<string>() ?? "")
            ?? throw new ArgumentException($"KubeSim does not serve {obj["apiVersion"]} {obj["kind"]}", nameof(obj));
        var ns = obj["metadata"]?["namespace"]?.GetValue<string>();
        var name = obj["metadata"]?["name"]?.GetValue<string>();
        if (name is not null && Store.Get(type, ns, name) is not null)
        {
            var copy = (JsonObject)obj.DeepClone();
            (copy["metadata"] as JsonObject)?.Remove("resourceVersion");
            return Store.Update(type, ns, name, copy, keepStatus: true);
        }
        return Store.Create(type, ns, obj, keepStatus: true);
    }

    private void SeedSystemObjects()
    {
        foreach (var ns in new[] { "default", "kube-system", "kube-public", "kube-node-lease" })
        {
            Store.Create(ResourceTypes.Namespaces, null, new JsonObject { ["metadata"] = new JsonObject { ["name"] = ns } });
        }
        var kubernetesIp = Store.ServiceIps.First;
        Store.Create(ResourceTypes.Services, "default", new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["name"] = "kubernetes",
                ["labels"] = new JsonObject { ["component"] = "apiserver", ["provider"] = "kubernetes" },
            },
            ["spec"] = new JsonObject
            {
                ["ports"] = new JsonArray(new JsonObject { ["name"] = "https", ["protocol"] = "TCP", ["port"] = 443, ["targetPort"] = 6443 }),
                ["clusterIP"] = kubernetesIp,
                ["type"] = "ClusterIP",
                ["sessionAffinity"] = "None",
            },
        });
        Store.Create(ResourceTypes.Endpoints, "default", new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = "kubernetes", ["labels"] = new JsonObject { ["endpointslice.kubernetes.io/skip-mirror"] = "true" } },
            ["subsets"] = new JsonArray(new JsonObject
            {
                ["addresses"] = new JsonArray(new JsonObject { ["ip"] = Options.ListenAddress.Equals(IPAddress.Any) ? "127.0.0.1" : Options.ListenAddress.ToString() }),
                ["ports"] = new JsonArray(new JsonObject { ["name"] = "https", ["port"] = 6443, ["protocol"] = "TCP" }),
            }),
        });
        foreach (var ns in new[] { "default", "kube-system", "kube-public", "kube-node-lease" })
        {
            // What the token controller leaves behind in v1.20: a token Secret per ServiceAccount, referenced by it.
            var secret = Store.Create(ResourceTypes.Secrets, ns, new JsonObject
            {
                ["metadata"] = new JsonObject
                {
                    ["generateName"] = "default-token-",
                    ["annotations"] = new JsonObject { ["kubernetes.io/service-account.name"] = "default" },
                },
                ["type"] = "kubernetes.io/service-account-token",
                ["data"] = new JsonObject
                {
                    ["ca.crt"] = Convert.ToBase64String(Encoding.ASCII.GetBytes(CaCertificatePem)),
                    ["namespace"] = Convert.ToBase64String(Encoding.ASCII.GetBytes(ns)),
                    ["token"] = Convert.ToBase64String(Encoding.ASCII.GetBytes("kubesim-unprivileged-" + Guid.NewGuid().ToString("N"))),
                },
            });
            Store.Create(ResourceTypes.ServiceAccounts, ns, new JsonObject
            {
                ["metadata"] = new JsonObject { ["name"] = "default" },
                ["secrets"] = new JsonArray(new JsonObject { ["name"] = secret["metadata"]!["name"]!.DeepClone() }),
            });
        }
        var now = Store.Timestamp();
        JsonObject Capacity() => new()
        {
            ["cpu"] = "2",
            ["ephemeral-storage"] = "264212084Ki",
            ["hugepages-1Gi"] = "0",
            ["hugepages-2Mi"] = "0",
            ["memory"] = "24684092Ki",
            ["pods"] = "110",
        };
        JsonObject NodeCondition(string type, string status, string reason, string message) => new()
        {
            ["type"] = type,
            ["status"] = status,
            ["lastHeartbeatTime"] = now,
            ["lastTransitionTime"] = now,
            ["reason"] = reason,
            ["message"] = message,
        };
        Store.Create(ResourceTypes.Nodes, null, new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["name"] = Options.NodeName,
                ["labels"] = new JsonObject
                {
                    ["beta.kubernetes.io/arch"] = "amd64",
                    ["beta.kubernetes.io/os"] = "linux",
                    ["kubernetes.io/arch"] = "amd64",
                    ["kubernetes.io/hostname"] = Options.NodeName,
                    ["kubernetes.io/os"] = "linux",
                },
                ["annotations"] = new JsonObject
                {
                    ["node.alpha.kubernetes.io/ttl"] = "0",
                    ["volumes.kubernetes.io/controller-managed-attach-detach"] = "true",
                },
            },
            ["spec"] = new JsonObject(),
            ["status"] = new JsonObject
            {
                ["capacity"] = Capacity(),
                ["allocatable"] = Capacity(),
                ["conditions"] = new JsonArray(
                    NodeCondition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    NodeCondition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    NodeCondition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    NodeCondition("Ready", "True", "KubeletReady", "kubelet is posting ready status")),
                ["addresses"] = new JsonArray(
                    new JsonObject { ["type"] = "InternalIP", ["address"] = "10.255.255.1" },
                    new JsonObject { ["type"] = "Hostname", ["address"] = Options.NodeName }),
                ["daemonEndpoints"] = new JsonObject { ["kubeletEndpoint"] = new JsonObject { ["Port"] = 10250 } },
                ["nodeInfo"] = new JsonObject
                {
                    ["machineID"] = "00000000000000000000000000000000",
                    ["systemUUID"] = "00000000-0000-0000-0000-000000000000",
                    ["bootID"] = Guid.NewGuid().ToString(),
                    ["kernelVersion"] = Environment.OSVersion.Version.ToString(),
                    ["osImage"] = "KubeSim",
                    ["containerRuntimeVersion"] = "kubesim://1.0.0",
                    ["kubeletVersion"] = "v1.20.2",
                    ["kubeProxyVersion"] = "v1.20.2",
                    ["operatingSystem"] = "linux",
                    ["architecture"] = "amd64",
                },
                ["images"] = new JsonArray(),
            },
        }, keepStatus: true);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(cts.Token).ConfigureAwait(false);
        }
        finally
        {
            if (_pods is not null) await _pods.DisposeAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
            _certificates.Dispose();
        }
    }
}
