using System.Diagnostics;
using System.Globalization;

namespace KtConnect.KubeSim.Testing;

/// <summary>
/// The one polling wait of the tests and bench: a deadline, not a sleep. Polls <c>condition</c> until it holds;
/// past the timeout it throws a <see cref="TimeoutException"/> that names what was awaited and for how long.
/// An exception from the condition ends the wait with that exception. Lives in KubeSim because the unit and
/// integration tests and bench all reference it (and <c>SimCluster.WaitUntilAsync</c> builds on it).
/// </summary>
public static class Wait
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultPoll = TimeSpan.FromMilliseconds(20);

    /// <summary>Polls <paramref name="condition"/> every <paramref name="poll"/> until it holds or <paramref name="timeout"/> passes.</summary>
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(() => Task.FromResult(condition()), what, timeout, poll, cancellationToken);
    }

    /// <summary>As <see cref="UntilAsync(Func{bool}, string, TimeSpan?, TimeSpan?, CancellationToken)"/>, for a condition that awaits.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentException.ThrowIfNullOrEmpty(what);
        var limit = timeout ?? DefaultTimeout;
        var sw = Stopwatch.StartNew();
        while (!await condition().ConfigureAwait(false))
        {
            if (sw.Elapsed > limit) throw new TimeoutException(TimedOut(what, limit));
            await Task.Delay(poll ?? DefaultPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>"Timed out after 30 s waiting for {what}."</summary>
    public static string TimedOut(string what, TimeSpan timeout) =>
        string.Create(CultureInfo.InvariantCulture, $"Timed out after {timeout.TotalSeconds:0.###} s waiting for {what}.");
}
