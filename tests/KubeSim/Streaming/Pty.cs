using System.Text;
using System.Text.Json;
using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// A terminal for <c>exec -t</c>: the command runs under util-linux <c>script</c> (<see cref="Terminal"/>), which gives
/// it a pseudo-terminal as stdin/stdout/stderr (prompt, echo, line discipline, CR LF output, job control) and exits
/// with its exit code. A resize event (<c>{"Width":W,"Height":H}</c>) becomes <c>stty -F /dev/pts/N rows H cols W</c>,
/// and the command gets SIGWINCH as under a real kubelet. Pods on the simulated node share the host's file system and
/// /dev/pts, so this works for them too.
/// </summary>
internal sealed class Pty : IDisposable
{
    private readonly string _ttyFile = Path.Combine(Path.GetTempPath(), "kubesim-tty-" + Guid.NewGuid().ToString("N"));

    private Pty(ExecRequest wrapped) => Request = wrapped;

    /// <summary>The request to start.</summary>
    public ExecRequest Request { get; private set; }

    /// <summary>The request unchanged without a tty (or without <c>script</c> here), else wrapped; null pty then.</summary>
    public static (ExecRequest Request, Pty? Pty) Wrap(ExecRequest request)
    {
        if (!request.Tty || request.Command.Count == 0 || !Terminal.Available) return (request, null);
        var pty = new Pty(request);
        pty.Request = request with { Command = Terminal.Wrap(request.Command, pty._ttyFile) };
        return (pty.Request, pty);
    }

    /// <summary>Applies one or more resize messages (JSON objects, possibly several in one frame).</summary>
    public async Task ResizeAsync(ReadOnlyMemory<byte> messages, CancellationToken ct)
    {
        foreach (var (width, height) in Sizes(messages))
        {
            if (!await Terminal.ResizeAsync(_ttyFile, width, height, ct).ConfigureAwait(false)) return;
        }
    }

    /// <summary>The terminal sizes in resize messages (<c>{"Width":W,"Height":H}</c>, one or more per frame); what does not
    /// decode is skipped, as the kubelet ignores it too.</summary>
    public static List<(int Width, int Height)> Sizes(ReadOnlyMemory<byte> messages)
    {
        var sizes = new List<(int, int)>();
        var text = Encoding.UTF8.GetString(messages.Span);
        foreach (var part in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try
            {
                using var doc = JsonDocument.Parse(part);
                sizes.Add((doc.RootElement.GetProperty("Width").GetInt32(), doc.RootElement.GetProperty("Height").GetInt32()));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                // Skipped.
            }
        }
        return sizes;
    }

    public void Dispose()
    {
        try
        {
            File.Delete(_ttyFile);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
