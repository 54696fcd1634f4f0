namespace KtConnect.Engine.Kube.Models;

public sealed class ConfigMap : KubeObject
{
    public Dictionary<string, string>? Data { get; set; }

    /// <summary>Base64 on the wire; bytes here.</summary>
    public Dictionary<string, byte[]>? BinaryData { get; set; }

    public bool? Immutable { get; set; }
}

public sealed class Secret : KubeObject
{
    public string? Type { get; set; }

    /// <summary>Base64 on the wire; bytes here.</summary>
    public Dictionary<string, byte[]>? Data { get; set; }

    /// <summary>Write-only convenience field; the server merges it into data.</summary>
    public Dictionary<string, string>? StringData { get; set; }

    public bool? Immutable { get; set; }
}
