namespace KtConnect.KubeSim.Node;

/// <summary>Maps image references to what runs for them; null means the image cannot be pulled.</summary>
public interface IImageCatalog
{
    IImageLauncher? Resolve(string image);

    /// <summary>The launcher for a whole pod spec (a catalog may look at more than the image, e.g. its command); by default the image's.</summary>
    IImageLauncher? Resolve(PodSpecLite spec) => Resolve(spec.Image);
}

/// <summary>Prepares one kind of pod process (files under the pod directory, command line, readiness).</summary>
public interface IImageLauncher
{
    /// <summary>A short name for logs and <see cref="SimPodInfo.Launcher"/> ("sshd", "nginx", "echo").</summary>
    string Name { get; }

    Task<PodCommand> PrepareAsync(PodLaunchContext context, CancellationToken cancellationToken);
}

/// <summary>
/// What a launcher knows about the pod it prepares. <see cref="HostPath"/> maps a path inside the
/// container to the host file that stands for it (see <see cref="PodPaths"/>); <see cref="SeenAs"/> is the
/// path the pod's process itself must be given for that file.
/// </summary>
public sealed record PodLaunchContext(
    PodSpecLite Spec,
    string PodIp,
    string NetNsName,
    string PodDirectory,
    string SharedDirectory)
{
    public string EtcDirectory => "/etc/netns/" + NetNsName;

    public string HostPath(string containerPath) => PodPaths.HostPath(PodDirectory, EtcDirectory, containerPath);

    /// <summary>The container path itself when it is overlaid under /etc (the process sees it there), else the host path.</summary>
    public string SeenAs(string containerPath) => PodPaths.IsEtcOverlay(containerPath) ? containerPath : HostPath(containerPath);
}

/// <summary>
/// The command to run in the pod's namespace (argv[0] found on PATH) and when it counts as ready: every
/// port in <see cref="ReadinessPorts"/> accepts a TCP connection and <see cref="ReadyFile"/> (a host path,
/// when set) exists. <see cref="Programs"/> are executables the image has and the host does not: an exec
/// of such a container path (or of its name found on the pod's PATH) runs the given argv prefix followed by
/// the exec's arguments, in the pod as any exec (the router image's /usr/sbin/router).
/// </summary>
public sealed record PodCommand(
    IReadOnlyList<string> Argv,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<int> ReadinessPorts,
    string? ReadyFile = null,
    IReadOnlyDictionary<string, IReadOnlyList<string>>? Programs = null);

/// <summary>
/// Where a pod's files live on the host. Pods share the host's filesystem, with one exception that
/// `ip netns exec` provides: every entry of /etc/netns/&lt;netns&gt;/ is bind-mounted over /etc/&lt;entry&gt;
/// for every process started in the pod (its main process, exec, sshd's sessions). So a path
/// /etc/&lt;x&gt;/... whose /etc/&lt;x&gt; exists on the host is stored under /etc/netns/&lt;netns&gt;/&lt;x&gt;/... and
/// the pod sees it at its real path (its resolv.conf, hosts, the shadow's /etc/ssh, the router's
/// /etc/nginx); any other path is stored under &lt;pod dir&gt;/fs/&lt;path&gt; and the launcher points its
/// process there (the shadow's /root/authorized, /root/.ssh).
/// </summary>
public static class PodPaths
{
    public static string HostPath(string podDirectory, string etcDirectory, string containerPath)
    {
        var parts = Split(containerPath);
        return IsEtcOverlay(parts)
            ? Path.Combine([etcDirectory, .. parts[1..]])
            : Path.Combine([podDirectory, "fs", .. parts]);
    }

    public static bool IsEtcOverlay(string containerPath) => IsEtcOverlay(Split(containerPath));

    private static bool IsEtcOverlay(string[] parts) =>
        parts.Length >= 2 && parts[0] == "etc" && parts[1] != "netns" && Path.Exists("/etc/" + parts[1]);

    private static string[] Split(string containerPath)
    {
        var parts = containerPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (!containerPath.StartsWith('/') || parts.Any(p => p is "." or ".."))
            throw new Engine.KtException("SimInvalidPath", Engine.KtErrorCategory.InvalidArgument,
                $"'{containerPath}' is not a plain absolute path.", target: containerPath);
        return parts;
    }
}
