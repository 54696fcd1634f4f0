using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Mirrors the engine's session kinds: PowerShell only sees types from the module's own assembly.</summary>
public enum KtSessionKind
{
    Connect,
    Exchange,
    Mesh,
    Preview,
    Forward,
}

/// <summary>Mirrors the engine's session states.</summary>
public enum KtSessionState
{
    Starting,
    Running,
    Reconnecting,
    Stopping,
    Stopped,
    Failed,
}

/// <summary>A KtConnect session as PowerShell sees it: a snapshot taken when the object was written.</summary>
public sealed class KtSession
{
    internal KtSession(SessionSnapshot s)
    {
        Id = s.Id;
        InstanceId = s.InstanceId;
        Kind = Enum.Parse<KtSessionKind>(s.Kind.ToString());
        Namespace = s.Namespace;
        Context = s.Context;
        Target = s.Target;
        State = Enum.Parse<KtSessionState>(s.State.ToString());
        StartTime = s.StartTime.LocalDateTime;
        EndTime = s.EndTime?.LocalDateTime;
        Mode = s.Mode;
        Resources = s.Resources.Select(r => $"{r.Action} {r.Kind} {r.Name}").ToArray();
        LocalPorts = [.. s.LocalPorts];
        Ports = [.. s.Ports];
        Routes = [.. s.Routes];
        DnsSuffixes = [.. s.DnsSuffixes];
        MeshHeader = s.MeshHeader;
        MeshVersion = s.MeshVersion;
        LastError = s.LastError;
        LastErrorId = s.LastErrorId;
    }

    public int Id { get; }

    public Guid InstanceId { get; }

    public KtSessionKind Kind { get; }

    public string Namespace { get; }

    public string? Context { get; }

    public string Target { get; }

    public KtSessionState State { get; }

    public DateTime StartTime { get; }

    public DateTime? EndTime { get; }

    public string? Mode { get; }

    public string[] Resources { get; }

    public string[] LocalPorts { get; }

    /// <summary>Every port of the Service an exchange or mesh took: exposed (to a local port), relayed to the original pods, or cut.</summary>
    public string[] Ports { get; }

    public string[] Routes { get; }

    public string[] DnsSuffixes { get; }

    public string? MeshHeader { get; }

    public string? MeshVersion { get; }

    public string? LastError { get; }

    public string? LastErrorId { get; }

    public override string ToString() => $"{Kind} {Namespace}/{Target} ({State})";
}
