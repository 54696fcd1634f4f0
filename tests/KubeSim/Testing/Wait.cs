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
    public static Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return ForAsync(condition, done => done, what, null, timeout, poll, cancellationToken);
    }

    /// <summary>
    /// Polls <paramref name="probe"/> until <paramref name="done"/> holds for what it returned, and returns that. Past
    /// the timeout the <see cref="TimeoutException"/> also shows the last result, through <paramref name="describe"/>
    /// (a command's stderr, a resource's state), so a failure says what was seen, not only what was awaited.
    /// </summary>
    public static async Task<T> ForAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, Func<T, string>? describe = null,
        TimeSpan? timeout = null, TimeSpan? poll = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        ArgumentException.ThrowIfNullOrEmpty(what);
        var limit = timeout ?? DefaultTimeout;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var last = await probe().ConfigureAwait(false);
            if (done(last)) return last;
            if (sw.Elapsed > limit)
                throw new TimeoutException(describe is null ? TimedOut(what, limit) : TimedOut(what, limit) + " Last seen: " + describe(last));
            await Task.Delay(poll ?? DefaultPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>"Timed out after 30 s waiting for {what}."</summary>
    public static string TimedOut(string what, TimeSpan timeout) =>
        string.Create(CultureInfo.InvariantCulture, $"Timed out after {timeout.TotalSeconds:0.###} s waiting for {what}.");
}
