namespace KtConnect.Engine.Sessions;

/// <summary>
/// A part of a session that can be undone on its own while the session goes on (e.g. one shadow pod and its link,
/// replaced when the pod is deleted). Steps are undone last first; what happens to the link events of a scoped
/// <see cref="SessionContext"/> is decided by <see cref="OnFail"/>, <see cref="OnReconnecting"/> and <see cref="OnRecovered"/>.
/// </summary>
public sealed class UndoScope
{
    private readonly object _gate = new();
    private readonly List<(string Description, Func<CancellationToken, Task> Undo, TimeSpan? Timeout)> _undo = [];

    /// <summary>A failure reported through the scoped context; null passes it to the session.</summary>
    public Action<Exception>? OnFail { get; init; }

    /// <summary>A dropped link reported through the scoped context; null passes it to the session.</summary>
    public Action<Exception>? OnReconnecting { get; init; }

    /// <summary>A recovered link reported through the scoped context; null passes it to the session.</summary>
    public Action? OnRecovered { get; init; }

    /// <summary>
    /// Registers a step. <paramref name="timeout"/> is how long it may take when that is not the undo's usual bound (a wait
    /// the user sized, a step made of bounded steps: <see cref="Timeout.InfiniteTimeSpan"/>).
    /// </summary>
    public void Defer(string description, Func<CancellationToken, Task> undo, TimeSpan? timeout = null)
    {
        lock (_gate) _undo.Add((description, undo, timeout));
    }

    /// <summary>Runs every step once, last first, each bounded by its own timeout or <paramref name="stepTimeout"/>; failures are warned and the first is returned.</summary>
    public async Task<Exception?> UndoAsync(IKtOutput output, TimeSpan stepTimeout) =>
        (await RunAllAsync(output, stepTimeout, output.Debug).ConfigureAwait(false)).FirstOrDefault().Error;

    /// <summary>As <see cref="UndoAsync"/>, saying each step to <paramref name="say"/>; returns every failure.</summary>
    internal async Task<IReadOnlyList<(string Description, Exception Error)>> RunAllAsync(IKtOutput output, TimeSpan stepTimeout, Action<string> say)
    {
        ArgumentNullException.ThrowIfNull(output);
        List<(string Description, Func<CancellationToken, Task> Undo, TimeSpan? Timeout)> undo;
        lock (_gate)
        {
            undo = [.. _undo];
            _undo.Clear();
        }
        var failures = new List<(string, Exception)>();
        for (var i = undo.Count - 1; i >= 0; i--)
        {
            try
            {
                say($"Restoring: {undo[i].Description}");
                await RunStepAsync(undo[i].Undo, undo[i].Timeout ?? stepTimeout).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                failures.Add((undo[i].Description, e));
                output.Warning($"Could not restore {undo[i].Description}: {e.Message}");
            }
        }
        return failures;
    }

    /// <summary>
    /// Runs one undo step with a token cancelled after <paramref name="timeout"/>, and stops waiting for it then even
    /// if the step does not honour the token: one stuck step never keeps the rest of a stop, and the process's
    /// exit, waiting. It fails with a <see cref="TimeoutException"/> then.
    /// </summary>
    internal static async Task RunStepAsync(Func<CancellationToken, Task> undo, TimeSpan timeout)
    {
        // A bound beyond what a timer takes (~24.8 days, say a huge --recoverWaitTime) is no bound.
        using var cts = new CancellationTokenSource(timeout.TotalMilliseconds >= int.MaxValue ? Timeout.InfiniteTimeSpan : timeout);
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
