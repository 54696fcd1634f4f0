using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;

namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// The credentials of one kubeconfig user, applied per request in client-go's order: tokenFile (re-read, last
/// good value wins over token), else token (or the oidc auth-provider's id-token), else basic auth, else the exec
/// plugin's token. The TLS client certificate is the configured one or the exec plugin's newest. Impersonation
/// headers are added to every request.
/// </summary>
public sealed class KubeCredentials : IKubeCredentials, IRotatingClientCertificate
{
    private readonly X509Certificate2? _certificate;
    private readonly string? _token;
    private readonly FileTokenSource? _tokenFile;
    private readonly string? _basic;
    private readonly ExecCredentialPlugin? _exec;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _impersonation;

    private KubeCredentials(X509Certificate2? certificate, string? token, FileTokenSource? tokenFile, string? basic,
        ExecCredentialPlugin? exec, IReadOnlyList<KeyValuePair<string, string>> impersonation)
    {
        _certificate = certificate;
        _token = token;
        _tokenFile = tokenFile;
        _basic = basic;
        _exec = exec;
        _impersonation = impersonation;
        if (exec is not null) exec.CertificateRotated += (_, e) => ClientCertificateChanged?.Invoke(this, e);
    }

    /// <summary>Raised when the exec plugin hands out a new client certificate (connections using the old one should close).</summary>
    public event EventHandler? ClientCertificateChanged;

    /// <summary>True with an exec plugin, whose certificate can change.</summary>
    public bool CanRotate => _exec is not null;

    /// <summary>The impersonation headers sent with every request, in order (Impersonate-Group may repeat).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ImpersonationHeaders => _impersonation;

    /// <summary>True when an exec plugin supplies the credentials.</summary>
    public bool UsesExecPlugin => _exec is not null;

    /// <summary>How many times the exec plugin has been run (0 without one).</summary>
    public int ExecPluginRuns => _exec?.Runs ?? 0;

    public X509Certificate2? CurrentClientCertificate => _certificate ?? _exec?.CurrentCertificate;

