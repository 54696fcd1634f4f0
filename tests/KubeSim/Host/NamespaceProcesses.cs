using System.Diagnostics;

namespace KtConnect.KubeSim.Host;

/// <summary>
/// Long-running processes started in a network namespace through `ip netns exec`, owned by whoever made the
/// namespace (a <see cref="NetNs"/>, a simulated laptop): each is killed with its tree on <see cref="KillAllAsync"/>.
/// </summary>
public sealed class NamespaceProcesses(string netNsName)
{
    private readonly List<Process> _started = [];

    /// <summary>Starts <paramref name="argv"/> in the namespace, stdin/stdout/stderr redirected.</summary>
    public Process Start(IEnumerable<string> argv, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("ip")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var command = argv.ToList();
        foreach (var a in new[] { "netns", "exec", netNsName }.Concat(command)) psi.ArgumentList.Add(a);
        if (environment is not null)
        {
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        }
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + string.Join(' ', command));
        lock (_started) _started.Add(p);
        return p;
    }

    /// <summary>Kills every process started here (with its children) and waits a bounded time for each.</summary>
    public async Task KillAllAsync()
    {
        Process[] started;
        lock (_started)
        {
            started = [.. _started];
            _started.Clear();
        }
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
    }
}
