using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

public enum WatchEventType
{
    Added,
    Modified,
    Deleted,

    /// <summary>Only metadata.resourceVersion is meaningful: "you are up to date to here".</summary>
    Bookmark,

    /// <summary>The object is a Status (410 Expired for a too-old resourceVersion).</summary>
    Error,
}

/// <summary>One watch event. For <see cref="WatchEventType.Error"/> <see cref="Status"/> is set and <see cref="Object"/> is null.</summary>
public sealed class WatchEvent<T> where T : KubeObject
{
    public WatchEvent(WatchEventType type, T? obj, KubeStatus? status = null)
    {
        Type = type;
        Object = obj;
        Status = status;
    }

    public WatchEventType Type { get; }
    public T? Object { get; }
    public KubeStatus? Status { get; }

    public override string ToString() => Type + " " + (Object?.Key ?? Status?.Message ?? "");
}
