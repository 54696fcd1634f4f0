namespace KtConnect.Engine.Net;

/// <summary>Something that carries whole IP packets (no link header): a tun device or a test double.</summary>
public interface IPacketDevice : IDisposable
{
    int Mtu { get; }

    /// <summary>
    /// Blocks until a packet arrives and copies it into <paramref name="buffer"/>; returns its length,
    /// or 0 once the device is closed (by <see cref="IDisposable.Dispose"/> from another thread).
    /// </summary>
    int ReadPacket(Span<byte> buffer);

    /// <summary>Sends one packet. Safe to call from several threads.</summary>
    void WritePacket(ReadOnlySpan<byte> packet);
}

/// <summary>A tun device of the operating system.</summary>
public interface ITunDevice : IPacketDevice
{
    /// <summary>The interface name the OS knows it by (kt0, utun5, KtConnect).</summary>
    string Name { get; }
}
