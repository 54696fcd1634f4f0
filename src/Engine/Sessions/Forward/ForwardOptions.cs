using System.Globalization;

namespace KtConnect.Engine.Sessions.Forward;

/// <summary>
/// One `local[:remote]` of `kt forward` / Start-KtForward -Port: a local port, and the Service port it reaches
/// (null: the Service's only port, or the port with the same number).
/// </summary>
public sealed record PortMapping(int Local, int? Remote)
{
    /// <summary>Parses <c>8080</c> or <c>8080:80</c>; local 0 means any free port.</summary>
    public static PortMapping Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':');
        if (parts.Length > 2) throw Invalid(text);
        var local = Port(parts[0], text, allowZero: true);
        return new PortMapping(local, parts.Length == 2 ? Port(parts[1], text, allowZero: false) : null);
    }

    private static int Port(string s, string text, bool allowZero) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p <= 65535 && (p > 0 || allowZero) ? p : throw Invalid(text);

    private static KtException Invalid(string text) =>
        new(ForwardErrors.InvalidPort, KtErrorCategory.InvalidArgument,
            $"'{text}' is not a port mapping: give <localPort>[:<servicePort>], for example 8080 or 8080:80.", target: text);

    public override string ToString() => Remote is { } r ? $"{Local}:{r}" : Local.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What `kt forward` and Start-KtForward are asked to do.</summary>
public sealed record ForwardOptions : ShadowOptions
{
    protected override bool CreatesShadow => false;

    /// <summary>The Service whose ready pods receive the connections.</summary>
    public string Service { get; init; } = "";

    /// <summary>Local ports and the Service ports they reach; empty means the Service's only port on the same local port.</summary>
    public IReadOnlyList<PortMapping> Ports { get; init; } = [];

    /// <summary>How long one port-forward to a pod may take to open before the next ready pod is tried (ktctl's --portForwardTimeout).</summary>
    public TimeSpan PortForwardTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>Stable ErrorIds of Forward.</summary>
public static class ForwardErrors
{
    public const string InvalidPort = "ForwardInvalidPort";
    public const string ServiceNotFound = "ForwardServiceNotFound";
    public const string ServiceWithoutSelector = "ForwardServiceWithoutSelector";
    public const string PortNotFound = "ForwardPortNotFound";
    public const string PortRequired = "ForwardPortRequired";
    public const string PortInUse = "ForwardPortInUse";
    public const string AddressNotSupported = "ForwardAddressNotSupported";
    public const string NoReadyPod = "ForwardNoReadyPod";
}
