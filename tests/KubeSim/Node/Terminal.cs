using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// A pseudo-terminal for a process, from util-linux <c>script</c>: <c>script -q -e -c 'tty &gt; FILE; exec CMD' /dev/null</c>
/// gives CMD a pty as stdin/stdout/stderr (prompt, echo, line discipline, CR LF output) and exits with its exit code;
/// FILE then names the pty, so a resize is <c>stty -F /dev/pts/N rows H cols W</c> (the process gets SIGWINCH).
/// Used for exec -t and for the main process of a container with <c>tty: true</c>.
/// </summary>
public static class Terminal
{
    public const string Script = "/usr/bin/script";

    public static bool Available => File.Exists(Script);

    /// <summary><paramref name="argv"/> under script, writing the pty's path to <paramref name="ttyFile"/> first.</summary>
    public static IReadOnlyList<string> Wrap(IReadOnlyList<string> argv, string ttyFile)
    {
        var command = string.Join(' ', argv.Select(Quote));
        return [Script, "-q", "-e", "-c", $"tty > {Quote(ttyFile)} 2>/dev/null; exec {command}", "/dev/null"];
    }

    /// <summary>Sets the pty named in <paramref name="ttyFile"/> to <paramref name="height"/> rows and <paramref name="width"/> columns
    /// (waits up to 10 s for the file: a resize may come before the process started). False when there is no pty.</summary>
    public static async Task<bool> ResizeAsync(string ttyFile, int width, int height, CancellationToken ct)
    {
        var tty = await TtyAsync(ttyFile, ct).ConfigureAwait(false);
        if (tty is null) return false;
        using var stty = Process.Start(new ProcessStartInfo("stty")
        {
            ArgumentList = { "-F", tty, "rows", height.ToString(CultureInfo.InvariantCulture), "cols", width.ToString(CultureInfo.InvariantCulture) },
            UseShellExecute = false,
            RedirectStandardError = true,
        });
        if (stty is not null) await stty.WaitForExitAsync(ct).ConfigureAwait(false);
        return true;
    }

    private static async Task<string?> TtyAsync(string ttyFile, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(ttyFile))
            {
                var path = (await File.ReadAllTextAsync(ttyFile, ct).ConfigureAwait(false)).Trim();
                if (path.StartsWith("/dev/", StringComparison.Ordinal)) return path;
            }
            await Task.Delay(20, ct).ConfigureAwait(false);
        }
        return null;
    }

    /// <summary>POSIX shell single quoting.</summary>
    public static string Quote(string arg)
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
