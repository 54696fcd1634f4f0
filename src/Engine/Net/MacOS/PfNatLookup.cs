using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace KtConnect.Engine.Net.MacOS;

/// <summary>
/// struct pfioc_natlook as xnu's bsd/net/pfvar.h declares it (Apple's variant, not the BSDs'): four pf_addr
/// (16 bytes each), four pf_state_xport unions (4 bytes: a u_int16_t port, call_id or a u_int32_t spi), then
/// sa_family_t af (one byte on Darwin), proto, proto_variant, direction. 84 bytes, no padding.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PfiocNatlook
{
    public fixed byte SAddr[16];
    public fixed byte DAddr[16];
    public fixed byte RsAddr[16];
    public fixed byte RdAddr[16];
    public uint SxPort;
    public uint DxPort;
    public uint RsxPort;
    public uint RdxPort;
    public byte Af;
    public byte Proto;
    public byte ProtoVariant;
    public byte Direction;

    public const byte AfInet = 2;
    public const byte AfInet6 = 30;

    /// <summary>
    /// _IOWR('D', 23, struct pfioc_natlook) with Darwin's ioccom.h encoding: IOC_INOUT (0xC0000000), the
    /// parameter length masked to 13 bits at bit 16, the group at bit 8, the number in the low byte.
    /// </summary>
    public static uint DiocNatLook => Iowr('D', 23, (uint)sizeof(PfiocNatlook));

    public static uint Iowr(char group, byte number, uint length) => 0xC0000000u | ((length & 0x1FFF) << 16) | ((uint)group << 8) | number;

    /// <summary>PF_OUT from enum { PF_INOUT, PF_IN, PF_OUT }.</summary>
    public const byte PfOut = 2;

    /// <summary>
    /// The query for an accepted connection: the client's address/port as source, the listener's as destination,
    /// direction out (the state pf created for the redirected connection is keyed that way). Ports are in network
    /// byte order in the first two bytes of the union. IPv4-mapped IPv6 addresses (a dual-mode socket) are
    /// queried as IPv4, which is what pf saw.
    /// </summary>
    public static PfiocNatlook Query(IPEndPoint client, IPEndPoint listener)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(listener);
        var s = client.Address.IsIPv4MappedToIPv6 ? client.Address.MapToIPv4() : client.Address;
        var d = listener.Address.IsIPv4MappedToIPv6 ? listener.Address.MapToIPv4() : listener.Address;
        if (s.AddressFamily != d.AddressFamily)
        {
            throw new KtException("OriginalDestinationUnavailable", KtErrorCategory.InvalidArgument,
                $"Client {client} and listener {listener} are of different address families.");
        }
        var q = default(PfiocNatlook);
        q.Af = s.AddressFamily == AddressFamily.InterNetworkV6 ? AfInet6 : AfInet;
        q.Proto = 6;
        q.Direction = PfOut;
        var sb = s.GetAddressBytes();
        var db = d.GetAddressBytes();
        for (var i = 0; i < sb.Length; i++) q.SAddr[i] = sb[i];
        for (var i = 0; i < db.Length; i++) q.DAddr[i] = db[i];
        q.SxPort = PortField((ushort)client.Port);
        q.DxPort = PortField((ushort)listener.Port);
        return q;
    }

    /// <summary>The original destination pf reports (rdaddr/rdxport).</summary>
    public readonly IPEndPoint OriginalDestination
    {
        get
        {
            if (Af is not (AfInet or AfInet6))
                throw new KtException("OriginalDestinationUnavailable", KtErrorCategory.ProtocolError, $"pf answered with address family {Af}.");
            var bytes = new byte[Af == AfInet6 ? 16 : 4];
            fixed (byte* p = RdAddr)
            {
                new ReadOnlySpan<byte>(p, bytes.Length).CopyTo(bytes);
            }
            Span<byte> port = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(port, RdxPort);
            return new IPEndPoint(new IPAddress(bytes), BinaryPrimitives.ReadUInt16BigEndian(port));
        }
    }

    /// <summary>A port as the union holds it in memory: network byte order in the first two bytes (little-endian host).</summary>
    private static uint PortField(ushort port)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16BigEndian(b, port);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }
}

/// <summary>
/// Asks pf (DIOCNATLOOK on /dev/pf) where a connection the anchor's rdr rule redirected was going. One
/// descriptor for the listener's lifetime; the ioctl itself is thread-safe.
/// </summary>
[SupportedOSPlatform("macos")]
public sealed unsafe partial class PfNatLookup : IDisposable
{
    private const int ORdWr = 2;
    private const int OCloExec = 0x01000000; // Darwin <sys/fcntl.h>
    private int _fd;

    private PfNatLookup(int fd)
    {
        _fd = fd;
    }

    public static PfNatLookup Open()
    {
        // O_CLOEXEC: a child process (pfctl, a credential plugin) must not keep /dev/pf open after us.
        var fd = OpenDevice("/dev/pf", ORdWr | OCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new KtException("OriginalDestinationUnavailable", errno == 13 ? KtErrorCategory.PermissionDenied : KtErrorCategory.DeviceError,
                $"Cannot open /dev/pf (errno {errno}); redirect mode needs root.");
        }
        return new PfNatLookup(fd);
    }

    /// <summary>The original destination of the connection from <paramref name="client"/> accepted on <paramref name="local"/>.</summary>
    public IPEndPoint Lookup(IPEndPoint client, IPEndPoint local)
    {
        ObjectDisposedException.ThrowIf(_fd < 0, this);
        var q = PfiocNatlook.Query(client, local);
        var rc = DarwinIoctl.Call(_fd, PfiocNatlook.DiocNatLook, &q);
        if (rc != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new KtException("OriginalDestinationUnavailable", KtErrorCategory.ProtocolError,
                $"DIOCNATLOOK for {client} -> {local} failed (errno {errno}); the connection was not redirected by our anchor.");
        }
        return q.OriginalDestination;
    }

    /// <summary>For an accepted socket.</summary>
    public IPEndPoint Lookup(Socket accepted)
    {
        ArgumentNullException.ThrowIfNull(accepted);
        return Lookup((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
    }

    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) _ = CloseDevice(fd);
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenDevice(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseDevice(int fd);
}
