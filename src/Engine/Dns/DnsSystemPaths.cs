namespace KtConnect.Engine.Dns;

/// <summary>
/// Where the resolver configuration lives, under one root so tests point everything at a temporary directory.
/// The default root is "/" (the system); on Windows the hosts file is under %SystemRoot%.
/// </summary>
public sealed record DnsSystemPaths
{
    public DnsSystemPaths(string root = "/")
    {
        Root = root;
    }

    public string Root { get; }

    public static DnsSystemPaths System { get; } = new(OperatingSystem.IsWindows() ? Environment.GetFolderPath(Environment.SpecialFolder.Windows) : "/");

    public string ResolvConf => Under("etc", "resolv.conf");

    /// <summary>systemd-resolved's list of the real upstream servers (not the 127.0.0.53 stub).</summary>
    public string ResolvedUpstreamConf => Under("run", "systemd", "resolve", "resolv.conf");

    /// <summary>Exists only while systemd-resolved runs.</summary>
    public string ResolvedRuntimeDirectory => Under("run", "systemd", "resolve");

    public string MacResolverDirectory => Under("etc", "resolver");

    public string HostsFile => OperatingSystem.IsWindows() && Root == System.Root
        ? Path.Combine(Root, "System32", "drivers", "etc", "hosts")
        : Under("etc", "hosts");

    private string Under(params string[] parts) => Path.Combine([Root, .. parts]);
}
