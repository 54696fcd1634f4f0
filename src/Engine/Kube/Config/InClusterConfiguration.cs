using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// The configuration of a process running in a pod (client-go's InClusterConfig): https://KUBERNETES_SERVICE_HOST:PORT
/// (IPv6 bracketed), the service account token re-read every minute, its ca.crt, and the namespace from POD_NAMESPACE
/// or the namespace file, else "default".
/// </summary>
public static class InClusterConfiguration
{
    public const string DefaultServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount";
    public const string ContextName = "in-cluster";

    /// <summary>True when KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are both set.</summary>
    public static bool IsAvailable(KubeConfigLoaderOptions? options = null)
    {
        options ??= new KubeConfigLoaderOptions();
        return !string.IsNullOrEmpty(options.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST"))
            && !string.IsNullOrEmpty(options.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT"));
    }

    /// <summary>Builds the in-cluster configuration; <see cref="InClusterConfigException"/> when not in a pod or the token is unreadable.</summary>
    public static KubeClientConfiguration Load(KubeConfigLoaderOptions? options = null)
    {
        options ??= new KubeConfigLoaderOptions();
        var host = options.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST");
        var port = options.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
            throw new InClusterConfigException("Not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set.");

        // net.JoinHostPort: an IPv6 literal gets brackets.
        var authority = IPAddress.TryParse(host, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]:{port}" : $"{host}:{port}";
        if (!Uri.TryCreate("https://" + authority, UriKind.Absolute, out var server))
            throw new InClusterConfigException($"KUBERNETES_SERVICE_HOST '{host}' and KUBERNETES_SERVICE_PORT '{port}' do not form a URL.");

        var dir = options.ServiceAccountDirectory;
        var tokenPath = Path.Combine(dir, "token");
        try
        {
            // client-go reads it once up front so a missing token fails here, not on the first request.
            if (File.ReadAllText(tokenPath).Trim().Length == 0) throw new IOException("the file is empty");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InClusterConfigException($"Cannot read the service account token '{tokenPath}': {e.Message}", e);
        }

        System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ca = null;
        var caPath = Path.Combine(dir, "ca.crt");
        try
        {
            ca = Pem.LoadBundle(File.ReadAllText(caPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            // client-go only logs this; the system trust store then applies.
        }

        var ns = options.GetEnvironmentVariable("POD_NAMESPACE");
        if (string.IsNullOrEmpty(ns))
        {
            try
            {
                ns = File.ReadAllText(Path.Combine(dir, "namespace")).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                ns = null;
            }
        }

        return new KubeClientConfiguration
        {
            Server = server,
            ContextName = ContextName,
            ClusterName = ContextName,
            Namespace = string.IsNullOrEmpty(ns) ? KubeConfig.DefaultNamespace : ns,
            CertificateAuthorities = ca,
            Credentials = KubeCredentials.FromTokenFile(tokenPath, options.TimeProvider),
        };
    }
}
