namespace KtConnect.Engine.Dns;

/// <summary>
/// Replaces a file's content in one step: write a temporary file in the same directory, flush it to disk, rename it
/// over the original. A crash leaves either the old or the new file, never half of one. Where rename cannot work
/// (a bind-mounted /etc/hosts or /etc/resolv.conf in a container) the content is written in place.
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
                File.Move(temp, path, overwrite: true);
            }
            catch (IOException)
            {
                // EBUSY: the path is a mount point and cannot be renamed over; rewrite it in place instead.
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

    public static bool IsSymlink(string path)
    {
        return new FileInfo(path).LinkTarget is not null;
    }
}
