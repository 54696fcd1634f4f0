using KtConnect.Engine.Net;

namespace KtConnect.Tests.Integration.Net;

/// <summary>
/// Wraps a device and drops or reorders packets in both directions with a fixed seed: `tc netem` for
/// kernels without sch_netem (containers). A reordered packet is held back and sent after the next one.
/// </summary>
public sealed class ImpairedDevice(IPacketDevice inner, double loss, double reorder, int seed) : IPacketDevice
{
    private readonly Random _readRng = new(seed);
    private readonly Random _writeRng = new(seed + 1);
    private readonly object _writeGate = new();
    private byte[]? _heldRead;
    private byte[]? _heldWrite;
    private long _dropped;

    public int Mtu => inner.Mtu;

    public long Dropped => Interlocked.Read(ref _dropped);

    public int ReadPacket(Span<byte> buffer)
    {
        if (_pending is not null)
        {
            var p = _pending;
            _pending = null;
            p.CopyTo(buffer);
            return p.Length;
        }
        while (true)
        {
            var n = inner.ReadPacket(buffer);
            if (n <= 0) return n;
            if (_readRng.NextDouble() < loss)
            {
                Interlocked.Increment(ref _dropped);
                continue;
            }
            if (_heldRead is null && _readRng.NextDouble() < reorder)
            {
                _heldRead = buffer[..n].ToArray();
                continue;
            }
            // The newer packet goes first, the held one right after it.
            _pending = _heldRead;
            _heldRead = null;
            return n;
        }
    }

    private byte[]? _pending;

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        lock (_writeGate)
        {
            if (_writeRng.NextDouble() < loss)
            {
                Interlocked.Increment(ref _dropped);
                return;
            }
            if (_heldWrite is null && _writeRng.NextDouble() < reorder)
            {
                _heldWrite = packet.ToArray();
                return;
            }
            inner.WritePacket(packet);
            if (_heldWrite is not null)
            {
                inner.WritePacket(_heldWrite);
                _heldWrite = null;
            }
        }
    }

    public void Dispose() => inner.Dispose();
}
