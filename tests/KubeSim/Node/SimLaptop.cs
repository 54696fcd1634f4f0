using System.Diagnostics;
using KtConnect.Engine;

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
    private readonly List<Process> _started = [];
    private readonly Func<SimLaptop, Task> _onDisposed;
    private int _disposed;

    internal SimLaptop(string netNsName, string rootInterface, string address, string apiServerAddress, Func<SimLaptop, Task> onDisposed)
    {
        NetNsName = netNsName;
        RootInterface = rootInterface;
        Address = address;
        ApiServerAddress = apiServerAddress;
        _onDisposed = onDisposed;
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
    public Process Start(IReadOnlyList<string> argv, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("ip")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { "netns", "exec", NetNsName }.Concat(argv)) psi.ArgumentList.Add(a);
        if (environment is not null)
        {
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        }
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + string.Join(' ', argv));
        lock (_started) _started.Add(p);
        return p;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Process[] started;
        lock (_started) started = [.. _started];
        foreach (var p in started)
        {
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }
            catch (InvalidOperationException) { }
            catch (TimeoutException) { }
            p.Dispose();
        }
        await _onDisposed(this).ConfigureAwait(false);
    }
}
