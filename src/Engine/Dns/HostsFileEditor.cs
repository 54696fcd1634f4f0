using System.Net;
using System.Text;

namespace KtConnect.Engine.Dns;

/// <summary>One hosts-file line: an address and its names.</summary>
public sealed record HostsEntry(IPAddress Address, IReadOnlyList<string> Names);

/// <summary>
/// The hosts-file mode, for machines where no resolver can be configured: a block between our own marker lines,
/// appended to the file. The rest of the file is kept byte for byte, the file's own line ending is used, and the
/// file is replaced atomically (temporary file + rename). Undo removes exactly the block (and the line break added
/// before it when the file did not end with one).
/// </summary>
public sealed class HostsFileEditor(DnsSystemPaths paths, IChangeJournal journal)
{
    public const string JournalKind = "dns-hosts";
    private const string BeginPrefix = "# >>> KtConnect ";
    private const string EndPrefix = "# <<< KtConnect ";

    public string Path => paths.HostsFile;

    public static string BeginMarker(string id) => BeginPrefix + id + " >>>";

    public static string EndMarker(string id) => EndPrefix + id + " <<<";

    /// <summary>
    /// Appends the block of <paramref name="blockId"/>, or replaces the one <paramref name="replacing"/> (its journal
    /// entry) wrote; returns the journal entry (recorded before the change). Other KtConnect processes editing the file
    /// wait for this one: each reads and writes the whole file under <see cref="HostsFileLock"/>.
    /// </summary>
    public async Task<JournalEntry> ApplyAsync(string blockId, IReadOnlyList<HostsEntry> entries, string? sessionId, CancellationToken cancellationToken,
        JournalEntry? replacing = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(blockId);
        ArgumentNullException.ThrowIfNull(entries);
        var path = paths.HostsFile;
        using var fileLock = await HostsFileLock.AcquireAsync(path, cancellationToken).ConfigureAwait(false);
        // A block written before may have added a line break in front of itself; it goes with the block.
        var original = RemoveBlock(Read(path), blockId, separatorAdded: replacing?.Data.GetValueOrDefault("separator") == "1");
        var entry = await journal.RecordAsync(JournalKind, new Dictionary<string, string>
            {
                ["path"] = path,
                ["block"] = blockId,
                ["separator"] = NeedsSeparator(original) ? "1" : "0",
            },
            $"hosts file: {entries.Count} line(s) in block {blockId} of {path}", sessionId, cancellationToken).ConfigureAwait(false);
        try
        {
            Write(path, Insert(original, blockId, entries));
        }
        catch (DnsConfigurationException)
        {
            await journal.CompleteAsync(entry, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        return entry;
    }

    public async Task RevertAsync(JournalEntry entry, CancellationToken cancellationToken)
    {
        await new HostsUndoHandler().UndoAsync(entry, cancellationToken).ConfigureAwait(false);
        await journal.CompleteAsync(entry, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The file with the block appended, in the file's own line ending (public for unit tests).</summary>
    public static byte[] Insert(byte[] original, string blockId, IReadOnlyList<HostsEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(original);
        ArgumentNullException.ThrowIfNull(entries);
        var text = Encoding.Latin1.GetString(original);
        var newLine = text.Contains("\r\n", StringComparison.Ordinal) ? "\r\n"
            : text.Contains('\n', StringComparison.Ordinal) ? "\n"
            : OperatingSystem.IsWindows() ? "\r\n" : "\n";
        var sb = new StringBuilder();
        // The begin marker carries the separating line break when the file lacks a final one, so removing the
        // block removes it too and the file comes back exactly.
        if (text.Length > 0 && !text.EndsWith('\n')) sb.Append(newLine);
        sb.Append(BeginMarker(blockId)).Append(newLine);
        foreach (var e in entries)
        {
            foreach (var n in e.Names)
            {
                if (n.Any(c => char.IsWhiteSpace(c) || c == '#')) throw new ArgumentException($"'{n}' is not a host name", nameof(entries));
            }
            sb.Append(e.Address).Append(' ').Append(string.Join(' ', e.Names)).Append(newLine);
        }
        sb.Append(EndMarker(blockId)).Append(newLine);
        return [.. original, .. Encoding.Latin1.GetBytes(sb.ToString())];
    }

    /// <summary>
    /// The file without the block of <paramref name="blockId"/> (the same array when there is none). With
    /// <paramref name="separatorAdded"/> the line break just before the block, which <see cref="Insert"/> added to a
    /// file that lacked a final one, goes too.
    /// </summary>
    public static byte[] RemoveBlock(byte[] content, string blockId, bool separatorAdded)
    {
        ArgumentNullException.ThrowIfNull(content);
        var text = Encoding.Latin1.GetString(content);
        var begin = text.IndexOf(BeginMarker(blockId), StringComparison.Ordinal);
        if (begin < 0) return content;
        var endMarker = EndMarker(blockId);
        var end = text.IndexOf(endMarker, begin, StringComparison.Ordinal);
        if (end < 0) return content; // a damaged block is left for a person to look at
        end += endMarker.Length;
        if (end < text.Length && text[end] == '\r') end++;
        if (end < text.Length && text[end] == '\n') end++;
        var start = begin;
        if (separatorAdded && start > 0 && text[start - 1] == '\n')
        {
            start--;
            if (start > 0 && text[start - 1] == '\r') start--;
        }
        return Encoding.Latin1.GetBytes(text[..start] + text[end..]);
    }

    /// <summary>True when <see cref="Insert"/> adds a line break before the block (the file does not end with one).</summary>
    public static bool NeedsSeparator(byte[] content)
    {
        ArgumentNullException.ThrowIfNull(content);
        return content.Length > 0 && content[^1] != (byte)'\n';
    }

    private static byte[] Read(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException e)
        {
            throw new DnsConfigurationException(DnsErrorIds.HostsFileMissing, KtErrorCategory.ObjectNotFound, $"{path} does not exist.", e, path);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new DnsConfigurationException(DnsErrorIds.HostsFileMissing, KtErrorCategory.ObjectNotFound, $"{path} does not exist.", e, path);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DnsConfigurationException(DnsErrorIds.AccessDenied, KtErrorCategory.PermissionDenied,
                $"No permission to read {path}; run as root or Administrator.", e, path);
        }
    }

    internal static void Write(string path, byte[] content)
    {
        if (OperatingSystem.IsWindows() && File.GetAttributes(path).HasFlag(FileAttributes.ReadOnly))
            throw ReadOnly(path, null);
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) == 0)
            throw ReadOnly(path, null);
        try
        {
            // A hosts file that is a symlink (dotfiles, some containers and WSL set-ups) stays one: the file it points to
            // is replaced, not the link.
            AtomicFile.Write(File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path, content);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DnsConfigurationException(DnsErrorIds.AccessDenied, KtErrorCategory.PermissionDenied,
                $"No permission to change {path}; run as root or Administrator.", e, path);
        }
        catch (IOException e) when (OperatingSystem.IsWindows() && (e.HResult & 0xFFFF) is 0x20 or 0x21)
        {
            // A sharing violation: another program (an antivirus, an endpoint agent) holds the file open.
            throw new DnsConfigurationException(DnsErrorIds.HostsFileBusy, KtErrorCategory.ResourceBusy,
                $"{path} is held open by another program; try again, or close it.", e, path);
        }
        catch (IOException e)
        {
            throw ReadOnly(path, e);
        }
    }

    private static DnsConfigurationException ReadOnly(string path, Exception? e) =>
        new(DnsErrorIds.HostsFileReadOnly, KtErrorCategory.PermissionDenied,
            $"{path} is read-only (clear its read-only attribute, or check that the file system is writable).", e, path);
}

/// <summary>Removes a hosts block after a crash; idempotent.</summary>
public sealed class HostsUndoHandler : IJournalUndoHandler
{
    public string Kind => HostsFileEditor.JournalKind;

