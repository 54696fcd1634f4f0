using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions;

/// <summary>
/// What every command that works in a cluster through a shadow pod shares (kt-connect's global flags): where to
/// work and how the shadow is made. Connect, Exchange, Preview and Forward options derive from it, so `kt` and the
/// cmdlets fill these once for every verb.
/// </summary>
public abstract record ShadowOptions
{
    public string? Kubeconfig { get; init; }

    public string? Context { get; init; }

    /// <summary>The namespace to work in; null means the context's namespace.</summary>
    public string? Namespace { get; init; }

    public string Image { get; init; } = KtConventions.DefaultShadowImage;

    public string? ImagePullSecret { get; init; }

    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    public string ServiceAccount { get; init; } = "default";

    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();

    /// <summary>kt-connect's --podQuota, e.g. <c>0.5c,512m</c>.</summary>
    public string? PodQuota { get; init; }

    public bool UseShadowDeployment { get; init; }

    public bool AlwaysPullImage { get; init; }

    public TimeSpan PodCreationTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Interval between heartbeats on the objects a session created.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Interval between renewals of a Service's kt-lock held over a long step (a third of its 180 s life).</summary>
    public TimeSpan LockRenewInterval { get; init; } = ServiceLock.RenewInterval;

    /// <summary>The journal of local changes (tests give their own).</summary>
    public ChangeJournal? Journal { get; init; }

    /// <summary>The journal to write to: <see cref="Journal"/>, else the user's.</summary>
    public ChangeJournal JournalOrDefault() => Journal ?? new ChangeJournal();

    /// <summary>
    /// kt-connect's --skipCleanup: do not undo, at start, what a crashed KtConnect process on this machine left in the
    /// namespace (`kt clean` still does). Local changes such a process left are undone all the same: they would
    /// collide with this session's routes and DNS.
    /// </summary>
    public bool SkipCleanup { get; init; }

    /// <summary>The session's mode as sessions list it (tun, selector, auto, ClusterIP...); null when the kind has none.</summary>
    public virtual string? ModeName => null;

    /// <summary>
    /// Checks what can be checked without the cluster or the machine (the shadow options every kind shares, then the
    /// kind's own); throws a typed error. Run when a session starts, before any change.
    /// </summary>
    public void Validate()
    {
        if (CreatesShadow) ValidateShadow();
        ValidateKind();
    }

    /// <summary>False for a kind that makes nothing in the cluster (Forward): it accepts the shadow options and ignores them.</summary>
    protected virtual bool CreatesShadow => true;

    private void ValidateShadow()
    {
        if (PodQuota is not null) Cluster.PodQuota.Parse(PodQuota);
        foreach (var key in Labels.Keys)
        {
            if (key is KtConventions.RoleLabel or KtConventions.TargetLabel or KtConventions.ControlByLabel)
                throw new KtException("ShadowLabelReserved", KtErrorCategory.InvalidArgument,
                    $"The label '{key}' is KtConnect's own: clean and recover find its shadows by it, so --withLabel (-Label) cannot set it.", target: key);
        }
    }

    /// <summary>The kind's own checks, after the shared ones.</summary>
    protected virtual void ValidateKind()
    {
    }

    /// <summary>A shadow spec carrying these options; the caller sets what is specific to its role.</summary>
    public ShadowPodSpec ToShadowSpec(string name, string ns, string role, string authorizedKey) => new()
    {
        Name = name,
        Namespace = ns,
        Role = role,
        AuthorizedKey = authorizedKey,
        Image = Image,
        AlwaysPullImage = AlwaysPullImage,
        ImagePullSecret = ImagePullSecret,
        NodeSelector = NodeSelector,
        ServiceAccount = ServiceAccount,
        Quota = PodQuota is null ? null : Cluster.PodQuota.Parse(PodQuota),
        ExtraLabels = Labels,
        ExtraAnnotations = Annotations,
        UseDeployment = UseShadowDeployment,
    };
}
