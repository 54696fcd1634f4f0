namespace KtConnect.Engine.Kube.Config;

/// <summary>
/// Finds and merges kubeconfig files the way client-go's loader does: an explicit path (must exist), else the
/// KUBECONFIG list (split on the platform's path separator, duplicates removed, missing files skipped, an error
/// only when every one is missing), else ~/.kube/config. Unreadable or unparseable files are errors naming the file.
/// </summary>
public sealed class KubeConfigLoader
{
    public const string KubeConfigVariable = "KUBECONFIG";

    public KubeConfigLoader(KubeConfigLoaderOptions? options = null)
    {
        Options = options ?? new KubeConfigLoaderOptions();
    }

    public KubeConfigLoaderOptions Options { get; }

    /// <summary>The files that would be read, in precedence order (before checking that they exist).</summary>
    public IReadOnlyList<string> GetCandidatePaths(string? explicitPath = null)
    {
        if (!string.IsNullOrEmpty(explicitPath)) return [Path.GetFullPath(explicitPath)];
        var list = Options.GetEnvironmentVariable(KubeConfigVariable);
        if (!string.IsNullOrEmpty(list))
        {
            var seen = new HashSet<string>(OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
            var paths = new List<string>();
            foreach (var part in list.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var full = Path.GetFullPath(part);
                if (seen.Add(full)) paths.Add(full);
            }
            if (paths.Count > 0) return paths;
        }
        return [Path.Combine(Options.ResolveHome(), ".kube", "config")];
    }

    /// <summary>Loads and merges the kubeconfig. Throws <see cref="KubeConfigNotFoundException"/> or <see cref="KubeConfigInvalidException"/>.</summary>
    public KubeConfig Load(string? explicitPath = null)
    {
        var candidates = GetCandidatePaths(explicitPath);
        var files = new List<KubeConfigFile>();
        foreach (var path in candidates)
        {
            if (Directory.Exists(path))
                throw new KubeConfigInvalidException(path, null, "is a directory, not a kubeconfig file.");
            if (!File.Exists(path))
            {
                if (!string.IsNullOrEmpty(explicitPath))
                    throw new KubeConfigNotFoundException($"The kubeconfig file '{path}' does not exist.", candidates);
                continue;
            }
            files.Add(KubeConfigParser.ParseFile(path));
        }
        if (files.Count == 0)
        {
            var fromEnv = !string.IsNullOrEmpty(Options.GetEnvironmentVariable(KubeConfigVariable));
            throw new KubeConfigNotFoundException(fromEnv
                ? $"None of the kubeconfig files in KUBECONFIG exist: {string.Join(", ", candidates)}."
                : $"No kubeconfig: '{candidates[0]}' does not exist. Set KUBECONFIG or pass a kubeconfig path.", candidates);
        }
        return Merge(files, Options);
    }

    /// <summary>For argument completers: the merged kubeconfig, or null when there is none or it is broken (never throws).</summary>
    public KubeConfig? TryLoad(string? explicitPath = null)
    {
        try
        {
            return Load(explicitPath);
        }
        catch (KtException)
        {
            return null;
        }
    }

    /// <summary>
    /// The client configuration for a context of the kubeconfig, falling back to the in-cluster configuration when
    /// no kubeconfig exists (or it defines no contexts), no path or context was asked for, and we run in a pod.
    /// </summary>
    public KubeClientConfiguration CreateClientConfiguration(string? explicitPath = null, string? contextName = null)
    {
        var fallback = string.IsNullOrEmpty(explicitPath) && string.IsNullOrEmpty(contextName) && InClusterConfiguration.IsAvailable(Options);
        KubeConfig config;
        try
        {
            config = Load(explicitPath);
        }
        catch (KubeConfigNotFoundException) when (fallback)
        {
            return InClusterConfiguration.Load(Options);
        }
        if (fallback && config.Contexts.Count == 0) return InClusterConfiguration.Load(Options);
        return config.CreateClientConfiguration(contextName);
    }

    /// <summary>Shortcut with the process environment: <c>new KubeConfigLoader().CreateClientConfiguration(path, context)</c>.</summary>
    public static KubeClientConfiguration LoadDefault(string? explicitPath = null, string? contextName = null) =>
        new KubeConfigLoader().CreateClientConfiguration(explicitPath, contextName);

    internal static KubeConfig Merge(IReadOnlyList<KubeConfigFile> files, KubeConfigLoaderOptions options)
    {
        var clusters = new Dictionary<string, KubeCluster>(StringComparer.Ordinal);
        var users = new Dictionary<string, KubeUser>(StringComparer.Ordinal);
        var contexts = new Dictionary<string, KubeContext>(StringComparer.Ordinal);
        string? current = null;
        foreach (var f in files)
        {
            // The first file to define a name wins with its whole entry; later entries are discarded, never merged.
            foreach (var c in f.Clusters) clusters.TryAdd(c.Name, c);
            foreach (var u in f.Users) users.TryAdd(u.Name, u);
            foreach (var c in f.Contexts) contexts.TryAdd(c.Name, c);
            if (string.IsNullOrEmpty(current)) current = f.CurrentContext;
        }
        return new KubeConfig(files.Select(f => f.Path).ToList(), current, clusters, users, contexts, options);
    }
}
