namespace KtConnect.Engine.Kube;

/// <summary>
/// The API server's idea of "now", from the Date header of its responses (kt-connect started a pod just to read
/// the clock). Date has one-second resolution, so the offset is accurate to about a second, which is what
/// heartbeats and lock expiry need.
/// </summary>
public sealed class ClusterClock
{
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private TimeSpan _offset;
    private bool _known;
    private DateTimeOffset _lastObserved;

    public ClusterClock(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>True once at least one response carried a Date header.</summary>
    public bool IsKnown
    {
        get { lock (_gate) return _known; }
    }

    /// <summary>Server time minus local time (zero until known).</summary>
    public TimeSpan Offset
    {
        get { lock (_gate) return _offset; }
    }

    /// <summary>The cluster's current time: local time corrected by the last observed offset.</summary>
    public DateTimeOffset UtcNow => _time.GetUtcNow() + Offset;

    /// <summary>When the last Date header was seen (local time).</summary>
    public DateTimeOffset LastObserved
    {
        get { lock (_gate) return _lastObserved; }
    }

    /// <summary>
    /// Records one response. The server stamped Date somewhere between sending our request and our receiving
    /// the answer, and truncated it to the second, so the best estimate is Date + 0.5 s at the midpoint.
    /// </summary>
    public void Observe(DateTimeOffset serverDate, DateTimeOffset requestSent, DateTimeOffset responseReceived)
    {
        var midpoint = requestSent + ((responseReceived - requestSent) / 2);
        var offset = serverDate + TimeSpan.FromMilliseconds(500) - midpoint;
        lock (_gate)
        {
            _offset = offset;
            _known = true;
            _lastObserved = responseReceived;
        }
    }
}
