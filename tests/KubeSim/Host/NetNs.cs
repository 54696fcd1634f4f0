using System.Diagnostics;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Host;

/// <summary>
/// A Linux network namespace that a test or KubeSim created and owns: `ip netns add` on create,
/// every process started in it killed and the namespace deleted on dispose. Names carry a prefix per
/// owner ("ktssh-", "ktnet-", "ktdns-", "ktsim-") so a crashed run's leftovers can be swept by prefix.
/// </summary>
public sealed class NetNs : IAsyncDisposable
{
    private readonly NamespaceProcesses _processes;

    private NetNs(string name)
    {
        Name = name;
        _processes = new NamespaceProcesses(name);
    }

    public string Name { get; }

    /// <summary>True on Linux as root with `ip` available: what network-namespace tests need.</summary>
    public static bool Available =>
        OperatingSystem.IsLinux() && Environment.UserName == "root" && ProcessRunner.IsOnPath("ip");

    /// <summary>Creates <c>{prefix}{random}</c> with loopback up.</summary>
    public static async Task<NetNs> CreateAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var name = prefix + Guid.NewGuid().ToString("N")[..8];
        await Ip(cancellationToken, "netns", "add", name).ConfigureAwait(false);
        var ns = new NetNs(name);
        await ns.ExecAsync(cancellationToken, "ip", "link", "set", "lo", "up").ConfigureAwait(false);
        return ns;
    }

    /// <summary>Runs a command inside the namespace to completion; throws when it fails.</summary>
    public async Task<ProcessResult> ExecAsync(CancellationToken cancellationToken, params string[] command)
    {
        var r = await RunAsync(command, cancellationToken).ConfigureAwait(false);
        return r.EnsureSuccess();
    }

    /// <summary>Runs a command inside the namespace to completion and returns its result, whatever the exit code.</summary>
    public Task<ProcessResult> RunAsync(IEnumerable<string> command, CancellationToken cancellationToken = default, string? stdin = null,
        TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync("ip", ["netns", "exec", Name, .. command], stdin, timeout, cancellationToken: cancellationToken);

    /// <summary>Starts a long-running process in the namespace; it is killed on dispose.</summary>
    public Process Start(params string[] command) => _processes.Start(command);

    /// <summary>
    /// Connects this namespace to <paramref name="other"/> (or to the root namespace when null) with a veth
    /// pair, addresses given in CIDR form, links up. Returns the interface names (here, there).
    /// </summary>
    public async Task<(string Here, string There)> LinkAsync(NetNs? other, string hereCidr, string thereCidr,
        CancellationToken cancellationToken = default)
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        var here = "vh" + id;
        var there = "vt" + id;
        await Ip(cancellationToken, "link", "add", here, "netns", Name, "type", "veth", "peer", "name", there,
            "netns", other?.Name ?? "1").ConfigureAwait(false);
        await ExecAsync(cancellationToken, "ip", "addr", "add", hereCidr, "dev", here).ConfigureAwait(false);
        await ExecAsync(cancellationToken, "ip", "link", "set", here, "up").ConfigureAwait(false);
        if (other is null)
        {
            await Ip(cancellationToken, "addr", "add", thereCidr, "dev", there).ConfigureAwait(false);
            await Ip(cancellationToken, "link", "set", there, "up").ConfigureAwait(false);
        }
        else
        {
            await other.ExecAsync(cancellationToken, "ip", "addr", "add", thereCidr, "dev", there).ConfigureAwait(false);
            await other.ExecAsync(cancellationToken, "ip", "link", "set", there, "up").ConfigureAwait(false);
        }
        return (here, there);
    }

    public async ValueTask DisposeAsync()
    {
        await _processes.KillAllAsync().ConfigureAwait(false);
        await KillRemainingAsync(Name).ConfigureAwait(false);
        await ProcessRunner.RunAsync("ip", ["netns", "del", Name]).ConfigureAwait(false);
    }

    /// <summary>Removes every namespace whose name starts with <paramref name="prefix"/> (leftovers of a crashed run).</summary>
    public static async Task SweepAsync(string prefix)
    {
        var list = await ProcessRunner.RunAsync("ip", ["netns", "list"]).ConfigureAwait(false);
        foreach (var line in list.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            if (!name.StartsWith(prefix, StringComparison.Ordinal)) continue;
            await KillRemainingAsync(name).ConfigureAwait(false);
            await ProcessRunner.RunAsync("ip", ["netns", "del", name]).ConfigureAwait(false);
        }
    }

    private static async Task KillRemainingAsync(string name)
    {
        var pids = await ProcessRunner.RunAsync("ip", ["netns", "pids", name]).ConfigureAwait(false);
        foreach (var pid in pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                using var p = Process.GetProcessById(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture));
                p.Kill(entireProcessTree: true);
            }
            catch (ArgumentException) { }
            catch (InvalidOperationException) { }
        }
    }

    private static async Task Ip(CancellationToken cancellationToken, params string[] args) =>
        (await ProcessRunner.RunAsync("ip", args, cancellationToken: cancellationToken).ConfigureAwait(false)).EnsureSuccess();
}
