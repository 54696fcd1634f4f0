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

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlRegisterArgument(int fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlStackArgument(int fd, nuint request, nint x2, nint x3, nint x4, nint x5, nint x6, nint x7, void* arg);
}
