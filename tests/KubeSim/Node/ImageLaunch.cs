namespace KtConnect.KubeSim.Node;

/// <summary>Maps image references to what runs for them; null means the image cannot be pulled.</summary>
public interface IImageCatalog
{
    IImageLauncher? Resolve(string image);
}

/// <summary>Prepares one kind of pod process (files under the pod directory, command line, readiness).</summary>
public interface IImageLauncher
{
    /// <summary>A short name for logs and <see cref="SimPodInfo.Launcher"/> ("sshd", "nginx", "echo").</summary>
    string Name { get; }

    Task<PodCommand> PrepareAsync(PodLaunchContext context, CancellationToken cancellationToken);
}

/// <summary>
/// What a launcher knows about the pod it prepares. Pod files live under <see cref="PodDirectory"/>;
/// <see cref="HostPath"/> maps a path inside the container to the host file that stands for it.
/// </summary>
public sealed record PodLaunchContext(
    PodSpecLite Spec,
    string PodIp,
    string NetNsName,
    string PodDirectory,
    string SharedDirectory)
{
    /// <summary>The host path that stands for <paramref name="containerPath"/>: &lt;pod dir&gt;/fs/&lt;path&gt;.</summary>
    public string HostPath(string containerPath) => PodPaths.HostPath(PodDirectory, containerPath);
}

/// <summary>
/// The process to run in the pod's namespace and when it counts as ready: every port in
/// <see cref="ReadinessPorts"/> accepts a TCP connection and <see cref="ReadyFile"/> (when set) exists.
/// </summary>
public sealed record PodCommand(
    IReadOnlyList<string> Argv,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<int> ReadinessPorts,
    string? ReadyFile = null);

/// <summary>Where a pod's files go on the host.</summary>
public static class PodPaths
{
    public static string HostPath(string podDirectory, string containerPath)
    {
        var parts = containerPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Any(p => p is "." or ".."))
            throw new Engine.KtException("SimInvalidPath", Engine.KtErrorCategory.InvalidArgument,
                $"'{containerPath}' is not a plain absolute path.", target: containerPath);
        return Path.Combine([podDirectory, "fs", .. parts]);
    }
}
