using System.Text.RegularExpressions;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>How a mesh session gets marked requests (kt-connect's <c>--mode</c> of <c>mesh</c>).</summary>
public enum MeshMode
{
    /// <summary>A router pod sends requests carrying the version header to the shadow, the rest to the original pods (HTTP only).</summary>
    Auto,

    /// <summary>Only a shadow with the Service's selector labels plus the version label: a service mesh (Istio …) routes by that label.</summary>
    Manual,
}

/// <summary>The label key and value that mark a mesh session's shadow (kt-connect's <c>--versionMark</c>).</summary>
public sealed partial record VersionMark(string Key, string Version)
{
    /// <summary>The key kt-connect uses when none is given.</summary>
    public const string DefaultKey = "version";

    public override string ToString() => Key + ":" + Version;

    /// <summary>
    /// kt-connect's forms: empty (key <c>version</c>, random value), <c>val</c>, <c>key:</c> (random value) and
    /// <c>key:val</c>. The random value is 5 lower-case letters, as ktctl's.
    /// </summary>
    public static VersionMark Parse(string? text)
    {
        text = text?.Trim() ?? "";
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var key = colon < 0 ? DefaultKey : text[..colon];
        var version = colon < 0 ? text : text[(colon + 1)..];
        if (version.Length == 0) version = KtConventions.RandomLowercase();
        if (!KeyPattern().IsMatch(key))
            throw new KtException("InvalidVersionMark", KtErrorCategory.InvalidArgument,
                $"'{key}' cannot be the version mark's label key: lower-case letters, digits, '_' and '-', starting with a letter.", null, text);
        // The value is also part of the shadow's name (<service>-kt-mesh-<version>), so it must fit a DNS label.
        if (version.Length > 40 || !KtConventions.IsDnsLabel(version))
            throw new KtException("InvalidVersionMark", KtErrorCategory.InvalidArgument,
                $"'{version}' cannot be the version mark's value: at most 40 lower-case letters, digits and '-', starting and ending with a letter or digit.",
                null, text);
        return new VersionMark(key, version);
    }

    [GeneratedRegex("^[a-z][a-z0-9_-]{0,62}$")]
    private static partial Regex KeyPattern();
}

/// <summary>Everything `kt mesh` and Start-KtMesh can ask for (kt-connect's flags, reference/kt-connect.md §1.5).</summary>
public sealed record MeshOptions : ShadowOptions
{
    /// <summary>The Service whose marked requests come to this machine.</summary>
    public string Service { get; init; } = "";

    /// <summary>Instead of <see cref="Service"/>: a Deployment, whose Service is found (kt-connect's <c>deploy/&lt;name&gt;</c>).</summary>
    public string? Deployment { get; init; }

    /// <summary><c>--expose</c>: local port and the Service port or targetPort it serves.</summary>
    public IReadOnlyList<ExposedPort> Ports { get; init; } = [];

    public MeshMode Mode { get; init; } = MeshMode.Auto;

    /// <summary>Parsed <c>--versionMark</c>; <see cref="VersionMark.Parse"/> of an empty text picks a random version.</summary>
    public VersionMark Mark { get; init; } = VersionMark.Parse(null);

    public bool SkipPortChecking { get; init; }

    /// <summary>Auto mode: the router pod's image (kt-connect's <c>--routerImage</c>).</summary>
    public string RouterImage { get; init; } = KtConventions.DefaultRouterImage;

    /// <summary>kt-connect's router image, the default of <see cref="RouterImage"/>.</summary>
    public const string DefaultRouterImage = KtConventions.DefaultRouterImage;

    /// <summary>The mesh shadow's name for <paramref name="service"/> and this version.</summary>
    public string ShadowNameFor(string service) => KtConventions.MeshShadowName(service, Mark.Version);

    /// <summary>The router's name for <paramref name="service"/> (auto mode).</summary>
    public static string RouterNameFor(string service) => KtConventions.RouterName(service);

    /// <summary>Throws a typed error when the options cannot work, before anything is changed.</summary>
    public override string? ModeName => Mode.ToString().ToLowerInvariant();

    protected override void ValidateKind()
    {
        ServiceTargets.Validate(Service, Deployment, "mesh");
        ExposedPort.Validate(Ports);
        if (string.IsNullOrWhiteSpace(RouterImage))
            throw new KtException("InvalidRouterImage", KtErrorCategory.InvalidArgument, "The router image cannot be empty.");
        if (KtConventions.MeshShadowName(Service.Length > 0 ? Service : Deployment!, Mark.Version).Length > 63)
            throw new KtException("InvalidVersionMark", KtErrorCategory.InvalidArgument,
                $"The shadow's name '{KtConventions.MeshShadowName(Service, Mark.Version)}' would be longer than 63 characters; choose a shorter version.",
                null, Mark.ToString());
    }
}
