using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

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
            handler.Proxy = new WebProxy(Proxy);
            handler.UseProxy = true;
        }
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            TargetHost = TlsServerName,
            RemoteCertificateValidationCallback = ValidateServerCertificate,
            LocalCertificateSelectionCallback = (_, _, _, _, _) => Credentials.CurrentClientCertificate!,
        };
        return handler;
    }

    private bool ValidateServerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (InsecureSkipTlsVerify) return true;
        if (errors == SslPolicyErrors.None) return true;
        if (certificate is null || CertificateAuthorities is null || CertificateAuthorities.Count == 0) return false;
        // A name mismatch is never forgiven; only the chain is re-checked against the kubeconfig's CA.
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.CustomTrustStore.AddRange(CertificateAuthorities);
        using var cert = new X509Certificate2(certificate);
        return custom.Build(cert);
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
