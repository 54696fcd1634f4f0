using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// A terminal for <c>exec -t</c>: the command runs under util-linux <c>script</c> (<c>script -q -e -c CMD /dev/null</c>),
/// which gives it a pseudo-terminal as stdin/stdout/stderr (prompt, echo, line discipline, CR LF output, job control)
/// and exits with its exit code. The wrapper first writes its terminal's path to a file, so a resize event
/// (<c>{"Width":W,"Height":H}</c>) becomes <c>stty -F /dev/pts/N rows H cols W</c>, and the command gets SIGWINCH as
/// under a real kubelet. Pods on the simulated node share the host's file system and /dev/pts, so this works for them too.
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
        if (!request.Tty || request.Command.Count == 0 || !File.Exists("/usr/bin/script")) return (request, null);
        var pty = new Pty(request);
        var command = string.Join(' ', request.Command.Select(Quote));
        pty.Request = request with
        {
            Command = ["/usr/bin/script", "-q", "-e", "-c", $"tty > {Quote(pty._ttyFile)} 2>/dev/null; exec {command}", "/dev/null"],
        };
        return (pty.Request, pty);
    }

    /// <summary>Applies one or more resize messages (JSON objects, possibly several in one frame).</summary>
    public async Task ResizeAsync(ReadOnlyMemory<byte> messages, CancellationToken ct)
    {
        var text = Encoding.UTF8.GetString(messages.Span);
        foreach (var part in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int width, height;
            try
            {
                using var doc = JsonDocument.Parse(part);
                width = doc.RootElement.GetProperty("Width").GetInt32();
                height = doc.RootElement.GetProperty("Height").GetInt32();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                continue; // The kubelet ignores what it cannot decode too.
            }
            var tty = await TtyAsync(ct).ConfigureAwait(false);
            if (tty is null) return;
            using var stty = Process.Start(new ProcessStartInfo("stty")
            {
                ArgumentList = { "-F", tty, "rows", height.ToString(CultureInfo.InvariantCulture), "cols", width.ToString(CultureInfo.InvariantCulture) },
                UseShellExecute = false,
                RedirectStandardError = true,
            });
            if (stty is not null) await stty.WaitForExitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>The terminal's path once the wrapper has written it (a resize may come before the command started).</summary>
    private async Task<string?> TtyAsync(CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(_ttyFile))
            {
                var path = (await File.ReadAllTextAsync(_ttyFile, ct).ConfigureAwait(false)).Trim();
                if (path.StartsWith("/dev/", StringComparison.Ordinal)) return path;
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
        return null;
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

    /// <summary>POSIX shell single quoting.</summary>
    private static string Quote(string arg)
    {
        if (arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '-' or '_' or '=' or ':' or ','))
        {
            return arg;
        }
        var sb = new StringBuilder("'");
        foreach (var c in arg) sb.Append(c == '\'' ? "'\\''" : c.ToString());
        return sb.Append('\'').ToString();
    }
}
