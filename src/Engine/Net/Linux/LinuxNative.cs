using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace KtConnect.Engine.Net.Linux;

/// <summary>libc calls the Linux tun device and the transparent listener need.</summary>
[SupportedOSPlatform("linux")]
internal static partial class LinuxNative
{
    public const int O_RDWR = 0x2;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;
    public const int CLONE_NEWNET = 0x40000000;
    public const short POLLIN = 0x1;
    public const int EAGAIN = 11;
    public const int EINTR = 4;

    /// <summary>_IOW('T', 202, int).</summary>
    public const uint TUNSETIFF = 0x400454ca;
    public const short IFF_TUN = 0x0001;
    public const short IFF_NO_PI = 0x1000;
    /// <summary>Each packet is preceded by a struct virtio_net_hdr (checksum and segmentation offload).</summary>
    public const short IFF_VNET_HDR = 0x4000;
    /// <summary>_IOW('T', 208, unsigned int): which offloads the device may hand us.</summary>
    public const uint TUNSETOFFLOAD = 0x400454d0;
    public const uint TUN_F_CSUM = 0x01;

    /// <summary>struct virtio_net_hdr (legacy layout, host byte order), the 10 bytes before each packet with IFF_VNET_HDR.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public struct VirtioNetHdr
    {
        public const byte NeedsChecksum = 1;
        public const byte DataValid = 2;

        public byte Flags;
        public byte GsoType;
        public ushort HdrLen;
        public ushort GsoSize;
        public ushort CsumStart;
        public ushort CsumOffset;
    }

    [StructLayout(LayoutKind.Sequential)]
    public unsafe struct IoVec
    {
        public void* Base;
        public nint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>struct ifreq: a 16-byte name and a 24-byte union, of which we use the flags.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 40)]
    public unsafe struct IfReq
    {
        [FieldOffset(0)]
        public fixed byte Name[16];

        [FieldOffset(16)]
        public short Flags;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static unsafe partial int Ioctl(int fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static unsafe partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static unsafe partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "readv", SetLastError = true)]
    public static unsafe partial nint ReadV(int fd, IoVec* iov, int count);

    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    public static unsafe partial nint WriteV(int fd, IoVec* iov, int count);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static unsafe partial int Poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    public static unsafe partial int GetSockOpt(nint socket, int level, int name, void* value, int* length);

    public static string Error(int errno) => Marshal.GetPInvokeErrorMessage(errno) + $" (errno {errno})";
}

/// <summary>A file descriptor closed exactly once, after the last in-flight call released it.</summary>
[SupportedOSPlatform("linux")]
internal sealed class SafeFd : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeFd(int fd)
        : base(ownsHandle: true) => SetHandle(fd);

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => LinuxNative.Close((int)handle) == 0;
}
