using System.Text.Json.Nodes;

namespace KtConnect.Engine.Kube.Config;

// The kubeconfig schema (client-go clientcmd/api/v1/types.go) as parsed from one file. Paths are already
// resolved against the directory of SourceFile. Classes rather than records so ToString never prints secrets.

/// <summary>A named <c>clusters[]</c> entry.</summary>
public sealed class KubeCluster
{
    public required string Name { get; init; }

    /// <summary>The file this entry came from (the first file that defined the name).</summary>
    public required string SourceFile { get; init; }

    public string? Server { get; init; }

    public string? TlsServerName { get; init; }

    public bool InsecureSkipTlsVerify { get; init; }

    /// <summary>certificate-authority, absolute.</summary>
    public string? CertificateAuthority { get; init; }

    /// <summary>certificate-authority-data, decoded from base64 (PEM bytes).</summary>
    public byte[]? CertificateAuthorityData { get; init; }

    public string? ProxyUrl { get; init; }

    public bool DisableCompression { get; init; }

    /// <summary>The extension named <c>client.authentication.k8s.io/exec</c>, passed to exec plugins as spec.cluster.config.</summary>
    public JsonNode? ExecExtension { get; init; }
}

/// <summary>A named <c>users[]</c> entry.</summary>
public sealed class KubeUser
{
    public required string Name { get; init; }

    public required string SourceFile { get; init; }

    /// <summary>client-certificate, absolute.</summary>
    public string? ClientCertificate { get; init; }

    public byte[]? ClientCertificateData { get; init; }

    /// <summary>client-key, absolute.</summary>
    public string? ClientKey { get; init; }

    public byte[]? ClientKeyData { get; init; }

    public string? Token { get; init; }

    /// <summary>tokenFile, absolute.</summary>
    public string? TokenFile { get; init; }

    /// <summary>as: the user to impersonate.</summary>
    public string? Impersonate { get; init; }

    /// <summary>as-uid.</summary>
    public string? ImpersonateUid { get; init; }

    /// <summary>as-groups.</summary>
    public IReadOnlyList<string> ImpersonateGroups { get; init; } = [];

    /// <summary>as-user-extra.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ImpersonateUserExtra { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    public string? Username { get; init; }

    public string? Password { get; init; }

    public KubeAuthProvider? AuthProvider { get; init; }

    public KubeExecConfig? Exec { get; init; }
}

/// <summary>A named <c>contexts[]</c> entry.</summary>
public sealed class KubeContext
{
    public required string Name { get; init; }

    public required string SourceFile { get; init; }

    public string? Cluster { get; init; }

    public string? User { get; init; }

    /// <summary>The namespace as written; null when the context has none (then "default" applies).</summary>
    public string? Namespace { get; init; }
}

/// <summary>users[].user.auth-provider (legacy; only oidc's id-token is supported).</summary>
public sealed class KubeAuthProvider
{
    public required string Name { get; init; }

    public IReadOnlyDictionary<string, string> Config { get; init; } = new Dictionary<string, string>();
}

/// <summary>users[].user.exec: a client-go credential plugin.</summary>
public sealed class KubeExecConfig
{
    public const string ApiVersionV1 = "client.authentication.k8s.io/v1";
    public const string ApiVersionV1Beta1 = "client.authentication.k8s.io/v1beta1";

    /// <summary>The command; resolved against the kubeconfig's directory when it contains a path separator.</summary>
    public required string Command { get; init; }

    public IReadOnlyList<string> Args { get; init; } = [];

    public IReadOnlyList<KeyValuePair<string, string>> Env { get; init; } = [];

    public string? ApiVersion { get; init; }

    public string? InstallHint { get; init; }

    public bool ProvideClusterInfo { get; init; }

    /// <summary>Never, IfAvailable or Always; null when not written (v1beta1 then means IfAvailable).</summary>
    public string? InteractiveMode { get; init; }
}
