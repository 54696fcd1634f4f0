using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// A long-running process started with `ip netns exec` (which execs, so the pid is the program's), its
/// stdout and stderr appended to one log file, as a container runtime keeps a container's log. The
/// owner observes <see cref="Exited"/> (exit code once the log is flushed) and stops it with
/// <see cref="StopAsync"/>: SIGTERM, a grace period, then SIGKILL to the whole tree.
/// Like a container runtime's IO it also fans the output out to attachers (<see cref="Subscribe"/>: what is written
/// from then on, the log keeps everything), and it keeps stdin open when asked (<c>keepStdin</c>, a container's
/// <c>stdin: true</c> or <c>tty: true</c>) for <see cref="WriteStdinAsync"/>; otherwise stdin is closed at once.
/// </summary>
public sealed partial class NsProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly FileStream _log;
    private readonly SemaphoreSlim _logLock = new(1, 1);
    private readonly SemaphoreSlim _stdinLock = new(1, 1);
    private readonly List<OutputSubscription> _subscribers = [];
    private bool _stdoutEnded;
    private bool _stderrEnded;
    private Stream? _stdin;

    private NsProcess(Process process, FileStream log, string netNsName, bool keepStdin)
    {
        _process = process;
        _log = log;
        NetNsName = netNsName;
        Pid = process.Id;
        if (keepStdin) _stdin = process.StandardInput.BaseStream;
        else process.StandardInput.Close();
        Exited = WatchAsync();
    }

    public int Pid { get; }

    public string NetNsName { get; }

    /// <summary>Completes with the exit code after the process ended and its output is in the log.</summary>
    public Task<int> Exited { get; }

    public static NsProcess Start(string netNsName, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string> environment, string logPath,
        bool keepStdin = false)
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
        return new NsProcess(p, log, netNsName, keepStdin);
    }

    /// <summary>True while stdin is open (kept open at start and not closed since).</summary>
    public bool StdinOpen
    {
        get { lock (_subscribers) return _stdin is not null; }
    }

    /// <summary>Writes to the process's stdin; dropped when stdin is closed or the process stopped reading.</summary>
    public async Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _stdinLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Stream? stdin;
            lock (_subscribers) stdin = _stdin;
            if (stdin is null) return;
            await stdin.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            await stdin.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The process exited or closed its end.
        }
        finally
        {
            _stdinLock.Release();
        }
    }

    /// <summary>Closes the process's stdin (end of input); later writes are dropped.</summary>
    public void CloseStdin()
    {
        Stream? stdin;
        lock (_subscribers)
        {
            stdin = _stdin;
            _stdin = null;
        }
        try
        {
            stdin?.Dispose();
        }
        catch (IOException)
        {
            // Already gone.
        }
    }

    /// <summary>
    /// A new reader of the output from now on (stdout and/or stderr, each a channel of chunks that completes when the
    /// process's stream ends or the subscription is disposed).
    /// </summary>
    public OutputSubscription Subscribe(bool stdout, bool stderr)
    {
        var subscription = new OutputSubscription(this, stdout, stderr);
        lock (_subscribers)
        {
            if (_stdoutEnded) subscription.StdoutWriter?.TryComplete();
            if (_stderrEnded) subscription.StderrWriter?.TryComplete();
            _subscribers.Add(subscription);
        }
        return subscription;
    }

    internal void Unsubscribe(OutputSubscription subscription)
    {
        lock (_subscribers) _subscribers.Remove(subscription);
        subscription.StdoutWriter?.TryComplete();
        subscription.StderrWriter?.TryComplete();
    }

    /// <summary>One attacher's view of the output; dispose to detach.</summary>
    public sealed class OutputSubscription : IDisposable
    {
        private readonly NsProcess _owner;
        private readonly Channel<byte[]>? _stdout;
        private readonly Channel<byte[]>? _stderr;

        internal OutputSubscription(NsProcess owner, bool stdout, bool stderr)
        {
            _owner = owner;
            if (stdout) _stdout = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
            if (stderr) _stderr = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
        }

        public ChannelReader<byte[]>? Stdout => _stdout?.Reader;

        public ChannelReader<byte[]>? Stderr => _stderr?.Reader;

        internal ChannelWriter<byte[]>? StdoutWriter => _stdout?.Writer;

        internal ChannelWriter<byte[]>? StderrWriter => _stderr?.Writer;

        public void Dispose() => _owner.Unsubscribe(this);
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
        await Task.WhenAll(PumpAsync(_process.StandardOutput.BaseStream, stderr: false), PumpAsync(_process.StandardError.BaseStream, stderr: true))
            .ConfigureAwait(false);
        await _process.WaitForExitAsync().ConfigureAwait(false);
        CloseStdin();
        return _process.ExitCode;
    }

    private async Task PumpAsync(Stream from, bool stderr)
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
                    var chunk = buffer.AsSpan(0, n).ToArray();
                    lock (_subscribers)
                    {
                        foreach (var s in _subscribers) (stderr ? s.StderrWriter : s.StdoutWriter)?.TryWrite(chunk);
                    }
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
        finally
        {
            lock (_subscribers)
            {
                if (stderr) _stderrEnded = true;
                else _stdoutEnded = true;
                foreach (var s in _subscribers) (stderr ? s.StderrWriter : s.StdoutWriter)?.TryComplete();
            }
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
