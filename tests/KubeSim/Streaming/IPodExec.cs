using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Streaming;

/// <summary>An exec request as the kubelet receives it.</summary>
public sealed record ExecRequest(string Namespace, string Pod, string? Container, IReadOnlyList<string> Command, bool Stdin, bool Stdout,
    bool Stderr, bool Tty);

/// <summary>
/// Where pods/exec runs a command. KubeSim's node runtime plugs in here (run inside the pod's namespaces);
/// the default runs it as a local process. A command that cannot start throws <see cref="ExecStartException"/>.
/// </summary>
public interface IPodExec
{
    /// <summary>Starts <paramref name="request"/>; <paramref name="pod"/> is the stored object (read-only).</summary>
    Task<IExecProcess> StartAsync(ExecRequest request, JsonObject pod, CancellationToken cancellationToken);
}

/// <summary>A running exec. Streams are null when not requested. Dispose kills it if still running.</summary>
public interface IExecProcess : IAsyncDisposable
{
    Stream? Stdin { get; }

    Stream? Stdout { get; }

    Stream? Stderr { get; }

    Task<int> WaitForExitAsync(CancellationToken cancellationToken);
}

/// <summary>The command could not be started (no such binary): the kubelet's 500 InternalError (7f).</summary>
public sealed class ExecStartException(string message, Exception? inner = null)
    : Engine.KtException("KubeSimExecStartFailed", Engine.KtErrorCategory.NotInstalled, message, inner);

/// <summary>Default <see cref="IPodExec"/>: the argv runs as a local process (no shell added), streams piped.</summary>
public sealed class LocalProcessExec : IPodExec
{
    public Task<IExecProcess> StartAsync(ExecRequest request, JsonObject pod, CancellationToken cancellationToken)
    {
        if (request.Command.Count == 0) throw new ExecStartException("error executing command in container: command is empty");
        var psi = new ProcessStartInfo(request.Command[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in request.Command.Skip(1)) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new ExecStartException("error executing command in container: process did not start");
        }
        catch (Win32Exception e)
        {
            var cmd = request.Command[0];
            throw new ExecStartException(
                $"error executing command in container: failed to exec in container: failed to start exec \"{Guid.NewGuid():N}\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{cmd}\": stat {cmd}: no such file or directory: unknown",
                e);
        }
        return Task.FromResult<IExecProcess>(new LocalProcess(process, request));
    }

    private sealed class LocalProcess : IExecProcess
    {
        private readonly Process _process;

        public LocalProcess(Process process, ExecRequest request)
        {
            _process = process;
            Stdin = request.Stdin ? process.StandardInput.BaseStream : null;
            if (!request.Stdin) process.StandardInput.Close();
            Stdout = process.StandardOutput.BaseStream;
            Stderr = process.StandardError.BaseStream;
        }

        public Stream? Stdin { get; }

        public Stream? Stdout { get; }

        public Stream? Stderr { get; }

        public async Task<int> WaitForExitAsync(CancellationToken cancellationToken)
        {
            await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            return _process.ExitCode;
        }

        public ValueTask DisposeAsync()
        {
            try
            {
                if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
            _process.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
