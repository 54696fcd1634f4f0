namespace KtConnect.Engine.Kube.Models;

/// <summary>authorization.k8s.io/v1 SelfSubjectAccessReview: "may I do this?" (create only).</summary>
public sealed class SelfSubjectAccessReview : KubeObject
{
    public SelfSubjectAccessReviewSpec Spec { get; set; } = new();
    public SubjectAccessReviewStatus? Status { get; set; }
}

public sealed class SelfSubjectAccessReviewSpec : KubeModel
{
    public ResourceAttributes? ResourceAttributes { get; set; }
    public NonResourceAttributes? NonResourceAttributes { get; set; }
}

public sealed class ResourceAttributes : KubeModel
{
    public string? Namespace { get; set; }
    public string? Verb { get; set; }
    public string? Group { get; set; }
    public string? Version { get; set; }
    public string? Resource { get; set; }
    public string? Subresource { get; set; }
    public string? Name { get; set; }
}

public sealed class NonResourceAttributes : KubeModel
{
    public string? Path { get; set; }
    public string? Verb { get; set; }
}

public sealed class SubjectAccessReviewStatus : KubeModel
{
    public bool Allowed { get; set; }
    public bool? Denied { get; set; }
    public string? Reason { get; set; }
    public string? EvaluationError { get; set; }
}
