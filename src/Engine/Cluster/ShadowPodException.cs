namespace KtConnect.Engine.Cluster;

/// <summary>Stable ErrorIds of <see cref="ShadowPodException"/>.</summary>
public static class ShadowPodErrors
{
    public const string ImagePullFailed = "ShadowPodImagePullFailed";
    public const string Unschedulable = "ShadowPodUnschedulable";
    public const string Forbidden = "ShadowPodForbidden";
    public const string PodSecurityRejected = "ShadowPodSecurityRejected";
    public const string Crashed = "ShadowPodCrashed";
    public const string Timeout = "ShadowPodTimeout";
    public const string Deleted = "ShadowPodDeleted";
    public const string HostKeyUnavailable = "ShadowHostKeyUnavailable";
    public const string HostKeyInvalid = "ShadowHostKeyInvalid";
}

/// <summary>
/// The shadow pod could not be created, did not become ready, or its host key could not be read. The message names
/// the reason and what to do; <see cref="Reason"/> is Kubernetes' own reason when there is one (ErrImagePull...).
/// </summary>
public sealed class ShadowPodException(string errorId, KtErrorCategory category, string message, string podName, string? reason = null,
    Exception? inner = null)
    : KtException(errorId, category, message, inner, podName)
{
    public string PodName { get; } = podName;

    public string? Reason { get; } = reason;
}
