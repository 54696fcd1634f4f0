using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// The merged view of one or more kubeconfig files (client-go rules: the first file that defines a cluster,
/// user or context name wins with its whole entry; the first non-empty current-context wins).
/// </summary>
public sealed class KubeConfig
{
    public const string DefaultNamespace = "default";

    private readonly KubeConfigLoaderOptions _options;

    internal KubeConfig(IReadOnlyList<string> sourceFiles, string? currentContext,
        IReadOnlyDictionary<string, KubeCluster> clusters, IReadOnlyDictionary<string, KubeUser> users,
        IReadOnlyDictionary<string, KubeContext> contexts, KubeConfigLoaderOptions options)
    {
        SourceFiles = sourceFiles;
        CurrentContext = currentContext;
        Clusters = clusters;
        Users = users;
        Contexts = contexts;
        _options = options;
    }

    /// <summary>The files that were read, in precedence order.</summary>
    public IReadOnlyList<string> SourceFiles { get; }

    public string? CurrentContext { get; }

    public IReadOnlyDictionary<string, KubeCluster> Clusters { get; }

    public IReadOnlyDictionary<string, KubeUser> Users { get; }

    public IReadOnlyDictionary<string, KubeContext> Contexts { get; }

    /// <summary>Context names, sorted (for -Context completion).</summary>
    public IReadOnlyList<string> ContextNames => Contexts.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>The distinct namespaces named by contexts, sorted (for -Namespace completion without a cluster call).</summary>
    public IReadOnlyList<string> Namespaces =>
        Contexts.Values.Select(c => c.Namespace).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();

    /// <summary>The named context, or the current-context; <see cref="KubeContextNotFoundException"/> when there is none.</summary>
    public KubeContext GetContext(string? contextName = null)
    {
        var name = string.IsNullOrEmpty(contextName) ? CurrentContext : contextName;
        if (string.IsNullOrEmpty(name)) throw new KubeContextNotFoundException(null, ContextNames, SourceFiles);
        return Contexts.TryGetValue(name, out var ctx) ? ctx : throw new KubeContextNotFoundException(name, ContextNames, SourceFiles);
    }

    /// <summary>
    /// Everything the REST client needs for a context: server, namespace (the context's or "default"), TLS and
    /// credentials. Credentials are only applied to https servers, as in client-go.
    /// </summary>
    public KubeClientConfiguration CreateClientConfiguration(string? contextName = null)
    {
        var ctx = GetContext(contextName);
        var where = string.Join(", ", SourceFiles);
        if (string.IsNullOrEmpty(ctx.Cluster))
            throw new KubeConfigInvalidException(ctx.SourceFile, null, $"context '{ctx.Name}' names no cluster.");
        if (!Clusters.TryGetValue(ctx.Cluster, out var cluster))
            throw new KubeConfigInvalidException(ctx.SourceFile, null, $"context '{ctx.Name}' refers to cluster '{ctx.Cluster}', which is not defined in {where}.");
        KubeUser? user = null;
        if (!string.IsNullOrEmpty(ctx.User) && !Users.TryGetValue(ctx.User, out user))
            throw new KubeConfigInvalidException(ctx.SourceFile, null, $"context '{ctx.Name}' refers to user '{ctx.User}', which is not defined in {where}.");

        var server = ParseServer(cluster);
        var authorities = LoadAuthorities(cluster);
        var proxy = ParseProxy(cluster);

        IKubeCredentials credentials = AnonymousCredentials.Instance;
        if (user is not null && server.Scheme == Uri.UriSchemeHttps) credentials = KubeCredentials.Create(user, cluster, _options);

        return new KubeClientConfiguration
        {
            Server = server,
            ContextName = ctx.Name,
            ClusterName = cluster.Name,
            SourceFile = ctx.SourceFile,
            Namespace = string.IsNullOrEmpty(ctx.Namespace) ? DefaultNamespace : ctx.Namespace,
            TlsServerName = cluster.TlsServerName,
            InsecureSkipTlsVerify = cluster.InsecureSkipTlsVerify,
            CertificateAuthorities = authorities,
            Proxy = proxy,
            Credentials = credentials,
        };
    }

    private static Uri ParseServer(KubeCluster cluster)
    {
        if (string.IsNullOrEmpty(cluster.Server))
            throw new KubeConfigInvalidException(cluster.SourceFile, null, $"cluster '{cluster.Name}' has no server.");
        // client-go's DefaultServerURL: a bare host:port means https.
        var text = cluster.Server.Contains("://", StringComparison.Ordinal) ? cluster.Server : "https://" + cluster.Server;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host))
            throw new KubeConfigInvalidException(cluster.SourceFile, null, $"cluster '{cluster.Name}' has server '{cluster.Server}', which is not an http or https URL.");
        return uri;
    }

    private static X509Certificate2Collection? LoadAuthorities(KubeCluster cluster)
    {
        if (cluster.CertificateAuthorityData is null && cluster.CertificateAuthority is null) return null;
        if (cluster.InsecureSkipTlsVerify)
            throw new KubeConfigInvalidException(cluster.SourceFile, null,
                $"cluster '{cluster.Name}' sets both a certificate authority and insecure-skip-tls-verify; specifying root certificates with the insecure flag is not allowed.");
        string pem;
        string origin;
        if (cluster.CertificateAuthorityData is not null)
        {
            pem = Pem.Text(cluster.CertificateAuthorityData);
            origin = "certificate-authority-data";
        }
        else
        {
            origin = $"certificate-authority '{cluster.CertificateAuthority}'";
            try
            {
                pem = File.ReadAllText(cluster.CertificateAuthority!);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new KubeConfigInvalidException(cluster.SourceFile, null, $"cluster '{cluster.Name}': cannot read {origin}: {e.Message}", e);
            }
        }
        try
        {
            return Pem.LoadBundle(pem);
        }
        catch (CryptographicException e)
        {
            throw new KubeConfigInvalidException(cluster.SourceFile, null, $"cluster '{cluster.Name}': {origin} holds no usable PEM certificate: {e.Message}", e);
        }
    }

    private static Uri? ParseProxy(KubeCluster cluster)
    {
        if (string.IsNullOrEmpty(cluster.ProxyUrl)) return null;
        if (!Uri.TryCreate(cluster.ProxyUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "socks5"))
            throw new KubeConfigInvalidException(cluster.SourceFile, null,
                $"cluster '{cluster.Name}' has proxy-url '{cluster.ProxyUrl}'; only http, https and socks5 proxies are supported.");
        return uri;
    }
}
