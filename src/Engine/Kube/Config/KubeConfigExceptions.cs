namespace KtConnect.Engine.Kube.Config;

/// <summary>No kubeconfig file could be found (explicit path missing, every KUBECONFIG entry missing, no ~/.kube/config).</summary>
public sealed class KubeConfigNotFoundException : KtException
{
    public KubeConfigNotFoundException(string message, IReadOnlyList<string> searchedPaths)
        : base("KubeConfigNotFound", KtErrorCategory.ObjectNotFound, message, target: searchedPaths.Count == 1 ? searchedPaths[0] : null)
    {
        SearchedPaths = searchedPaths;
    }

    public IReadOnlyList<string> SearchedPaths { get; }
}

/// <summary>
/// A kubeconfig file cannot be read or parsed, or its content is inconsistent (a context naming a cluster that
/// does not exist, bad base64, conflicting credentials). Names the file and, when known, the line.
/// </summary>
public sealed class KubeConfigInvalidException : KtException
{
    public KubeConfigInvalidException(string? file, int? line, string message, Exception? inner = null)
        : base("KubeConfigInvalid", KtErrorCategory.InvalidData, Format(file, line, message), inner, file)
    {
        File = file;
        Line = line;
    }

    /// <summary>The kubeconfig file the problem is in, when it is about one file.</summary>
    public string? File { get; }

    /// <summary>1-based line in <see cref="File"/>, when the parser knows it.</summary>
    public int? Line { get; }

    private static string Format(string? file, int? line, string message) =>
        file is null ? message
        : line is null ? $"{file}: {message}"
        : $"{file}:{line}: {message}";
}

/// <summary>The requested context (or the current-context) is not defined; lists the ones that are.</summary>
public sealed class KubeContextNotFoundException : KtException
{
    public KubeContextNotFoundException(string? contextName, IReadOnlyList<string> availableContexts, IReadOnlyList<string> files)
        : base("KubeContextNotFound", KtErrorCategory.ObjectNotFound, Format(contextName, availableContexts, files), target: contextName)
    {
        ContextName = contextName;
        AvailableContexts = availableContexts;
    }

    /// <summary>The context asked for; null when none was given and no current-context is set.</summary>
    public string? ContextName { get; }

    public IReadOnlyList<string> AvailableContexts { get; }

    private static string Format(string? name, IReadOnlyList<string> available, IReadOnlyList<string> files)
    {
        var where = files.Count == 0 ? "the kubeconfig" : string.Join(", ", files);
        var list = available.Count == 0 ? "no contexts are defined" : "available contexts: " + string.Join(", ", available);
        return name is null
            ? $"No context was given and no current-context is set in {where}; {list}."
            : $"Context '{name}' is not defined in {where}; {list}.";
    }
}

/// <summary>Credentials cannot be produced: an unreadable token file, a bad client key, a removed auth provider.</summary>
public class KubeCredentialException : KtException
{
    public KubeCredentialException(string message, Exception? inner = null, object? target = null)
        : this("KubeCredentialError", KtErrorCategory.AuthenticationError, message, inner, target)
    {
    }

    protected KubeCredentialException(string errorId, KtErrorCategory category, string message, Exception? inner, object? target)
        : base(errorId, category, message, inner, target)
    {
    }
}

/// <summary>
/// An exec credential plugin could not be started, failed, or replied with something unusable.
/// ErrorId is <c>ExecPluginNotFound</c> when the command does not exist, else <c>ExecPluginFailed</c>.
/// </summary>
public sealed class ExecPluginFailedException : KubeCredentialException
{
    public ExecPluginFailedException(string command, string message, int? exitCode = null, string? standardError = null, Exception? inner = null, bool notFound = false)
        : base(notFound ? "ExecPluginNotFound" : "ExecPluginFailed",
            notFound ? KtErrorCategory.NotInstalled : KtErrorCategory.AuthenticationError, message, inner, command)
    {
        Command = command;
        ExitCode = exitCode;
        StandardError = standardError;
    }

    public string Command { get; }

    /// <summary>The plugin's exit code when it ran and exited non-zero.</summary>
    public int? ExitCode { get; }

    /// <summary>What the plugin wrote to stderr (captured when it was not interactive).</summary>
    public string? StandardError { get; }
}

/// <summary>The in-cluster configuration is not available (not in a pod, or the service account token is unreadable).</summary>
public sealed class InClusterConfigException : KtException
{
    public InClusterConfigException(string message, Exception? inner = null)
        : base("InClusterConfigUnavailable", KtErrorCategory.ObjectNotFound, message, inner)
    {
    }
}
