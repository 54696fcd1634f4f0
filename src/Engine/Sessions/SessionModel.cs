namespace KtConnect.Engine.Sessions;

/// <summary>What a session does (DESIGN.md §4).</summary>
public enum SessionKind
{
    Connect,
    Exchange,
    Mesh,
    Preview,
    Forward,
}

/// <summary>
/// Lifecycle of a session. Starting → Running ⇄ Reconnecting → Stopping → Stopped; Failed when it could not
/// start or died and was cleaned up. Stopped and Failed are terminal.
/// </summary>
public enum SessionState
{
    Starting,
    Running,
    Reconnecting,
    Stopping,
    Stopped,
    Failed,
}

/// <summary>One object a session created or changed in the cluster, or one change it made on this machine.</summary>
/// <param name="Kind">Pod, Service, ConfigMap, Deployment, Route, Dns, Firewall…</param>
/// <param name="Name">namespace/name for cluster objects; a CIDR, suffix or table for local changes.</param>
/// <param name="Action">Created or Changed.</param>
public sealed record SessionResource(string Kind, string Name, string Action);

/// <summary>An immutable view of a session at one moment: what cmdlets and `kt` print.</summary>
public sealed record SessionSnapshot
{
    public required int Id { get; init; }

    public required Guid InstanceId { get; init; }

    public required SessionKind Kind { get; init; }

    public required string Namespace { get; init; }

    public string? Context { get; init; }

    /// <summary>What the session is about: the Service exchanged, the preview's name, the cluster for Connect.</summary>
    public required string Target { get; init; }

    public required SessionState State { get; init; }

    public required DateTimeOffset StartTime { get; init; }

    public DateTimeOffset? EndTime { get; init; }

    /// <summary>tun, redirect or socks for Connect; selector or scale for Exchange; auto or manual for Mesh.</summary>
    public string? Mode { get; init; }

    public IReadOnlyList<SessionResource> Resources { get; init; } = [];

    /// <summary>Local ports the session listens on or delivers to, with what each maps to ("8080 from orders:80").</summary>
    public IReadOnlyList<string> LocalPorts { get; init; } = [];

    /// <summary>
    /// Exchange: every port of the Service and what happens to it while exchanged: exposed (the same text as in
    /// <see cref="LocalPorts"/>), relayed to the original pods, or cut (refused).
    /// </summary>
    public IReadOnlyList<string> Ports { get; init; } = [];

    public IReadOnlyList<string> Routes { get; init; } = [];

    public IReadOnlyList<string> DnsSuffixes { get; init; } = [];

    public string? MeshHeader { get; init; }

    public string? MeshVersion { get; init; }

    /// <summary>The last error, if any: why it failed, or what went wrong while reconnecting or restoring.</summary>
    public string? LastError { get; init; }

    /// <summary>The stable id of <see cref="LastError"/> when it came from a <see cref="KtException"/>.</summary>
    public string? LastErrorId { get; init; }

    public bool IsFinished => State is SessionState.Stopped or SessionState.Failed;
}

/// <summary>What a caller asks for when starting a session.</summary>
public sealed record SessionRequest
{
    public required SessionKind Kind { get; init; }

    public required string Namespace { get; init; }

    public string? Context { get; init; }

    public required string Target { get; init; }

    public string? Mode { get; init; }
}

/// <summary>A state change, raised on the thread that made it; handlers must not block.</summary>
public sealed class SessionStateChangedEventArgs(SessionSnapshot session, SessionState previous) : EventArgs
{
    public SessionSnapshot Session { get; } = session;

    public SessionState PreviousState { get; } = previous;
}
