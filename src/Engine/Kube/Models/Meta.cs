using System.Text.Json;
using System.Text.Json.Serialization;

namespace KtConnect.Engine.Kube.Models;

/// <summary>
/// Base of every model. Fields the server sends that we do not model land in <see cref="ExtensionData"/>
/// and are written back unchanged, so a read-modify-write never drops what a newer server added.
/// </summary>
public abstract class KubeModel
{
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? ExtensionData { get; set; }
}

/// <summary>A top-level API object: TypeMeta + ObjectMeta.</summary>
public abstract class KubeObject : KubeModel
{
    [JsonPropertyOrder(-3)]
    public string? ApiVersion { get; set; }

    [JsonPropertyOrder(-2)]
    public string? Kind { get; set; }

    [JsonPropertyOrder(-1)]
    public ObjectMeta Metadata { get; set; } = new();

    /// <summary>namespace/name, or name for cluster-scoped objects.</summary>
    [JsonIgnore]
    public string Key => string.IsNullOrEmpty(Metadata.Namespace) ? Metadata.Name ?? "" : Metadata.Namespace + "/" + Metadata.Name;
}

public sealed class ObjectMeta : KubeModel
{
    public string? Name { get; set; }
    public string? GenerateName { get; set; }
    public string? Namespace { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
    public long? Generation { get; set; }

    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? CreationTimestamp { get; set; }

    [JsonConverter(typeof(KubeTimeConverter))]
    public DateTimeOffset? DeletionTimestamp { get; set; }

    public long? DeletionGracePeriodSeconds { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
    public List<OwnerReference>? OwnerReferences { get; set; }
    public List<string>? Finalizers { get; set; }

    /// <summary>The label's value or null.</summary>
    public string? GetLabel(string key) => Labels is not null && Labels.TryGetValue(key, out var v) ? v : null;

    /// <summary>The annotation's value or null.</summary>
    public string? GetAnnotation(string key) => Annotations is not null && Annotations.TryGetValue(key, out var v) ? v : null;

    public void SetLabel(string key, string value) => (Labels ??= new(StringComparer.Ordinal))[key] = value;

    public void SetAnnotation(string key, string value) => (Annotations ??= new(StringComparer.Ordinal))[key] = value;
}

public sealed class OwnerReference : KubeModel
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    public string? Name { get; set; }
    public string? Uid { get; set; }
    public bool? Controller { get; set; }
    public bool? BlockOwnerDeletion { get; set; }
}

public sealed class ObjectReference : KubeModel
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    public string? Namespace { get; set; }
    public string? Name { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
}

public sealed class LocalObjectReference : KubeModel
{
    public string? Name { get; set; }
}

public sealed class ListMeta : KubeModel
{
    public string? ResourceVersion { get; set; }
    public string? Continue { get; set; }
    public long? RemainingItemCount { get; set; }
}

/// <summary>A list response (PodList, ServiceList...). Items carry no kind/apiVersion on the wire; the client fills them in.</summary>
public sealed class KubeList<T> : KubeModel where T : KubeObject
{
    [JsonPropertyOrder(-3)]
    public string? ApiVersion { get; set; }

    [JsonPropertyOrder(-2)]
    public string? Kind { get; set; }

    [JsonPropertyOrder(-1)]
    public ListMeta Metadata { get; set; } = new();

    public List<T> Items { get; set; } = [];
}

/// <summary>metav1.LabelSelector as it appears in specs (matchLabels + matchExpressions).</summary>
public sealed class LabelSelectorSpec : KubeModel
{
    public Dictionary<string, string>? MatchLabels { get; set; }
    public List<LabelSelectorRequirementSpec>? MatchExpressions { get; set; }
}

public sealed class LabelSelectorRequirementSpec : KubeModel
{
    public string? Key { get; set; }

    /// <summary>In, NotIn, Exists, DoesNotExist.</summary>
    public string? Operator { get; set; }

    public List<string>? Values { get; set; }
}
