namespace KtConnect.Engine.Kube;

/// <summary>Query options of a list (and the list part of a watch).</summary>
public class ListOptions
{
    public string? LabelSelector { get; set; }
    public string? FieldSelector { get; set; }

    /// <summary>Page size; the server returns metadata.continue when there is more.</summary>
    public int? Limit { get; set; }

    public string? Continue { get; set; }
    public string? ResourceVersion { get; set; }

    /// <summary>Server-side deadline for the request (watch: when the server ends the stream).</summary>
    public int? TimeoutSeconds { get; set; }

    internal ListOptions CloneList() => new()
    {
        LabelSelector = LabelSelector,
        FieldSelector = FieldSelector,
        Limit = Limit,
        Continue = Continue,
        ResourceVersion = ResourceVersion,
        TimeoutSeconds = TimeoutSeconds,
    };

    internal virtual void AppendQuery(QueryBuilder q)
    {
        q.Add("labelSelector", LabelSelector);
        q.Add("fieldSelector", FieldSelector);
        q.Add("limit", Limit);
        q.Add("continue", Continue);
        q.Add("resourceVersion", ResourceVersion);
        q.Add("timeoutSeconds", TimeoutSeconds);
    }
}

/// <summary>Options of a single watch request.</summary>
public sealed class WatchOptions : ListOptions
{
    /// <summary>Ask for BOOKMARK events so a restart can resume from a recent resourceVersion (default true).</summary>
    public bool AllowWatchBookmarks { get; set; } = true;

    internal override void AppendQuery(QueryBuilder q)
    {
        q.Add("watch", "1");
        base.AppendQuery(q);
        if (AllowWatchBookmarks) q.Add("allowWatchBookmarks", "true");
    }
}

public enum PropagationPolicy
{
    /// <summary>The server's default for the resource.</summary>
    Default,
    Foreground,
    Background,
    Orphan,
}

/// <summary>Options of a delete.</summary>
public sealed class DeleteOptions
{
    public PropagationPolicy PropagationPolicy { get; set; }

    /// <summary>0 deletes at once; null uses the object's default.</summary>
    public long? GracePeriodSeconds { get; set; }

    /// <summary>Delete only if the object still has this uid.</summary>
    public string? PreconditionUid { get; set; }

    /// <summary>Delete only if the object still has this resourceVersion.</summary>
    public string? PreconditionResourceVersion { get; set; }
}

/// <summary>A DELETE's answer: the server returns a Status for most resources and the object itself for a graceful pod or namespace delete.</summary>
public sealed class DeleteResult<T> where T : class
{
    public DeleteResult(Models.KubeStatus? status, T? obj)
    {
        Status = status;
        Object = obj;
    }

    public Models.KubeStatus? Status { get; }

    /// <summary>The object, still present with deletionTimestamp set (graceful deletion), or null.</summary>
    public T? Object { get; }
}

internal sealed class QueryBuilder
{
    private readonly System.Text.StringBuilder _sb = new();

    public void Add(string name, string? value)
    {
        if (value is null) return;
        _sb.Append(_sb.Length == 0 ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
    }

    public void Add(string name, long? value)
    {
        if (value is long v) Add(name, v.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    public override string ToString() => _sb.ToString();
}
