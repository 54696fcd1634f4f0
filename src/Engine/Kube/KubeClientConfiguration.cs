using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using KtConnect.Engine.Kube.Config;

namespace KtConnect.Engine.Kube;

/// <summary>
/// Everything the REST client needs to talk to one API server, resolved from a kubeconfig context or the
/// in-cluster environment (see <c>KubeConfigLoader</c>). The REST, watch, port-forward and exec code uses only
/// <see cref="Server"/>, <see cref="Namespace"/>, <see cref="CreateHandler"/> and <see cref="Credentials"/>.
/// </summary>
public sealed class KubeClientConfiguration
{
    /// <summary>API server URL. A path prefix (https://host/k8s/clusters/c-1) is kept; API paths are appended to it.</summary>
    public required Uri Server { get; init; }

    /// <summary>The kubeconfig context this came from (or "in-cluster"), for error messages.</summary>
    public string ContextName { get; init; } = "";

    /// <summary>The cluster entry's name, for error messages.</summary>
    public string ClusterName { get; init; } = "";

    /// <summary>The file the context came from, for error messages.</summary>
    public string? SourceFile { get; init; }

    /// <summary>The context's namespace, or "default".</summary>
    public string Namespace { get; init; } = "default";

    /// <summary>Name used for SNI and certificate checking instead of the URL's host.</summary>
    public string? TlsServerName { get; init; }

    public bool InsecureSkipTlsVerify { get; init; }

    /// <summary>Trusted roots for the server's certificate; null means the system store.</summary>
    public X509Certificate2Collection? CertificateAuthorities { get; init; }

    /// <summary>proxy-url (http, https or socks5); null means the environment's proxy settings.</summary>
    public Uri? Proxy { get; init; }

    public IKubeCredentials Credentials { get; init; } = AnonymousCredentials.Instance;

