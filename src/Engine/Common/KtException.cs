namespace KtConnect.Engine;

/// <summary>
/// What kind of failure an engine exception is. The cmdlets map it one-to-one onto
/// PowerShell's ErrorCategory; the engine itself knows nothing of PowerShell.
/// </summary>
public enum KtErrorCategory
{
    NotSpecified,
    InvalidArgument,
    InvalidData,
    InvalidOperation,
    ObjectNotFound,
    ResourceExists,
    ResourceBusy,
    ResourceUnavailable,
    PermissionDenied,
    AuthenticationError,
    SecurityError,
    ConnectionError,
    ProtocolError,
    OperationTimeout,
    OperationStopped,
    NotInstalled,
    NotImplemented,
    LimitsExceeded,
    DeviceError,
}

/// <summary>
/// Base of every exception the engine throws on purpose. <see cref="ErrorId"/> is stable across
/// releases (tests assert it, scripts match on it); the message is for people.
/// </summary>
public class KtException : Exception
{
    public KtException(string errorId, KtErrorCategory category, string message, Exception? inner = null, object? target = null)
        : base(message, inner)
    {
        ArgumentException.ThrowIfNullOrEmpty(errorId);
        ErrorId = errorId;
        Category = category;
        Target = target;
    }

    /// <summary>Stable PascalCase identifier, for example <c>KubeConfigNotFound</c>.</summary>
    public string ErrorId { get; }

    public KtErrorCategory Category { get; }

    /// <summary>The object the error is about (a file, a context, a Service name), when there is one.</summary>
    public object? Target { get; }
}
