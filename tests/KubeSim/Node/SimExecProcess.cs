using System.Diagnostics;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// A command running in a pod (exec), with its pipes exposed for a caller that pumps them itself (an
/// exec WebSocket). Closing <see cref="Stdin"/> sends EOF. Dispose kills it and everything it started.
/// </summary>
public sealed class SimExecProcess : IAsyncDisposable
{
    private readonly Process _process;

    private SimExecProcess(Process process)
    {
        _process = process;
        Pid = process.Id;
    }

    public int Pid { get; }

    public Stream Stdin => _process.StandardInput.BaseStream;

    public Stream Stdout => _process.StandardOutput.BaseStream;

    public Stream Stderr => _process.StandardError.BaseStream;

    /// <summary>
    /// Starts <paramref name="argv"/> in <paramref name="netNsName"/> with exactly <paramref name="environment"/>.
    /// "SimExecNotFound" when argv[0] is not an executable on the pod's PATH (what a kubelet reports as
    /// "executable file not found"), checked before anything runs.
    /// </summary>
    internal static SimExecProcess Start(string netNsName, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment)
    {
        if (argv.Count == 0) throw new KtException("SimExecEmpty", KtErrorCategory.InvalidArgument, "exec needs a command.", target: netNsName);
        var path = environment.TryGetValue("PATH", out var p) ? p : "/usr/sbin:/usr/bin:/sbin:/bin";
        if (!IsExecutable(argv[0], path))
            throw new KtException("SimExecNotFound", KtErrorCategory.ObjectNotFound,
                $"exec: \"{argv[0]}\": executable file not found in $PATH", target: argv[0]);
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
        var process = Process.Start(psi) ?? throw new KtException("SimExecFailed", KtErrorCategory.InvalidOperation, "ip did not start.", target: netNsName);
        return new SimExecProcess(process);
    }

    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken = default)
    {
        await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
        }
        catch (InvalidOperationException) { }
        catch (TimeoutException) { }
        _process.Dispose();
    }

    private static bool IsExecutable(string program, string path)
    {
        if (program.Contains('/', StringComparison.Ordinal)) return File.Exists(program);
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, program)));
    }
}
