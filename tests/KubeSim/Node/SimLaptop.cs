using System.Diagnostics;
using KtConnect.Engine;
using KtConnect.KubeSim.Host;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// The "laptop": a namespace whose only link is a veth /30 to the root namespace, with no default route,
/// so it reaches the API server's address (<see cref="ApiServerAddress"/>, the root end of the link, where
/// an API server listening in the root namespace is found) and nothing else: no pod, no Service, no real
/// network. It has its own /etc/resolv.conf and /etc/hosts (files under /etc/netns/NAME that
/// `ip netns exec` binds over /etc), so a `kt` that edits them never touches the machine's.
/// </summary>
public sealed class SimLaptop : IAsyncDisposable
{
    private readonly NamespaceProcesses _processes;
    private readonly Func<SimLaptop, Task> _onDisposed;
    private int _disposed;

    internal SimLaptop(string netNsName, string rootInterface, string address, string apiServerAddress, Func<SimLaptop, Task> onDisposed)
    {
        NetNsName = netNsName;
        RootInterface = rootInterface;
        Address = address;
        ApiServerAddress = apiServerAddress;
        _onDisposed = onDisposed;
        _processes = new NamespaceProcesses(netNsName);
    }

    public string NetNsName { get; }

    /// <summary>The root-namespace end of the link (name starts with "kts").</summary>
    public string RootInterface { get; }

    /// <summary>The laptop's own address (eth0 inside the namespace).</summary>
    public string Address { get; }

    /// <summary>The only address the laptop can reach: bind the API server here (or on 0.0.0.0).</summary>
    public string ApiServerAddress { get; }

    public string EtcDirectory => "/etc/netns/" + NetNsName;

    /// <summary>Runs a command in the laptop to completion (any exit code).</summary>
    public Task<ProcessResult> RunAsync(IReadOnlyList<string> argv, string? stdin = null, TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string?>? environment = null, CancellationToken cancellationToken = default) =>
        ProcessRunner.RunAsync("ip", ["netns", "exec", NetNsName, .. argv], stdin, timeout, environment, cancellationToken);

    /// <summary>Starts a long-running command in the laptop (stdin/stdout/stderr redirected); killed on dispose.</summary>
    public Process Start(IReadOnlyList<string> argv, IReadOnlyDictionary<string, string>? environment = null) =>
        _processes.Start(argv, environment);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _processes.KillAllAsync().ConfigureAwait(false);
        await _onDisposed(this).ConfigureAwait(false);
    }
}