    public async ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(setHeader);
        if (_tokenFile is not null)
            setHeader("Authorization", "Bearer " + await _tokenFile.GetTokenAsync(cancellationToken).ConfigureAwait(false));
        else if (_token is not null)
            setHeader("Authorization", "Bearer " + _token);
        else if (_basic is not null)
            setHeader("Authorization", _basic);
        else if (_exec is not null)
        {
            var cred = await _exec.GetAsync(cancellationToken).ConfigureAwait(false);
            if (cred.Token is not null) setHeader("Authorization", "Bearer " + cred.Token);
        }
        foreach (var (name, value) in _impersonation) setHeader(name, value);
    }

    public async ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken)
    {
        if (_tokenFile is not null) return await _tokenFile.RefreshAsync(cancellationToken).ConfigureAwait(false);
        if (_exec is not null)
        {
            _exec.Invalidate();
            return true;
        }
        return false;
    }

    /// <summary>
    /// Checks a user entry the way client-go's validateAuthInfo does and builds its credentials.
    /// Throws <see cref="KubeConfigInvalidException"/> for a bad entry and <see cref="KubeCredentialException"/>
    /// for material that cannot be loaded (missing files, bad PEM, a removed auth provider).
    /// </summary>
    public static KubeCredentials Create(KubeUser user, KubeCluster cluster, KubeConfigLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(cluster);
        options ??= new KubeConfigLoaderOptions();
        Validate(user);

        X509Certificate2? certificate = null;
        var hasCert = user.ClientCertificateData is not null || user.ClientCertificate is not null;
        if (hasCert)
        {
            var certPem = ReadMaterial(user, user.ClientCertificateData, user.ClientCertificate, "client-certificate");
            var keyPem = ReadMaterial(user, user.ClientKeyData, user.ClientKey, "client-key");
            try
            {
                certificate = Pem.LoadClientCertificate(certPem, keyPem);
            }
            catch (CryptographicException e)
            {
                throw new KubeCredentialException(
                    $"The client certificate and key of user '{user.Name}' in {user.SourceFile} cannot be loaded: {e.Message}", e, user.Name);
            }
        }

        var token = user.Token;
        if (token is null && user.AuthProvider is { } ap)
        {
            switch (ap.Name)
            {
                case "oidc":
                    // Only the id-token is used; refreshing it needs the OIDC provider (use kubelogin, an exec plugin).
                    if (!ap.Config.TryGetValue("id-token", out var idToken) || string.IsNullOrEmpty(idToken))
                        throw new KubeCredentialException(
                            $"User '{user.Name}' in {user.SourceFile} uses the oidc auth-provider without an id-token; refreshing is not supported, use an exec plugin such as kubelogin.", target: user.Name);
                    token = idToken;
                    break;
                case "gcp":
                    throw new KubeCredentialException(
                        $"User '{user.Name}' in {user.SourceFile} uses the gcp auth-provider, which has been removed from Kubernetes clients. Install gke-gcloud-auth-plugin and use it as an exec plugin (https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin).", target: user.Name);
                case "azure":
                    throw new KubeCredentialException(
                        $"User '{user.Name}' in {user.SourceFile} uses the azure auth-provider, which has been removed from Kubernetes clients. Use kubelogin as an exec plugin (https://azure.github.io/kubelogin/).", target: user.Name);
                default:
                    throw new KubeCredentialException(
                        $"User '{user.Name}' in {user.SourceFile} uses the unknown auth-provider '{ap.Name}'.", target: user.Name);
            }
        }

        var tokenFile = user.TokenFile is null ? null : new FileTokenSource(user.TokenFile, token, options.TimeProvider);
        var basic = user.Username is null && user.Password is null
            ? null
            : "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes((user.Username ?? "") + ":" + (user.Password ?? "")));

        // client-go skips the exec plugin when token, basic or certificate authentication is already configured.
        ExecCredentialPlugin? exec = null;
        if (user.Exec is { } execConfig && token is null && tokenFile is null && basic is null && certificate is null)
        {
            var clusterInfo = execConfig.ProvideClusterInfo ? ClusterInfo(cluster) : null;
            exec = new ExecCredentialPlugin(execConfig, user.Name, user.SourceFile, clusterInfo, options);
        }

        return new KubeCredentials(certificate, token, tokenFile, basic, exec, Impersonation(user));
    }

    /// <summary>Credentials from an in-cluster service account token file (re-read every minute).</summary>
    internal static KubeCredentials FromTokenFile(string tokenFile, TimeProvider time) =>
        new(null, null, new FileTokenSource(tokenFile, null, time), null, null, []);

    private static void Validate(KubeUser user)
    {
        KubeConfigInvalidException Invalid(string what) => new(user.SourceFile, null, $"user '{user.Name}': {what}");

        var methods = new List<string>();
        if (user.Token is not null || user.TokenFile is not null) methods.Add("token");
        if (user.Username is not null || user.Password is not null) methods.Add("basicAuth");
        if (methods.Count > 1)
            throw Invalid($"more than one authentication method found ({string.Join(", ", methods)}); only one is allowed.");
        if (user.AuthProvider is not null && user.Exec is not null)
            throw Invalid("auth-provider and exec cannot both be set.");

        var hasCert = user.ClientCertificateData is not null || user.ClientCertificate is not null;
        var hasKey = user.ClientKeyData is not null || user.ClientKey is not null;
        if (hasCert && !hasKey) throw Invalid("client-certificate is set but client-key is not; a client certificate needs its key.");
        if (hasKey && !hasCert) throw Invalid("client-key is set but client-certificate is not.");

        if (user.Exec is { } exec)
        {
            if (exec.ApiVersion is not (KubeExecConfig.ApiVersionV1 or KubeExecConfig.ApiVersionV1Beta1))
                throw Invalid($"exec apiVersion '{exec.ApiVersion ?? "(none)"}' is not supported; use {KubeExecConfig.ApiVersionV1} or {KubeExecConfig.ApiVersionV1Beta1}.");
            if (exec.InteractiveMode is not (null or "Never" or "IfAvailable" or "Always"))
                throw Invalid($"exec interactiveMode '{exec.InteractiveMode}' is not one of Never, IfAvailable, Always.");
            if (exec.ApiVersion == KubeExecConfig.ApiVersionV1 && exec.InteractiveMode is null)
                throw Invalid($"exec interactiveMode must be specified for {KubeExecConfig.ApiVersionV1} (Never, IfAvailable or Always).");
        }
    }

    private static string ReadMaterial(KubeUser user, byte[]? data, string? file, string field)
    {
        // -data wins over the file path, as in client-go.
        if (data is not null) return Pem.Text(data);
        try
        {
            return File.ReadAllText(file!);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KubeCredentialException($"Cannot read {field} '{file}' of user '{user.Name}' ({user.SourceFile}): {e.Message}", e, file);
        }
    }

    private static List<KeyValuePair<string, string>> Impersonation(KubeUser user)
    {
        // The API server takes each header line as one group (or extra value); .NET sends a header with several values as
        // one comma-joined line (HTTP), or only the last one (WebSocket upgrade). Refused, rather than impersonating a wrong
        // group name or a single group.
        if (user.ImpersonateGroups.Count > 1 || user.ImpersonateUserExtra.Any(kv => kv.Value.Count > 1))
            throw new KubeCredentialException(
                $"User '{user.Name}' ({user.SourceFile}) impersonates more than one group (as-groups) or extra value (as-user-extra), which " +
                "KtConnect cannot send as separate headers; give one, or use a user with those rights.", null, user.Name);
        var headers = new List<KeyValuePair<string, string>>();
        if (user.Impersonate is not null) headers.Add(new("Impersonate-User", user.Impersonate));
        if (user.ImpersonateUid is not null) headers.Add(new("Impersonate-Uid", user.ImpersonateUid));
        foreach (var g in user.ImpersonateGroups) headers.Add(new("Impersonate-Group", g));
        foreach (var (key, values) in user.ImpersonateUserExtra.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            foreach (var v in values) headers.Add(new("Impersonate-Extra-" + EscapeHeaderKey(key), v));
        }
        return headers;
    }

    // client-go's headerKeyEscape: characters that are not HTTP token characters (and '%') are percent-encoded
    // so extra keys such as "scopes.example.com/x" survive as header names.
    internal static string EscapeHeaderKey(string key)
    {
        var sb = new StringBuilder(key.Length);
        foreach (var b in Encoding.UTF8.GetBytes(key))
        {
            var c = (char)b;
            if (b < 0x80 && c != '%' && (char.IsAsciiLetterOrDigit(c) || "!#$&'*+-.^_`|~".Contains(c)))
                sb.Append(c);
            else
                sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    // spec.cluster of KUBERNETES_EXEC_INFO (client-go ConfigToExecCluster); empty fields are omitted.
    private static JsonObject ClusterInfo(KubeCluster cluster)
    {
        var o = new JsonObject { ["server"] = cluster.Server };
        if (cluster.TlsServerName is not null) o["tls-server-name"] = cluster.TlsServerName;
        if (cluster.InsecureSkipTlsVerify) o["insecure-skip-tls-verify"] = true;
        var ca = cluster.CertificateAuthorityData;
        if (ca is null && cluster.CertificateAuthority is not null)
        {
            try
            {
                ca = File.ReadAllBytes(cluster.CertificateAuthority);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new KubeCredentialException($"Cannot read certificate-authority '{cluster.CertificateAuthority}' of cluster '{cluster.Name}' ({cluster.SourceFile}): {e.Message}", e, cluster.CertificateAuthority);
            }
        }
        if (ca is not null) o["certificate-authority-data"] = Convert.ToBase64String(ca);
        if (cluster.ProxyUrl is not null) o["proxy-url"] = cluster.ProxyUrl;
        if (cluster.DisableCompression) o["disable-compression"] = true;
        if (cluster.ExecExtension is not null) o["config"] = cluster.ExecExtension.DeepClone();
        return o;
    }
}
