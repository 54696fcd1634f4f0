using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace KtConnect.Engine.Net.MacOS;

/// <summary>
/// ioctl(2) on Darwin. The C prototype is variadic (<c>int ioctl(int, unsigned long, ...)</c>) and P/Invoke has no
/// variadic calls. On Apple arm64 variadic arguments are passed on the stack, not in the next register, so the
/// pointer goes as the ninth argument after six unused register-sized ones (x2..x7); on x64 (System V) variadic
/// integer arguments use the same registers as fixed ones, so the three-argument form is right.
/// </summary>
[SupportedOSPlatform("macos")]
internal static unsafe partial class DarwinIoctl
{
    public static int Call(int fd, nuint request, void* arg) =>
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64
            ? IoctlStackArgument(fd, request, 0, 0, 0, 0, 0, 0, arg)
            : IoctlRegisterArgument(fd, request, arg);

    /// <summary>
    /// fcntl(fd, F_SETFD, FD_CLOEXEC): child processes (ifconfig, route, pfctl, credential plugins) must not inherit our
    /// descriptors, or one left running would keep the utun device or /dev/pf open after we close ours. fcntl is
    /// variadic like ioctl, with the same calling rule.
    /// </summary>
    public static int SetCloseOnExec(int fd) =>
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64
            ? FcntlStackArgument(fd, FSetFd, 0, 0, 0, 0, 0, 0, FdCloExec)
            : FcntlRegisterArgument(fd, FSetFd, FdCloExec);

    private const int FSetFd = 2;
    private const nint FdCloExec = 1;

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlRegisterArgument(int fd, int cmd, nint arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlStackArgument(int fd, int cmd, nint x2, nint x3, nint x4, nint x5, nint x6, nint x7, nint arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlRegisterArgument(int fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlStackArgument(int fd, nuint request, nint x2, nint x3, nint x4, nint x5, nint x6, nint x7, void* arg);
}
