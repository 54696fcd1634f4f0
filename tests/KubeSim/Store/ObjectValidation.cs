using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// The validation KubeSim does before storing an object: names (with apimachinery's exact messages) and the
/// few spec rules whose errors clients meet in practice. Returns every error found, like the real validators.
/// </summary>
internal static partial class ObjectValidation
{
    private const string Dns1123SubdomainMessage =
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    private const string Dns1123LabelMessage =
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

    private const string Dns1035LabelMessage =
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex Dns1123Subdomain();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex Dns1123Label();

    [GeneratedRegex("^[a-z]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex Dns1035Label();

    public static List<FieldError> Validate(ResourceType type, JsonObject obj)
    {
        var errors = new List<FieldError>();
        var name = obj["metadata"]?["name"]?.GetValue<string>() ?? "";
        ValidateName(type, name, errors);
        switch (type.Kind)
        {
            case "Pod":
                PodSpec(obj["spec"] as JsonObject, "spec", errors);
                break;
            case "Deployment":
            case "ReplicaSet":
                Workload(obj["spec"] as JsonObject, errors);
                break;
            case "Service":
                Service(obj["spec"] as JsonObject, errors);
                break;
            default:
                break;
        }
        return errors;
    }

    private static void ValidateName(ResourceType type, string name, List<FieldError> errors)
    {
        if (name.Length == 0)
        {
            errors.Add(FieldError.Required("metadata.name", "name or generateName is required"));
            return;
        }
        var (regex, message, max) = type.Kind switch
        {
            "Namespace" => (Dns1123Label(), Dns1123LabelMessage, 63),
            "Service" => (Dns1035Label(), Dns1035LabelMessage, 63),
            _ => (Dns1123Subdomain(), Dns1123SubdomainMessage, 253),
        };
        if (name.Length > max)
        {
            errors.Add(FieldError.InvalidValue("metadata.name", GoString(name), $"must be no more than {max} characters"));
        }
        else if (!regex.IsMatch(name))
        {
            errors.Add(FieldError.InvalidValue("metadata.name", GoString(name), message));
        }
    }

    private static void PodSpec(JsonObject? spec, string path, List<FieldError> errors)
    {
        if (spec?["containers"] is not JsonArray containers || containers.Count == 0)
        {
            errors.Add(FieldError.Required(path + ".containers"));
            return;
        }
        for (var i = 0; i < containers.Count; i++)
        {
            var c = containers[i] as JsonObject;
            var cp = $"{path}.containers[{i}]";
            if (string.IsNullOrEmpty(c?["name"]?.GetValue<string>())) errors.Add(FieldError.Required(cp + ".name"));
            if (string.IsNullOrEmpty(c?["image"]?.GetValue<string>())) errors.Add(FieldError.Required(cp + ".image"));
            if (c?["ports"] is JsonArray ports)
            {
                for (var j = 0; j < ports.Count; j++)
                {
                    var port = ports[j]?["containerPort"];
                    if (port is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n) && (n < 1 || n > 65535))
                    {
                        errors.Add(FieldError.InvalidValue($"{cp}.ports[{j}].containerPort", n.ToString(System.Globalization.CultureInfo.InvariantCulture),
                            "must be between 1 and 65535, inclusive"));
                    }
                }
            }
        }
    }

    private static void Workload(JsonObject? spec, List<FieldError> errors)
    {
        var selector = spec?["selector"] as JsonObject;
        if (selector is null)
        {
            errors.Add(FieldError.Required("spec.selector"));
        }
        var templateLabels = spec?["template"]?["metadata"]?["labels"] as JsonObject;
        if (selector?["matchLabels"] is JsonObject ml)
        {
            var labels = templateLabels?.ToDictionary(p => p.Key, p => p.Value?.GetValue<string>() ?? "") ?? [];
            var ok = ml.All(p => labels.TryGetValue(p.Key, out var v) && v == p.Value?.GetValue<string>());
            if (!ok)
            {
                var shown = "map[string]string{" + string.Join(", ", labels.OrderBy(p => p.Key, StringComparer.Ordinal)
                    .Select(p => GoString(p.Key) + ":" + GoString(p.Value))) + "}";
                errors.Add(FieldError.InvalidValue("spec.template.metadata.labels", shown, "`selector` does not match template `labels`"));
            }
        }
        PodSpec(spec?["template"]?["spec"] as JsonObject, "spec.template.spec", errors);
    }

    private static void Service(JsonObject? spec, List<FieldError> errors)
    {
        var type = spec?["type"]?.GetValue<string>() ?? "ClusterIP";
        if (type is not ("ClusterIP" or "NodePort" or "LoadBalancer" or "ExternalName"))
        {
            errors.Add(FieldError.NotSupported("spec.type", GoString(type), ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]));
        }
        var headless = spec?["clusterIP"]?.GetValue<string>() == "None";
        if (type != "ExternalName" && !headless && (spec?["ports"] is not JsonArray ports || ports.Count == 0))
        {
            errors.Add(FieldError.Required("spec.ports"));
            return;
        }
        if (spec?["ports"] is JsonArray ps)
        {
            for (var i = 0; i < ps.Count; i++)
            {
                var port = ps[i]?["port"];
                if (port is null)
                {
                    errors.Add(FieldError.Required($"spec.ports[{i}].port"));
                }
                else if (port is JsonValue v && v.TryGetValue<long>(out var n) && (n < 1 || n > 65535))
                {
                    errors.Add(FieldError.InvalidValue($"spec.ports[{i}].port", n.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        "must be between 1 and 65535, inclusive"));
                }
            }
        }
    }

    /// <summary>A string as Go's %q prints it.</summary>
    public static string GoString(string s) => JsonSerializer.Serialize(s, KubeJson.Options);
}
