namespace KtConnect.Engine.Dns;

/// <summary>
/// Replaces a file's content in one step: write a temporary file in the same directory, flush it to disk, rename it
/// over the original. A crash leaves either the old or the new file, never half of one. Where rename cannot work
/// (EBUSY: a bind-mounted /etc/hosts or /etc/resolv.conf in a container or a network namespace) the content is
/// written in place.
/// </summary>
internal static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.kt-{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                fs.Write(content);
                fs.Flush(flushToDisk: true);
            }
            if (!OperatingSystem.IsWindows() && File.Exists(path) && !IsSymlink(path))
                File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
            try
            {
                Move(temp, path);
            }
            catch (IOException e) when (!OperatingSystem.IsWindows() && e.HResult == Ebusy)
            {
                // The path is a mount point (a bind-mounted /etc/hosts or resolv.conf) and cannot be renamed over: rewrite it
                // in place. Only then: anything else that fails a rename would leave a truncated file if we crashed here.
                using var fs = new FileStream(path, FileMode.Truncate, FileAccess.Write, FileShare.Read);
                fs.Write(content);
                fs.Flush(flushToDisk: true);
            }
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private const int Ebusy = 16; // the same on Linux and macOS; .NET puts errno in IOException.HResult there

    /// <summary>The rename; on Windows retried for a moment, as a reader (the DNS client, antivirus) may hold the file.</summary>
    private static void Move(string temp, string path)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                File.Move(temp, path, overwrite: true);
                return;
            }
            catch (IOException) when (OperatingSystem.IsWindows() && attempt < 20)
            {
                Thread.Sleep(50);
            }
        }
    }

    public static bool IsSymlink(string path)
    {
        return new FileInfo(path).LinkTarget is not null;
    }
}
