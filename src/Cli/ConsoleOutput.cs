using KtConnect.Engine;

namespace KtConnect.Cli;

/// <summary>Engine messages on stderr, one line each; debug lines only with --debug.</summary>
internal sealed class ConsoleOutput(TextWriter writer, bool debug) : IKtOutput
{
    private readonly object _gate = new();
    private string? _lastProgress;

    public void Verbose(string message) => Write(message);

    public void Warning(string message) => Write("warning: " + message);

    public void Debug(string message)
    {
        if (debug) Write("debug: " + message);
    }

    public void Progress(string activity, string status, int percent = -1, bool completed = false)
    {
        var line = percent >= 0 && !completed ? $"{activity}: {status} ({percent}%)" : $"{activity}: {status}";
        lock (_gate)
        {
            if (line == _lastProgress) return;
            _lastProgress = line;
        }
        Write(line);
    }

    private void Write(string line)
    {
        lock (_gate) writer.WriteLine(line);
    }
}
