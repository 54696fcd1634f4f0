using System.Diagnostics;

namespace KtConnect.Engine.Net;

/// <summary>
/// Keeps a device's native resources alive while calls use them: each read or write runs between <see cref="TryEnter"/>
/// and <see cref="Exit"/>, and <see cref="Close"/> refuses new calls, wakes a blocked reader and returns once the calls in
/// flight have left, so Dispose never frees a session, unloads a library or closes a descriptor under a running call
/// (a late write from a flow task would otherwise touch freed memory, or a reused descriptor number).
/// </summary>
public sealed class DeviceGate
{
    private int _inFlight;
    private int _closed;

    /// <summary>True when the call may go on (then <see cref="Exit"/> must follow); false once closing.</summary>
    public bool TryEnter()
    {
        Interlocked.Increment(ref _inFlight);
        if (Volatile.Read(ref _closed) == 0) return true;
        Interlocked.Decrement(ref _inFlight);
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _inFlight);

    /// <summary>A device's blocking read (see <see cref="IPacketDevice.ReadPacket(Span{byte})"/>).</summary>
    public delegate int PacketReader(Span<byte> buffer);

    /// <summary>Runs <paramref name="read"/> inside the gate; 0 (closed) once closing.</summary>
    public int Read(Span<byte> buffer, PacketReader read)
    {
        ArgumentNullException.ThrowIfNull(read);
        if (!TryEnter()) return 0;
        try
        {
            return read(buffer);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// Refuses new calls, then calls <paramref name="wake"/> (so a reader blocked in the device returns) until none is in
    /// flight. Returns false when some call was still inside after <paramref name="timeout"/>: the caller should then leak
    /// the native resources rather than free them under it. Only the first call closes; later ones return true at once.
    /// </summary>
    public bool Close(Action wake, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(wake);
        if (Interlocked.Exchange(ref _closed, 1) != 0) return true;
        var clock = Stopwatch.StartNew();
        wake();
        while (Volatile.Read(ref _inFlight) > 0)
        {
            if (clock.Elapsed > timeout) return false;
            Thread.Sleep(1);
            wake();
        }
        return true;
    }
}
