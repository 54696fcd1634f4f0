using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// The default image rules. kt-connect's shadow image and ours run sshd, the router images run nginx,
/// anything else runs the HTTP echo server. An image "cannot be pulled" (null, so the node reports
/// ErrImagePull) when it starts with one of <see cref="UnpullablePrefixes"/>, or, with
/// <see cref="Strict"/>, when its repository is not in <see cref="KnownApplicationRepositories"/>.
/// An application image whose container sets <c>command</c> runs that command (with its args) instead of the echo
/// server (<see cref="CommandLauncher"/>), as <c>command</c> replaces an image's entrypoint.
/// </summary>
public sealed class ImageCatalog : IImageCatalog
{
    private readonly ShadowSshdLauncher _shadow = new();
    private readonly RouterNginxLauncher _router = new();
    private readonly EchoLauncher _echo = new();
    private readonly CommandLauncher _command = new();

    public static readonly IReadOnlyList<string> ShadowRepositories =
    [
        "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow",
        "kt-connect-shadow",
        "ktconnect/shadow",
        "ktconnect/kt-shadow",
    ];

    public static readonly IReadOnlyList<string> RouterRepositories =
    [
        "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-router",
        "kt-connect-router",
        "ktconnect/router",
    ];

    public bool Strict { get; init; }

    public IReadOnlyList<string> UnpullablePrefixes { get; init; } = ["unknown/", "registry.invalid/"];

    public IReadOnlyCollection<string> KnownApplicationRepositories { get; init; } = ["echo", "nginx", "busybox", "ktconnect/echo"];

    public IImageLauncher? Resolve(string image)
    {
        if (string.IsNullOrWhiteSpace(image) || UnpullablePrefixes.Any(p => image.StartsWith(p, StringComparison.Ordinal))) return null;
        var repo = Repository(image);
        if (ShadowRepositories.Any(r => Matches(repo, r))) return _shadow;
        if (RouterRepositories.Any(r => Matches(repo, r))) return _router;
        if (Strict && !KnownApplicationRepositories.Any(r => Matches(repo, r))) return null;
        return _echo;
    }

    public IImageLauncher? Resolve(PodSpecLite spec)
    {
        var launcher = Resolve(spec.Image);
        return launcher == _echo && spec.Command is { Count: > 0 } ? _command : launcher;
    }

    /// <summary>The image reference without tag or digest ("a/b:v1@sha256:..." → "a/b").</summary>
    public static string Repository(string image)
    {
        var at = image.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0) image = image[..at];
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? image[..colon] : image;
    }

    // "kt-connect-shadow" also matches any registry's ".../kt-connect-shadow"; "docker.io/library/x" is "x".
    private static bool Matches(string repo, string known) =>
        repo == known || repo.EndsWith("/" + known, StringComparison.Ordinal) ||
        (repo.StartsWith("docker.io/", StringComparison.Ordinal) && Matches(repo["docker.io/".Length..].Replace("library/", "", StringComparison.Ordinal), known));
}
