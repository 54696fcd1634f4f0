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

    /// <summary>
    /// True when the local kernel does checksums for the stack, as it does for a NIC that offloads them (Linux tun with
    /// IFF_VNET_HDR): <see cref="ReadPacket(Span{byte}, out bool)"/> says which packets the kernel built (their
    /// checksum is not computed yet and needs no check), and <see cref="WritePacket(ReadOnlySpan{byte}, bool)"/> takes
    /// TCP segments whose checksum field holds only the pseudo-header sum. Packets delivered to a local socket are
    /// then never summed at all; the kernel finishes the checksum only for packets it sends on elsewhere.
    /// </summary>
    bool ChecksumOffload => false;

    /// <summary>
    /// <see cref="ReadPacket(Span{byte})"/>, and whether the local kernel vouches for the packet's checksums
    /// (always false without <see cref="ChecksumOffload"/>).
    /// </summary>
    int ReadPacket(Span<byte> buffer, out bool checksumTrusted)
    {
        checksumTrusted = false;
        return ReadPacket(buffer);
    }

    /// <summary>
    /// Sends one packet whose TCP checksum is partial (<paramref name="partialTcpChecksum"/>, only with
    /// <see cref="ChecksumOffload"/>) or complete.
    /// </summary>
    void WritePacket(ReadOnlySpan<byte> packet, bool partialTcpChecksum)
    {
        if (partialTcpChecksum) throw new NotSupportedException("This device does not finish checksums.");
        WritePacket(packet);
    }

    /// <summary>
    /// Sends one packet given in pieces (headers, then a payload that may lie in two pieces), as
    /// <see cref="WritePacket(ReadOnlySpan{byte}, bool)"/> would send them joined. A device that can write pieces
    /// (<c>writev</c>) sends them without joining them first.
    /// </summary>
    void WritePacket(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> payload1, ReadOnlySpan<byte> payload2, bool partialTcpChecksum) =>
        PacketPieces.Join(headers, payload1, payload2, (Device: this, Partial: partialTcpChecksum),
            static (packet, s) => s.Device.WritePacket(packet, s.Partial));
}

/// <summary>A tun device of the operating system.</summary>
public interface ITunDevice : IPacketDevice
{
    /// <summary>The interface name the OS knows it by (kt0, utun5, KtConnect).</summary>
    string Name { get; }
}
