using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;

namespace KtConnect.Engine.Net.MacOS;

/// <summary>
/// The 4-byte header every utun packet carries: the address family in network byte order
/// (AF_INET = 2, AF_INET6 = 30 on Darwin). Pure functions, tested on any OS.
/// </summary>
public static class UtunFraming
{
    public const int HeaderLength = 4;
    public const uint AfInet = 2;
    public const uint AfInet6 = 30;

    /// <summary>Writes the header for the IP packet that follows it (its version nibble decides the family).</summary>
    public static void WriteHeader(Span<byte> header, ReadOnlySpan<byte> ipPacket)
    {
        if (ipPacket.IsEmpty) throw new MalformedPacketException("Empty packet.");
        var family = (ipPacket[0] >> 4) switch
        {
            4 => AfInet,
            6 => AfInet6,
            _ => throw new MalformedPacketException($"IP version {ipPacket[0] >> 4} cannot go through utun."),
        };
        BinaryPrimitives.WriteUInt32BigEndian(header, family);
    }

    /// <summary>The IP packet inside a utun frame, or false for a frame too short or of another family.</summary>
    public static bool TryUnwrap(ReadOnlySpan<byte> frame, out int offset, out int length)
    {
        offset = HeaderLength;
        length = frame.Length - HeaderLength;
        if (frame.Length <= HeaderLength) return false;
        var family = BinaryPrimitives.ReadUInt32BigEndian(frame);
        return family is AfInet or AfInet6;
    }
}

/// <summary>Darwin kernel-control structures for opening a utun, laid out as in sys/kern_control.h.</summary>
public static class UtunNative
{
    public const int PfSystem = 32;
    public const int AfSystem = 32;
    public const int SockDgram = 2;
    public const int SysprotoControl = 2;
    public const ushort AfSysControl = 2;
    public const int UtunOptIfname = 2;
    /// <summary>_IOWR('N', 3, struct ctl_info).</summary>
    public const uint CtlIocGInfo = 0xC0644E03;
    public const string ControlName = "com.apple.net.utun_control";

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct CtlInfo
    {
        public uint CtlId;
        public fixed byte CtlName[96];
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct SockaddrCtl
    {
        public byte ScLen;
        public byte ScFamily;
        public ushort SsSysaddr;
        public uint ScId;
        /// <summary>utunN is unit N + 1; 0 lets the kernel pick.</summary>
        public uint ScUnit;
        public fixed uint ScReserved[5];
    }

    public static unsafe CtlInfo MakeCtlInfo()
    {
        var info = default(CtlInfo);
        var name = Encoding.ASCII.GetBytes(ControlName);
        for (var i = 0; i < name.Length; i++) info.CtlName[i] = name[i];
        return info;
    }

    public static SockaddrCtl MakeAddress(uint ctlId, int? utunNumber) => new()
    {
        ScLen = (byte)Marshal.SizeOf<SockaddrCtl>(),
        ScFamily = AfSystem,
        SsSysaddr = AfSysControl,
        ScId = ctlId,
        ScUnit = utunNumber is { } n ? (uint)(n + 1) : 0,
    };
}

/// <summary>
/// A macOS utun device: PF_SYSTEM control socket connected to com.apple.net.utun_control, packets framed with
/// <see cref="UtunFraming"/>. Configured with ifconfig. Compiles everywhere, runs only on macOS.
/// </summary>
[SupportedOSPlatform("macos")]
public sealed partial class MacUtunDevice : ITunDevice
{
    private readonly int _fd;
    private readonly int[] _wake;
    private int _disposed;
    private readonly DeviceGate _gate = new();
    private readonly DeviceGate.PacketReader _readCore;
    private byte[]? _frame;

    private MacUtunDevice(int fd, int[] wake, string name, int mtu)
    {
        _readCore = ReadPacketCore;
        _fd = fd;
        _wake = wake;
        Name = name;
        Mtu = mtu;
    }

    public string Name { get; }

    public int Mtu { get; }