    public async Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var path = entry.Data["path"];
        if (!File.Exists(path)) return;
        using var fileLock = await HostsFileLock.AcquireAsync(path, cancellationToken).ConfigureAwait(false);
        var content = File.ReadAllBytes(path);
        var without = HostsFileEditor.RemoveBlock(content, entry.Data["block"], entry.Data.GetValueOrDefault("separator") == "1");
        if (!ReferenceEquals(without, content)) HostsFileEditor.Write(path, without);
    }
}

/// <summary>
/// Serialises KtConnect processes' read-modify-write of one hosts file, so that one session's write never brings
/// back a block another has just removed. An exclusive lock (flock on Unix, a share-none handle on Windows) on a
/// lock file in the temporary directory, named after the hosts file's path; the lock goes with the handle, even when
/// the process dies.
/// </summary>
internal static class HostsFileLock
{
    public static async Task<IDisposable> AcquireAsync(string hostsPath, CancellationToken cancellationToken)
    {
        var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(hostsPath))))[..16];
        var lockPath = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"ktconnect-hosts-{hash}.lock");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new DnsConfigurationException(DnsErrorIds.HostsFileBusy, KtErrorCategory.ResourceBusy,
                    $"Another KtConnect process has held the lock on {hostsPath} ({lockPath}) for 30 s.", e, hostsPath);
            }
        }
    }
}
