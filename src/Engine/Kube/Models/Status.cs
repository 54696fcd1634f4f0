namespace KtConnect.Engine.Kube.Models;

/// <summary>metav1.Status (named KubeStatus so it can carry a Status property): the body of every API error, of some DELETEs, of watch ERROR events and of the exec status channel.</summary>
public sealed class KubeStatus : KubeModel
{
    public string? Kind { get; set; }
    public string? ApiVersion { get; set; }
    public ListMeta? Metadata { get; set; }

    /// <summary>Success or Failure.</summary>
    public string? Status { get; set; }

    public string? Message { get; set; }
    public string? Reason { get; set; }
    public StatusDetails? Details { get; set; }
    public int? Code { get; set; }
}

public sealed class StatusDetails : KubeModel
{
    public string? Name { get; set; }
    public string? Group { get; set; }
    public string? Kind { get; set; }
    public string? Uid { get; set; }
    public List<StatusCause>? Causes { get; set; }
    public int? RetryAfterSeconds { get; set; }
}

/// <summary>One cause. Go's StatusCause.Type is serialised as "reason".</summary>
public sealed class StatusCause : KubeModel
{
    public string? Reason { get; set; }
    public string? Message { get; set; }
    public string? Field { get; set; }
}
