namespace KtConnect.Engine.Sessions;

/// <summary>
/// A part of a session that can be undone on its own while the session goes on (e.g. one shadow pod and its link,
/// replaced when the pod is deleted). Steps are undone last first; what happens to the link events of a scoped
/// <see cref="SessionContext"/> is decided by <see cref="OnFail"/>, <see cref="OnReconnecting"/> and <see cref="OnRecovered"/>.
/// </summary>
public sealed class UndoScope
{
    private readonly object _gate = new();
    private readonly List<(string Description, Func<CancellationToken, Task> Undo)> _undo = [];

    /// <summary>A failure reported through the scoped context; null passes it to the session.</summary>
    public Action<Exception>? OnFail { get; init; }

    /// <summary>A dropped link reported through the scoped context; null passes it to the session.</summary>
    public Action<Exception>? OnReconnecting { get; init; }

    /// <summary>A recovered link reported through the scoped context; null passes it to the session.</summary>
    public Action? OnRecovered { get; init; }

    public void Defer(string description, Func<CancellationToken, Task> undo)
    {
        lock (_gate) _undo.Add((description, undo));
    }

    /// <summary>Runs every step once, last first, each bounded by <paramref name="stepTimeout"/>; failures are warned and the first is returned.</summary>
    public async Task<Exception?> UndoAsync(IKtOutput output, TimeSpan stepTimeout)
    {
        ArgumentNullException.ThrowIfNull(output);
        List<(string Description, Func<CancellationToken, Task> Undo)> undo;
        lock (_gate)
        {
            undo = [.. _undo];
            _undo.Clear();
        }
        Exception? first = null;
        for (var i = undo.Count - 1; i >= 0; i--)
        {
            try
            {
                output.Debug($"undo: {undo[i].Description}");
                await RunStepAsync(undo[i].Undo, stepTimeout).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                first ??= e;
                output.Warning($"Could not restore {undo[i].Description}: {e.Message}");
            }
        }
        return first;
    }

    /// <summary>
    /// Runs one undo step with a token cancelled after <paramref name="timeout"/>, and stops waiting for it then even
    /// if the step does not honour the token: one stuck step never keeps the rest of a stop, and the process's
    /// exit, waiting. It fails with a <see cref="TimeoutException"/> then.
    /// </summary>
    internal static async Task RunStepAsync(Func<CancellationToken, Task> undo, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await undo(cts.Token).WaitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException($"it did not finish within {timeout.TotalSeconds:0.#} s");
        }
    }
}
