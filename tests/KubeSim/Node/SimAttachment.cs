using System.Threading.Channels;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// One attacher of a pod's main process (<see cref="SimNode.Attach"/>), with containerd's semantics
/// (pkg/cri/io ContainerIO.Attach): <see cref="Stdout"/>/<see cref="Stderr"/> carry what the process writes from the
/// moment of attaching (the log capture and other attachers see it too); stderr is null with a tty (it is on the
/// terminal). Input goes to the main process only when the attacher asked for stdin and the container has
/// <c>stdin: true</c>. When the attacher's input ends (<see cref="EndStdin"/>, or it detaches having used stdin):
/// with <c>stdinOnce</c> and no tty the process's stdin is closed and output keeps flowing until it exits; otherwise
/// this attacher's output ends (it is detached) and the process's stdin stays open for the next one.
/// </summary>
public sealed class SimAttachment : IAsyncDisposable
{
    private readonly NsProcess _process;
    private readonly NsProcess.OutputSubscription _output;
    private readonly bool _stdinOnce;
    private readonly string _ttyFile;
    private int _stdinEnded;

    internal SimAttachment(NsProcess process, NsProcess.OutputSubscription output, bool usesStdin, bool stdinOnce, bool tty, string ttyFile)
    {
        _process = process;
        _output = output;
        UsesStdin = usesStdin;
        _stdinOnce = stdinOnce;
        Tty = tty;
        _ttyFile = ttyFile;
    }

    /// <summary>The container runs on a terminal (its spec's <c>tty</c>).</summary>
    public bool Tty { get; }

    /// <summary>Input reaches the main process (asked for, and the container has <c>stdin: true</c>).</summary>
    public bool UsesStdin { get; }

    public ChannelReader<byte[]>? Stdout => _output.Stdout;

    public ChannelReader<byte[]>? Stderr => _output.Stderr;

    /// <summary>Completes with the main process's exit code.</summary>
    public Task<int> Exited => _process.Exited;

    public Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        UsesStdin && Volatile.Read(ref _stdinEnded) == 0 ? _process.WriteStdinAsync(data, cancellationToken) : Task.CompletedTask;

    /// <summary>The attacher's input ended (SPDY FIN, v5 close of channel 0).</summary>
    public void EndStdin()
    {
        if (!UsesStdin || Interlocked.Exchange(ref _stdinEnded, 1) != 0) return;
        if (_stdinOnce && !Tty) _process.CloseStdin();
        else _output.Dispose();
    }

    /// <summary>Resizes the container's terminal; ignored without one.</summary>
    public Task ResizeAsync(int width, int height, CancellationToken cancellationToken) =>
        Tty ? Terminal.ResizeAsync(_ttyFile, width, height, cancellationToken) : Task.CompletedTask;

    public ValueTask DisposeAsync()
    {
        EndStdin();
        _output.Dispose();
        return ValueTask.CompletedTask;
    }
}
