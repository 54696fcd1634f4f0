using System.Text;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// A terminal for <c>exec -t</c>: the command runs under util-linux <c>script</c> (<c>script -q -e -c CMD /dev/null</c>),
/// which gives it a pseudo-terminal as stdin/stdout/stderr (prompt, echo, line discipline, CR LF output, job control)
/// and exits with its exit code. The window size stays the pty's default: resize events are read and ignored.
/// </summary>
internal static class Pty
{
    /// <summary>The request to start: unchanged without a tty (or without <c>script</c> on this machine), else wrapped.</summary>
    public static ExecRequest Wrap(ExecRequest request)
    {
        if (!request.Tty || request.Command.Count == 0 || !File.Exists("/usr/bin/script")) return request;
        var command = string.Join(' ', request.Command.Select(Quote));
        return request with { Command = ["/usr/bin/script", "-q", "-e", "-c", command, "/dev/null"] };
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
