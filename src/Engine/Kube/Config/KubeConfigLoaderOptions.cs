namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// Where the loader looks and how credentials behave. Every input from outside the process (environment,
/// home directory, clock, terminal, service account directory) is here so tests can inject it.
/// </summary>
public sealed class KubeConfigLoaderOptions
{
    /// <summary>Reads an environment variable (KUBECONFIG, HOME, KUBERNETES_SERVICE_HOST/PORT, POD_NAMESPACE).</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>The home directory holding .kube/config; null means the user's profile directory.</summary>
    public string? HomeDirectory { get; init; }

    /// <summary>Clock for token-file re-reads and exec credential expiry.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The service account directory of in-cluster configuration (token, ca.crt, namespace).</summary>
    public string ServiceAccountDirectory { get; init; } = InClusterConfiguration.DefaultServiceAccountDirectory;

    /// <summary>Whether our stdin is a terminal, for exec plugins' interactiveMode.</summary>
    public Func<bool> IsStdinTerminal { get; init; } = static () => !Console.IsInputRedirected;

    /// <summary>Where a non-interactive exec plugin's stderr is copied (it is also kept for error messages). Null drops it.</summary>
    public TextWriter? ExecStandardError { get; init; }

    /// <summary>How long a non-interactive exec plugin may run.</summary>
    public TimeSpan ExecTimeout { get; init; } = TimeSpan.FromMinutes(2);

    internal string ResolveHome()
    {
        if (!string.IsNullOrEmpty(HomeDirectory)) return HomeDirectory;
        var home = OperatingSystem.IsWindows() ? null : GetEnvironmentVariable("HOME");
        return string.IsNullOrEmpty(home) ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) : home;
    }
}
