namespace KtConnect.Engine;

/// <summary>Receives progress and messages from engine work, from any thread (the Sessions area queues it for a pipeline thread: `OutputQueue`).</summary>
public interface IKtOutput
{
    void Verbose(string message);

    void Warning(string message);

    void Debug(string message);

    /// <summary>Progress of a long wait; <paramref name="percent"/> is -1 when unknown; completed ends the bar.</summary>
    void Progress(string activity, string status, int percent = -1, bool completed = false);
}

/// <summary>Discards everything.</summary>
public sealed class NullOutput : IKtOutput
{
    public static NullOutput Instance { get; } = new();

    public void Verbose(string message) { }

    public void Warning(string message) { }

    public void Debug(string message) { }

    public void Progress(string activity, string status, int percent = -1, bool completed = false) { }
}