    public static unsafe MacUtunDevice Open(int mtu, int? utunNumber = null)
    {
        var fd = Socket(UtunNative.PfSystem, UtunNative.SockDgram, UtunNative.SysprotoControl);
        if (fd < 0) throw Error("TunOpenFailed", "socket(PF_SYSTEM)");
        try
        {
            if (DarwinIoctl.SetCloseOnExec(fd) < 0) throw Error("TunOpenFailed", "fcntl(FD_CLOEXEC)");
            var info = UtunNative.MakeCtlInfo();
            if (Ioctl(fd, UtunNative.CtlIocGInfo, &info) < 0) throw Error("TunOpenFailed", "ioctl(CTLIOCGINFO)");
            var addr = UtunNative.MakeAddress(info.CtlId, utunNumber);
            if (Connect(fd, &addr, (uint)sizeof(UtunNative.SockaddrCtl)) < 0) throw Error("TunOpenFailed", "connect(utun_control)");
            var name = stackalloc byte[32];
            var len = 32u;
            if (GetSockOpt(fd, UtunNative.SysprotoControl, UtunNative.UtunOptIfname, name, &len) < 0) throw Error("TunOpenFailed", "getsockopt(UTUN_OPT_IFNAME)");
            var wake = new int[2];
            fixed (int* w = wake)
            {
                if (Pipe(w) < 0) throw Error("TunOpenFailed", "pipe");
            }
            if (DarwinIoctl.SetCloseOnExec(wake[0]) < 0 || DarwinIoctl.SetCloseOnExec(wake[1]) < 0)
            {
                Close(wake[0]);
                Close(wake[1]);
                throw Error("TunOpenFailed", "fcntl(FD_CLOEXEC)");
            }
            return new MacUtunDevice(fd, wake, Encoding.ASCII.GetString(name, (int)len - 1), mtu);
        }
        catch
        {
            Close(fd);
            throw;
        }
    }

    public int ReadPacket(Span<byte> buffer) => _gate.Read(buffer, _readCore);

    private unsafe int ReadPacketCore(Span<byte> buffer)
    {
        // One frame buffer for the single reader thread: no allocation per packet.
        if (_frame is null || _frame.Length < buffer.Length + UtunFraming.HeaderLength) _frame = new byte[buffer.Length + UtunFraming.HeaderLength];
        var frame = _frame;
        var fds = stackalloc PollFd[2];
        while (Volatile.Read(ref _disposed) == 0)
        {
            fds[0] = new PollFd { Fd = _fd, Events = 1 };
            fds[1] = new PollFd { Fd = _wake[0], Events = 1 };
            if (Poll(fds, 2, -1) < 0)
            {
                if (Marshal.GetLastPInvokeError() == EINTR) continue;
                throw ReadFailed("poll");
            }
            if (Volatile.Read(ref _disposed) != 0) break;
            if ((fds[0].Revents & 1) == 0)
            {
                // POLLERR, POLLHUP or POLLNVAL without data: the device is gone; polling again would spin.
                if ((fds[0].Revents & (0x8 | 0x10 | 0x20)) != 0) throw new TunDeviceException("TunReadFailed", $"{Name} reports an error (poll revents 0x{fds[0].Revents:x}).", target: Name);
                continue;
            }
            nint n;
            fixed (byte* p = frame) n = Read(_fd, p, frame.Length);
            if (n == 0) break;
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is EINTR or EAGAIN) continue;
                throw ReadFailed("read");
            }
            if (!UtunFraming.TryUnwrap(frame.AsSpan(0, (int)n), out var offset, out var length)) continue;
            frame.AsSpan(offset, length).CopyTo(buffer);
            return length;
        }
        return 0;
    }

    public unsafe void WritePacket(ReadOnlySpan<byte> packet)
    {
        if (!_gate.TryEnter()) return;
        try
        {
            Span<byte> header = stackalloc byte[UtunFraming.HeaderLength];
            UtunFraming.WriteHeader(header, packet);
            fixed (byte* h = header)
            fixed (byte* p = packet)
            {
                var iov = stackalloc IoVec[2];
                iov[0] = new IoVec { Base = h, Length = UtunFraming.HeaderLength };
                iov[1] = new IoVec { Base = p, Length = packet.Length };
                WriteV(_fd, iov, 2);
            }
        }
        finally
        {
            _gate.Exit();
        }
    }

    public unsafe void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // A descriptor closed under a running call could be reused by the next open: let the calls leave first.
        if (!_gate.Close(WakeReader, TimeSpan.FromSeconds(5))) return;
        Close(_fd);
        Close(_wake[0]);
        Close(_wake[1]);
    }

    private unsafe void WakeReader()
    {
        byte one = 1;
        Write(_wake[1], &one, 1);
    }

    private const int EINTR = 4;
    private const int EAGAIN = 35; // macOS

    private TunDeviceException ReadFailed(string what) =>
        new("TunReadFailed", $"{what} on {Name} failed: errno {Marshal.GetLastPInvokeError()}.", target: Name);

    private static TunDeviceException Error(string id, string what) =>
        new(id, $"{what} failed: errno {Marshal.GetLastPInvokeError()}. Creating a utun device needs root.");

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nint Length;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    private static unsafe int Ioctl(int fd, nuint request, void* arg) => DarwinIoctl.Call(fd, request, arg);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static unsafe partial int Connect(int fd, void* address, uint length);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static unsafe partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport("libc", EntryPoint = "pipe", SetLastError = true)]
    private static unsafe partial int Pipe(int* fds);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, uint count, int timeout);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    private static unsafe partial nint WriteV(int fd, IoVec* iov, int count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
