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

    internal string ResolveHome() => ResolveHome(OperatingSystem.IsWindows());

    /// <summary>
    /// The home kubectl uses. On Windows that is the first of %HOME%, %HOMEDRIVE%%HOMEPATH% and %USERPROFILE% that holds
    /// a .kube\config, else the first of %HOME%, %USERPROFILE%, %HOMEDRIVE%%HOMEPATH% that exists, else the first set (a
    /// Git Bash or MSYS user's kubeconfig under %HOME% used to be missed). Elsewhere $HOME.
    /// </summary>
    internal string ResolveHome(bool windows)
    {
        if (!string.IsNullOrEmpty(HomeDirectory)) return HomeDirectory;
        if (!windows)
        {
            var home = GetEnvironmentVariable("HOME");
            return string.IsNullOrEmpty(home) ? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) : home;
        }
        var homeVariable = GetEnvironmentVariable("HOME");
        var (drive, path) = (GetEnvironmentVariable("HOMEDRIVE"), GetEnvironmentVariable("HOMEPATH"));
        var drivePath = string.IsNullOrEmpty(drive) || string.IsNullOrEmpty(path) ? null : drive + path;
        var profile = GetEnvironmentVariable("USERPROFILE");
        string?[] byConfig = [homeVariable, drivePath, profile];
        if (byConfig.FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(Path.Combine(p, ".kube", "config"))) is { } withConfig)
            return withConfig;
        string?[] byDirectory = [homeVariable, profile, drivePath];
        return byDirectory.FirstOrDefault(p => !string.IsNullOrEmpty(p) && Directory.Exists(p))
            ?? byDirectory.FirstOrDefault(p => !string.IsNullOrEmpty(p))
            ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
    }
}
