using System.Diagnostics;
using System.Runtime.InteropServices;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// A long-running process started with `ip netns exec` (which execs, so the pid is the program's), its
/// stdout and stderr appended to one log file, as a container runtime keeps a container's log. The
/// owner observes <see cref="Exited"/> (exit code once the log is flushed) and stops it with
/// <see cref="StopAsync"/>: SIGTERM, a grace period, then SIGKILL to the whole tree.
/// </summary>
public sealed partial class NsProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly FileStream _log;
    private readonly SemaphoreSlim _logLock = new(1, 1);

    private NsProcess(Process process, FileStream log, string netNsName)
    {
        _process = process;
        _log = log;
        NetNsName = netNsName;
        Pid = process.Id;
        Exited = WatchAsync();
    }

    public int Pid { get; }

    public string NetNsName { get; }

    /// <summary>Completes with the exit code after the process ended and its output is in the log.</summary>
    public Task<int> Exited { get; }

    public static NsProcess Start(string netNsName, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment, string logPath)
    {
        var psi = new ProcessStartInfo("ip")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = "/",
        };
        foreach (var a in new[] { "netns", "exec", netNsName }.Concat(argv)) psi.ArgumentList.Add(a);
        psi.Environment.Clear();
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        var log = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 4096, useAsync: true);
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException("Process.Start returned null");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            log.Dispose();
            throw new KtException("SimProcessStartFailed", KtErrorCategory.InvalidOperation,
                $"Cannot start '{string.Join(' ', argv)}' in {netNsName}: {e.Message}", e, argv);
        }
        p.StandardInput.Close();
        return new NsProcess(p, log, netNsName);
    }

    /// <summary>SIGTERM, wait up to <paramref name="grace"/>, then SIGKILL the tree.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (!Exited.IsCompleted)
        {
            _ = Kill(Pid, SigTerm);
            try
            {
                await Exited.WaitAsync(grace).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }
        if (!Exited.IsCompleted)
        {
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            try
            {
                await Exited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
        _process.Dispose();
        await _log.DisposeAsync().ConfigureAwait(false);
        _logLock.Dispose();
    }

    private async Task<int> WatchAsync()
    {
        await Task.WhenAll(PumpAsync(_process.StandardOutput.BaseStream), PumpAsync(_process.StandardError.BaseStream)).ConfigureAwait(false);
        await _process.WaitForExitAsync().ConfigureAwait(false);
        return _process.ExitCode;
    }

    private async Task PumpAsync(Stream from)
    {
        var buffer = new byte[8192];
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer).ConfigureAwait(false)) > 0)
            {
                await _logLock.WaitAsync().ConfigureAwait(false);
                try
                {
                    await _log.WriteAsync(buffer.AsMemory(0, n)).ConfigureAwait(false);
                    await _log.FlushAsync().ConfigureAwait(false);
                }
                finally
                {
                    _logLock.Release();
                }
            }
        }
        catch (IOException)
        {
        }
    }

    internal const int SigTerm = 15;
    internal const int SigKill = 9;
    internal const int SigHup = 1;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    /// <summary>SIGKILLs every process left in the namespace (sessions an sshd forked, strays), a few rounds.</summary>
    public static async Task KillAllInAsync(string netNsName)
    {
        for (var round = 0; round < 5; round++)
        {
            var r = await ProcessRunner.RunAsync("ip", ["netns", "pids", netNsName]).ConfigureAwait(false);
            var pids = r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, out var pid) ? pid : 0)
                .Where(pid => pid > 1 && pid != Environment.ProcessId).ToArray();
            if (pids.Length == 0) return;
            foreach (var pid in pids) _ = Kill(pid, SigKill);
            await Task.Delay(50).ConfigureAwait(false);
        }
    }
}
