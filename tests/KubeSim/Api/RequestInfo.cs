namespace KtConnect.KubeSim.Api;

/// <summary>
/// What an authorizer decides on: like the apiserver's authorizer.Attributes. <see cref="Path"/> is set for
/// non-resource requests (/api, /apis, /version); <see cref="Resource"/> for resource requests.
/// </summary>
public sealed record RequestInfo(string User, string Verb, string Group, string Resource, string? Subresource, string? Namespace,
    string? Name, string? Path)
{
    /// <summary>The user's groups (system:masters for the admin credentials, system:authenticated for every known user).</summary>
    public IReadOnlyList<string> Groups { get; init; } = [];

    /// <summary>What the default authorizer allows: members of system:masters.</summary>
    public bool IsAdmin => Groups.Contains("system:masters");

    public bool IsResourceRequest => Path is null;

    /// <summary>"pods" or "pods/exec", as RBAC and the 403 message name it.</summary>
    public string ResourceWithSubresource => Subresource is null ? Resource : Resource + "/" + Subresource;
}

/// <summary>One request as the server saw it (for tests asserting what a client sent).</summary>
public sealed record RecordedRequest(string Method, string PathAndQuery, string? ContentType, string? UserAgent, DateTimeOffset At);