    /// <summary>
    /// A handler with this configuration's TLS, client certificate and proxy settings. Used for plain
    /// requests and, through an HttpMessageInvoker, for WebSocket upgrades (port-forward, exec).
    /// The client certificate is asked of <see cref="Credentials"/> at every TLS handshake, so one that an exec
    /// plugin rotates is picked up by new connections.
    /// </summary>
    public SocketsHttpHandler CreateHandler()
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(90),
            ConnectTimeout = TimeSpan.FromSeconds(15),
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
        };
        if (Proxy is not null)
        {
            // WebProxy understands http, https and socks5 URIs; user:password in the URL become proxy credentials.
            var proxy = new WebProxy(new UriBuilder(Proxy) { UserName = "", Password = "" }.Uri);
            if (!string.IsNullOrEmpty(Proxy.UserInfo))
            {
                var parts = Proxy.UserInfo.Split(':', 2);
                proxy.Credentials = new NetworkCredential(Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : "");
            }
            handler.Proxy = proxy;
            handler.UseProxy = true;
        }
        else if (KubeEnvironmentProxy.FromEnvironment() is { IsEmpty: false } environment)
        {
            // kubectl's reading of HTTPS_PROXY and NO_PROXY (CIDR blocks, subdomains, loopback never proxied).
            handler.Proxy = environment;
            handler.UseProxy = true;
        }
        else
        {
            handler.UseProxy = false;
        }
        if (Credentials is IRotatingClientCertificate { CanRotate: true } rotating)
        {
            // A new exec-plugin certificate only reaches new connections: close the old ones (client-go does too).
            var tracker = new ConnectionTracker();
            handler.ConnectCallback = tracker.ConnectAsync;
            rotating.ClientCertificateChanged += tracker.OnCertificateChanged;
        }
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            TargetHost = TlsServerName,
            RemoteCertificateValidationCallback = ValidateServerCertificate,
            LocalCertificateSelectionCallback = (_, _, _, _, _) => Credentials.CurrentClientCertificate!,
        };
        return handler;
    }

    /// <summary>
    /// Per-request settings the handler cannot carry. With <see cref="TlsServerName"/> this sets the Host header to
    /// it, which is what SocketsHttpHandler uses for SNI (the certificate is checked against it either way).
    /// </summary>
    public void ConfigureRequest(HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (HostHeader is { } host) request.Headers.Host = host;
    }

    /// <summary>
    /// The Host header to send, or null for the URL's own: with tls-server-name it carries that name, because
    /// SocketsHttpHandler (and a WebSocket upgrade) takes the SNI name from the Host header, not from SslOptions.
    /// </summary>
    public string? HostHeader =>
        string.IsNullOrEmpty(TlsServerName) ? null
        : Server.IsDefaultPort ? TlsServerName
        : TlsServerName + ":" + Server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1", "Server Authentication");

    internal bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (InsecureSkipTlsVerify) return true;
        if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0) return false;
        using var cert = new X509Certificate2(certificate);

        // The name: tls-server-name replaces the URL's host (the platform checked against whatever SNI name it sent).
        // As in Go since 1.15, only the subject alternative names count: a certificate that names its host in the
        // subject's CN alone is refused, which .NET's own check would accept.
        var nameOk = string.IsNullOrEmpty(TlsServerName)
            ? (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0 && Names(cert, Server.IdnHost.Trim('[', ']'))
            : Names(cert, TlsServerName);
        if (!nameOk) return false;

        // The chain: the kubeconfig's CA replaces the system store (client-go's RootCAs), so re-check against it alone.
        if (CertificateAuthorities is null || CertificateAuthorities.Count == 0)
            return (errors & SslPolicyErrors.RemoteCertificateChainErrors) == 0;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // A server's certificate (Go's default key usage): one whose extended key usage leaves out serverAuth, on the
        // leaf or on a CA above it, is refused, as the platform's own check does for the system store.
        custom.ChainPolicy.ApplicationPolicy.Add(ServerAuthentication);
        custom.ChainPolicy.CustomTrustStore.AddRange(CertificateAuthorities);
        if (chain is not null)
        {
            // Intermediates the server sent (SslStream puts them in ExtraStore) and whatever the platform chain found.
            custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
            foreach (var element in chain.ChainElements)
            {
                if (!element.Certificate.RawDataMemory.Span.SequenceEqual(cert.RawDataMemory.Span)) custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }
        if (custom.Build(cert)) return true;
        return EndsAtAnAuthority(custom, CertificateAuthorities);
    }

    /// <summary>The certificate's subject alternative names cover <paramref name="host"/> (a name, compared in A-labels, or an address).</summary>
    private static bool Names(X509Certificate2 cert, string host)
    {
        try
        {
            // A-labels, as Go compares them (the URL's host comes so; a tls-server-name may be written in Unicode).
            return cert.MatchesHostname(System.Net.IPAddress.TryParse(host, out _) ? host : new System.Globalization.IdnMapping().GetAscii(host),
                allowCommonName: false);
        }
        catch (ArgumentException)
        {
            // Not a host name or address at all: nothing can name it.
            return false;
        }
    }

    /// <summary>
    /// Go (kubectl) takes every certificate of the CA bundle as a trust anchor, an intermediate included, where .NET
    /// wants the chain to reach a self-signed root. The chain is good when it reaches one of the bundle's certificates
    /// with nothing wrong on the way (signatures, validity, usage) but the missing root above it.
    /// </summary>
    private static bool EndsAtAnAuthority(X509Chain chain, X509Certificate2Collection authorities)
    {
        const X509ChainStatusFlags AboveTheAnchor = X509ChainStatusFlags.PartialChain | X509ChainStatusFlags.UntrustedRoot;
        foreach (var element in chain.ChainElements)
        {
            if (element.ChainElementStatus.Any(s => (s.Status & ~AboveTheAnchor) != X509ChainStatusFlags.NoError)) return false;
            if (authorities.Any(a => a.RawDataMemory.Span.SequenceEqual(element.Certificate.RawDataMemory.Span))) return true;
        }
        return false;
    }
}

/// <summary>
/// How requests are authenticated: headers (bearer token, basic auth, impersonation) and a TLS client
/// certificate. Implementations cache and refresh (token files are re-read, exec plugins re-run).
/// </summary>
public interface IKubeCredentials
{
    /// <summary>Sets the Authorization and Impersonate-* headers for one request (HTTP or WebSocket upgrade).</summary>
    ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken);

    /// <summary>The client certificate (with its private key) to present in TLS, or null.</summary>
    X509Certificate2? CurrentClientCertificate { get; }

    /// <summary>
    /// Called after a 401. Drops cached credentials (an exec plugin is re-run next time) and returns true
    /// when a retry could succeed with fresh ones.
    /// </summary>
    ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken);
}

/// <summary>No credentials at all.</summary>
public sealed class AnonymousCredentials : IKubeCredentials
{
    public static AnonymousCredentials Instance { get; } = new();

    public X509Certificate2? CurrentClientCertificate => null;

    public ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken) => ValueTask.FromResult(false);
}

/// <summary>A fixed bearer token and/or client certificate.</summary>
public sealed class StaticCredentials : IKubeCredentials
{
    private readonly string? _token;

    public StaticCredentials(string? token = null, X509Certificate2? clientCertificate = null)
    {
        _token = token;
        CurrentClientCertificate = clientCertificate;
    }

    public X509Certificate2? CurrentClientCertificate { get; }

    public ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(setHeader);
        if (_token is not null) setHeader("Authorization", "Bearer " + _token);
        return ValueTask.CompletedTask;
    }

    public ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken) => ValueTask.FromResult(false);
}
