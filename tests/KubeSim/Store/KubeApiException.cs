using System.Text.Json.Nodes;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// A failure the API server reports as a <c>Status</c> body: HTTP code plus the exact Status object the real
/// kube-apiserver would send (field order as Go marshals metav1.Status).
/// </summary>
public sealed class KubeApiException : KtException
{
    public KubeApiException(int code, string reason, string message, JsonObject? details, bool omitDetails = false)
        : base("KubeSim" + reason, CategoryOf(code), message)
    {
        Code = code;
        Reason = reason;
        Status = Statuses.Failure(code, reason, message, details, omitDetails);
    }

    public int Code { get; }

    public string Reason { get; }

    /// <summary>The Status object to send (clone before mutating).</summary>
    public JsonObject Status { get; }

    private static KtErrorCategory CategoryOf(int code) => code switch
    {
        400 => KtErrorCategory.InvalidArgument,
        401 => KtErrorCategory.AuthenticationError,
        403 => KtErrorCategory.PermissionDenied,
        404 => KtErrorCategory.ObjectNotFound,
        409 => KtErrorCategory.ResourceExists,
        422 => KtErrorCategory.InvalidData,
        _ => KtErrorCategory.ProtocolError,
    };

    public static KubeApiException NotFound(ResourceType type, string name) =>
        new(404, "NotFound", $"{type.QualifiedName} \"{name}\" not found", Details(type, name));

    public static KubeApiException NamespaceNotFound(string ns) =>
        new(404, "NotFound", $"namespaces \"{ns}\" not found", Details(ResourceTypes.Namespaces, ns));

    public static KubeApiException AlreadyExists(ResourceType type, string name) =>
        new(409, "AlreadyExists", $"{type.QualifiedName} \"{name}\" already exists", Details(type, name));

    public static KubeApiException Conflict(ResourceType type, string name, string why = "the object has been modified; please apply your changes to the latest version and try again") =>
        new(409, "Conflict", $"Operation cannot be fulfilled on {type.QualifiedName} \"{name}\": {why}", Details(type, name));

    public static KubeApiException BadRequest(string message) => new(400, "BadRequest", message, null, omitDetails: true);

    public static KubeApiException UnknownResource() =>
        new(404, "NotFound", "the server could not find the requested resource", []);

    public static KubeApiException MethodNotAllowed() =>
        new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", []);

    public static KubeApiException UnsupportedMediaType() =>
        new(415, "UnsupportedMediaType", "415: Unsupported Media Type", []);

    /// <summary>422 with the generic message and empty details, as a failed json-patch <c>test</c> gives.</summary>
    public static KubeApiException InvalidGeneric() =>
        new(422, "Invalid", "the server rejected our request due to an error in our request", []);

    /// <summary>422 Invalid with field causes; message built the way apimachinery's NewInvalid does.</summary>
    public static KubeApiException Invalid(string kind, string name, IReadOnlyList<FieldError> errors)
    {
        var parts = errors.Select(e => e.ToString()).ToArray();
        var message = parts.Length == 1
            ? $"{kind} \"{name}\" is invalid: {parts[0]}"
            : $"{kind} \"{name}\" is invalid: [{string.Join(", ", parts)}]";
        var causes = new JsonArray();
        foreach (var e in errors)
        {
            causes.Add(new JsonObject { ["reason"] = e.Reason, ["message"] = e.Detail, ["field"] = e.Field });
        }
        var details = new JsonObject { ["name"] = name, ["kind"] = kind, ["causes"] = causes };
        return new KubeApiException(422, "Invalid", message, details);
    }

    internal static JsonObject Details(ResourceType type, string name)
    {
        var d = new JsonObject { ["name"] = name };
        if (type.Group.Length > 0) d["group"] = type.Group;
        d["kind"] = type.Plural;
        return d;
    }
}

/// <summary>One field error of a 422, formatted like apimachinery's field.Error.</summary>
public sealed record FieldError(string Field, string Reason, string Detail)
{
    public static FieldError Required(string field, string? why = null) =>
        new(field, "FieldValueRequired", why is null ? "Required value" : "Required value: " + why);

    /// <summary><paramref name="goValue"/> is the value as Go's %#v prints it ("\"x\"", "70000", "[]string{...}").</summary>
    public static FieldError InvalidValue(string field, string goValue, string why) =>
        new(field, "FieldValueInvalid", $"Invalid value: {goValue}: {why}");

    public static FieldError NotSupported(string field, string goValue, IEnumerable<string> supported) =>
        new(field, "FieldValueNotSupported",
            $"Unsupported value: {goValue}: supported values: {string.Join(", ", supported.Select(s => "\"" + s + "\""))}");

    public override string ToString() => Field + ": " + Detail;
}
