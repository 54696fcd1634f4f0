using System.Globalization;

namespace KtConnect.Engine;

/// <summary>
/// Who a process is, in a form no clock step and no pid reuse can change: on Linux the boot id and the process's
/// start in clock ticks since boot (<c>/proc/PID/stat</c> field 22). Elsewhere there is none and callers fall back
/// to the process start time, which Windows and macOS store when the process starts.
/// </summary>
/// <remarks>
/// .NET computes <c>Process.StartTime</c> on Linux as "now − uptime + start ticks", so a wall-clock step (NTP, a
/// suspended laptop's clock being set) moves a live process's start time, and a comparison of start times would
/// call it dead.
/// </remarks>
public static class ProcessIdentity
{
    /// <summary>This boot's id; empty where it cannot be read (a sandbox), which still tells processes of this boot apart.</summary>
    private static readonly string BootId = ReadBootId();

    private static string ReadBootId()
    {
        if (!OperatingSystem.IsLinux()) return "";
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    /// <summary>This process's identity, or null where the platform has none.</summary>
    public static string? Current { get; } = Of(Environment.ProcessId, out _);

    /// <summary>
    /// The identity of process <paramref name="pid"/>, or null when it cannot be read (not Linux, no such process,
    /// <c>/proc</c> hidden). <paramref name="exited"/> says that the process has exited and is waiting to be reaped.
    /// </summary>
    public static string? Of(int pid, out bool exited)
    {
        exited = false;
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var proc = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}";
            var stat = File.ReadAllText(proc + "/stat");
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count fields after the last ')'.
            var close = stat.LastIndexOf(')');
            if (close < 0) return null;
            var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // fields[0] is field 3 (state); the start time is field 22.
            if (fields.Length < 20) return null;
            // Z is the main thread's state: the process has exited only if no other thread of it still runs.
            exited = fields[0] is "Z" or "X" && Directory.GetDirectories(proc + "/task").Length <= 1;
            return $"{BootId}/{fields[19]}";
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
