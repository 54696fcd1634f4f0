using System.Runtime.InteropServices;

namespace KtConnect.Cli;

/// <summary>
/// kt stops on Ctrl+C (SIGINT) and SIGTERM. A process started with a signal ignored inherits the ignore (a background
/// job of a non-interactive shell has SIGINT ignored; so may a CI agent's or a supervisor's children), and .NET respects
/// an inherited ignore: its handler is never installed, and `kill -INT` would leave the session running. kt asks for
/// these signals explicitly, so it takes them back to their default action before .NET installs its handlers, as
/// ktctl does through Go's signal.Notify. Call it first in Main, before anything touches Console or Process.
/// </summary>
internal static partial class StopSignals
{
    // The same numbers on Linux and macOS.
    private const int SigInt = 2;
    private const int SigTerm = 15;
    private const nint SigDfl = 0;
    private const nint SigIgn = 1;

    public static void Reclaim()
    {
        if (OperatingSystem.IsWindows()) return;
        foreach (var signal in (ReadOnlySpan<int>)[SigInt, SigTerm])
        {
            if (IsIgnored(signal)) Signal(signal, SigDfl);
        }
    }

    private static unsafe bool IsIgnored(int signal)
    {
        // struct sigaction starts with the handler on Linux and macOS; 256 bytes hold the whole of it on both.
        var old = stackalloc byte[256];
        return SigAction(signal, null, old) == 0 && *(nint*)old == SigIgn;
    }

    [LibraryImport("libc", EntryPoint = "sigaction")]
    private static unsafe partial int SigAction(int signal, void* action, void* oldAction);

    [LibraryImport("libc", EntryPoint = "signal")]
    private static partial nint Signal(int signal, nint handler);
}
