
namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>How an exchange takes the Service's traffic (kt-connect's <c>--mode</c>).</summary>
public enum ExchangeMode
{
    /// <summary>The Service's selector is pointed at the shadow pod; the original is recorded in <c>kt-selector</c> first.</summary>
    Selector,

    /// <summary>The shadow carries the Deployment's pod labels and the Deployment is scaled to 0 (replicas recorded in <c>kt-config</c>).</summary>
    Scale,
}

/// <summary>Everything `kt exchange` and Start-KtExchange can ask for (kt-connect's flags, reference/kt-connect.md §1.4).</summary>
public sealed record ExchangeOptions : ShadowOptions
{
    /// <summary>The Service whose traffic comes to this machine.</summary>
    public string Service { get; init; } = "";

    /// <summary>Instead of <see cref="Service"/>: a Deployment, whose Service is found (kt-connect's <c>deploy/&lt;name&gt;</c>).</summary>
    public string? Deployment { get; init; }

    /// <summary><c>--expose</c>: local port and the Service port or targetPort it takes over.</summary>
    public IReadOnlyList<ExposedPort> Ports { get; init; } = [];

    public ExchangeMode Mode { get; init; } = ExchangeMode.Selector;

    /// <summary>Scale mode: how long stop waits for the original Deployment to be ready again (kt-connect's 120 s).</summary>
    public TimeSpan RecoverWaitTime { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Do not warn when a local port is not listening at start.</summary>
    public bool SkipPortChecking { get; init; }

    /// <summary>
    /// Exchange even when some of the Service's ports can be neither exposed nor relayed to the original pods (scale mode,
    /// UDP, an unresolved named targetPort): they are refused while exchanged. Without it such an exchange is refused
    /// (<c>ExchangePortsUncovered</c>) before anything changes.
    /// </summary>
    public bool AllowPartial { get; init; }

    /// <summary>Delay before our selector is re-applied after someone else changed it (kt-connect waits 1–9 s at random).</summary>
    public TimeSpan ReapplyDelay { get; init; } = TimeSpan.FromSeconds(1);

    public override string? ModeName => Mode.ToString().ToLowerInvariant();

    /// <summary>Throws a typed error when the options cannot work, before anything is changed.</summary>
    protected override void ValidateKind()
    {
        ServiceTargets.Validate(Service, Deployment, "exchange");
        ExposedPort.Validate(Ports);
        if (RecoverWaitTime < TimeSpan.Zero)
            throw new KtException("InvalidRecoverWaitTime", KtErrorCategory.InvalidArgument, "The recover wait time cannot be negative.");
    }
}

/// <summary>The type of the Service a preview creates (kt-connect's <c>--external</c> picks LoadBalancer).</summary>
public enum PreviewServiceType
{
    ClusterIP,
    LoadBalancer,
}

/// <summary>Everything `kt preview` and New-KtPreview can ask for (reference/kt-connect.md §1.6).</summary>
public sealed record PreviewOptions : ShadowOptions
{
    /// <summary>Name of the new Service.</summary>
    public string Name { get; init; } = "";

    /// <summary><c>--expose</c>: the new Service's port (= targetPort) is the remote part.</summary>
    public IReadOnlyList<ExposedPort> Ports { get; init; } = [];

    public PreviewServiceType ServiceType { get; init; } = PreviewServiceType.ClusterIP;

    public bool SkipPortChecking { get; init; }

    public override string? ModeName => ServiceType.ToString();

    protected override void ValidateKind()
    {
        if (string.IsNullOrWhiteSpace(Name) || Name.Length > 63 || !System.Text.RegularExpressions.Regex.IsMatch(Name, "^[a-z]([-a-z0-9]*[a-z0-9])?$"))
            throw new KtException("InvalidPreviewName", KtErrorCategory.InvalidArgument,
                $"'{Name}' is not a valid Service name (lower-case letters, digits and '-', starting with a letter, at most 63 characters).", null, Name);
        ExposedPort.Validate(Ports);
    }
}
