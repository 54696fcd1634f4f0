using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

/// <summary>
/// The API server refused a request: every metav1.Status reason becomes a subclass of this, keeping the
/// server's message, reason, HTTP code and details. The message also names the verb, the resource and the
/// server, so "forbidden" always says what was refused and where.
/// </summary>
public class KubeApiException : KtException
{
    public KubeApiException(KubeApiError error, string errorId, KtErrorCategory category, Exception? inner = null)
        : base(errorId, category, (error ?? throw new ArgumentNullException(nameof(error))).Describe(), inner, error.Target)
    {
        Error = error;
    }

    public KubeApiError Error { get; }

    /// <summary>HTTP status (or the Status body's code when it has one).</summary>
    public int Code => Error.Code;

    /// <summary>The Status reason (NotFound, Conflict, ...), derived from the code when the body had none.</summary>
    public string Reason => Error.Reason;

    /// <summary>The server's own message, unchanged.</summary>
    public string ServerMessage => Error.ServerMessage;

    public StatusDetails? Details => Error.Status?.Details;

    public KubeStatus? Status => Error.Status;

    /// <summary>Seconds the server asked us to wait (details.retryAfterSeconds or a Retry-After header).</summary>
    public int? RetryAfterSeconds => Error.RetryAfterSeconds;

    /// <summary>get, list, watch, create, update, patch, delete, ...</summary>
    public string Verb => Error.Verb;

    /// <summary>The resource the request was about, e.g. "pods" or "deployments.apps/scale".</summary>
    public string Resource => Error.Resource;
}

/// <summary>Everything known about one failed API request.</summary>
public sealed record KubeApiError
{
    public required int Code { get; init; }
    public required string Reason { get; init; }
    public required string ServerMessage { get; init; }
    public KubeStatus? Status { get; init; }
    public int? RetryAfterSeconds { get; init; }
    public string Verb { get; init; } = "";
    public string Resource { get; init; } = "";
    public string? Namespace { get; init; }
    public string? Name { get; init; }
    public string Server { get; init; } = "";
    public string Context { get; init; } = "";

    internal object? Target => Name is null ? Resource : (Namespace is null ? Name : Namespace + "/" + Name);

    internal string Describe()
    {
        var what = Resource.Length == 0 ? "" : Name is null ? Resource : Resource + " \"" + Name + "\"";
        var where = Namespace is null or "" ? "" : " in namespace \"" + Namespace + "\"";
        var verb = Verb.Length == 0 ? "request" : Verb;
        var ctx = Context.Length == 0 ? "" : ", context \"" + Context + "\"";
        var msg = ServerMessage.Length == 0 ? Reason : ServerMessage;
        return $"{Reason}: {verb} {what}{where} refused by {Server}{ctx}: {msg}";
    }
}

public sealed class KubeBadRequestException(KubeApiError e) : KubeApiException(e, "KubeBadRequest", KtErrorCategory.InvalidArgument);
public sealed class KubeUnauthorizedException(KubeApiError e) : KubeApiException(e, "KubeUnauthorized", KtErrorCategory.AuthenticationError);
public sealed class KubeForbiddenException(KubeApiError e) : KubeApiException(e, "KubeForbidden", KtErrorCategory.PermissionDenied);
public sealed class KubeNotFoundException(KubeApiError e) : KubeApiException(e, "KubeNotFound", KtErrorCategory.ObjectNotFound);
public sealed class KubeMethodNotAllowedException(KubeApiError e) : KubeApiException(e, "KubeMethodNotAllowed", KtErrorCategory.InvalidOperation);
public sealed class KubeNotAcceptableException(KubeApiError e) : KubeApiException(e, "KubeNotAcceptable", KtErrorCategory.ProtocolError);
public sealed class KubeAlreadyExistsException(KubeApiError e) : KubeApiException(e, "KubeAlreadyExists", KtErrorCategory.ResourceExists);
public sealed class KubeConflictException(KubeApiError e) : KubeApiException(e, "KubeConflict", KtErrorCategory.ResourceBusy);

/// <summary>Gone or Expired (410): a resourceVersion or continue token is too old; re-list.</summary>
public sealed class KubeGoneException(KubeApiError e) : KubeApiException(e, "KubeGone", KtErrorCategory.InvalidOperation);

public sealed class KubeRequestEntityTooLargeException(KubeApiError e) : KubeApiException(e, "KubeRequestEntityTooLarge", KtErrorCategory.LimitsExceeded);
public sealed class KubeUnsupportedMediaTypeException(KubeApiError e) : KubeApiException(e, "KubeUnsupportedMediaType", KtErrorCategory.ProtocolError);
public sealed class KubeInvalidException(KubeApiError e) : KubeApiException(e, "KubeInvalid", KtErrorCategory.InvalidData);
public sealed class KubeTooManyRequestsException(KubeApiError e) : KubeApiException(e, "KubeTooManyRequests", KtErrorCategory.LimitsExceeded);
public sealed class KubeInternalErrorException(KubeApiError e) : KubeApiException(e, "KubeInternalError", KtErrorCategory.NotSpecified);
public sealed class KubeServiceUnavailableException(KubeApiError e) : KubeApiException(e, "KubeServiceUnavailable", KtErrorCategory.ConnectionError);

/// <summary>Timeout (504) or ServerTimeout (500): the server gave up; the request may be retried.</summary>
public sealed class KubeServerTimeoutException(KubeApiError e) : KubeApiException(e, "KubeServerTimeout", KtErrorCategory.OperationTimeout);

/// <summary>The API server could not be reached or the connection broke (DNS, refused, reset, proxy).</summary>
public sealed class KubeConnectionException(string message, Exception? inner = null, object? target = null)
    : KtException("KubeServerUnreachable", KtErrorCategory.ConnectionError, message, inner, target);

/// <summary>The TLS handshake with the API server failed (unknown CA, name mismatch, client certificate refused).</summary>
public sealed class KubeTlsException(string message, Exception? inner = null, object? target = null)
    : KtException("KubeTlsFailure", KtErrorCategory.SecurityError, message, inner, target);

/// <summary>The API server did not answer within the request timeout.</summary>
public sealed class KubeRequestTimeoutException(string message, Exception? inner = null, object? target = null)
    : KtException("KubeRequestTimeout", KtErrorCategory.OperationTimeout, message, inner, target);

/// <summary>The server's answer was not what the protocol says (a non-JSON body, a broken watch stream, a bad frame).</summary>
public sealed class KubeProtocolException(string errorId, string message, Exception? inner = null, object? target = null)
    : KtException(errorId, KtErrorCategory.ProtocolError, message, inner, target);

/// <summary>The pod side of a port-forward failed (the error channel's text, e.g. connection refused in the pod).</summary>
public sealed class KubePortForwardException(string message, int port, string pod)
    : KtException("KubePortForwardFailed", KtErrorCategory.ConnectionError, message, null, pod)
{
    public int Port { get; } = port;
}

/// <summary>An exec could not run the command (not found, container gone); a non-zero exit is a result, not this.</summary>
public sealed class KubeExecException(string message, KubeStatus? status, string pod)
    : KtException("KubeExecFailed", KtErrorCategory.InvalidOperation, message, null, pod)
{
    public KubeStatus? Status { get; } = status;
}
