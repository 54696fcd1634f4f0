using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace KtConnect.Engine;

/// <summary>
/// A machine-wide claim on one object that every KtConnect process on the machine shares (a firewall table, a tun
/// device's routes and resolver link, the resolver file): held while a live session owns the object and gone when its
/// process ends, however it ends. The journal that records such a change lives in one user's home, so a KtConnect of
/// another home (<c>sudo</c> against <c>sudo -E</c>, another user) cannot see it there; the claim is what it sees.
/// <list type="bullet">
/// <item>Linux: an abstract Unix socket bound to a name made from the key. The kernel frees the name when the process
/// ends, no file is left, and a network namespace has names of its own, as it has its own tables, devices and (through
/// <c>ip netns exec</c>) its own resolver files. A second bind fails; connecting to it names the holder's process.</item>
/// <item>Elsewhere: an exclusive open of a file in a folder every user shares (Windows: ProgramData; macOS: /var/run),
/// which the system closes when the process ends. The file stays (it holds nothing but the holder's process id, for a person to read).</item>
/// </list>
/// </summary>
public sealed class MachineClaim : IDisposable
{
    private readonly Socket? _socket;
    private readonly FileStream? _file;

    private MachineClaim(Socket? socket, FileStream? file)
    {
        _socket = socket;
        _file = file;
    }

    /// <summary>
    /// The key of an object for people and claims ("network device kt0"); an object in a named network namespace other
    /// than this process's (tests drive those with <c>ip -n</c>) is another object.
    /// </summary>
    public static string KeyOf(string what, string? netns = null) => netns is null ? what : $"{what} in network namespace {netns}";

    /// <summary>Claims <paramref name="key"/>, or returns null when a live process holds it (its id in <paramref name="holderPid"/> when known).</summary>
    public static MachineClaim? TryAcquire(string key, out int? holderPid)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        holderPid = null;
        return OperatingSystem.IsLinux() ? TryBind(key, out holderPid) : TryOpen(key, out holderPid);
    }

    /// <summary>The name a key is claimed under: readable for short keys, hashed past the 107 bytes a socket name may have.</summary>
    internal static string NameOf(string key)
    {
        var name = "ktconnect/claim/" + key;
        if (Encoding.UTF8.GetByteCount(name) <= 100) return name;
        return "ktconnect/claim/" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..40];
    }

    private static MachineClaim? TryBind(string key, out int? holderPid)
    {
        holderPid = null;
        var endPoint = new UnixDomainSocketEndPoint("\0" + NameOf(key));
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(endPoint);
            // Listening lets another process connect and read who holds the claim (the peer credentials of a listener);
            // each connection is closed at once, so that none waits in the backlog.
            socket.Listen(4);
            _ = AcceptAndCloseAsync(socket);
            return new MachineClaim(socket, null);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            var (pid, uid) = HolderOf(endPoint);
            // Abstract names have no permissions: any user may bind one. Only root changes the objects claimed here, so a
            // name another user holds is not a KtConnect session's, and must not keep sessions and their undo away.
            if (uid is { } owner && owner != 0) return new MachineClaim(null, null);
            holderPid = pid;
            return null;
        }
        catch (SocketException)
        {
            // Sockets refused to this process (a confined one): there is nothing to guard with, as without the rights to
            // the claim folder elsewhere.
            socket.Dispose();
            return new MachineClaim(null, null);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static (int? Pid, int? Uid) HolderOf(UnixDomainSocketEndPoint endPoint)
    {
        // Not blocking: a holder that does not accept (a full backlog) must not hold this process up.
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
        try
        {
            probe.Connect(endPoint);
            // struct ucred { pid_t pid; uid_t uid; gid_t gid; } from SOL_SOCKET / SO_PEERCRED.
            var cred = new byte[12];
            return probe.GetRawSocketOption(1, 17, cred) >= 12 ? (BitConverter.ToInt32(cred, 0), BitConverter.ToInt32(cred, 4)) : (null, null);
        }
        catch (SocketException)
        {
            return (null, null);
        }
    }

    private static async Task AcceptAndCloseAsync(Socket listener)
    {
        try
        {
            while (true) (await listener.AcceptAsync().ConfigureAwait(false)).Dispose();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The claim was let go.
        }
    }

    /// <summary>Where claim files live: shared by every user of the machine (macOS's shared data folder, /usr/share, is read-only).</summary>
    private static string ClaimDirectory => OperatingSystem.IsWindows()
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.CommonApplicationData), "KtConnect", "claims")
        : "/var/run/ktconnect";

    private static MachineClaim? TryOpen(string key, out int? holderPid)
    {
        holderPid = null;
        var path = Path.Combine(ClaimDirectory, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..40] + ".claim");
        try
        {
            Directory.CreateDirectory(ClaimDirectory);
        }
        catch (UnauthorizedAccessException)
        {
            // Without the rights to the shared folder or file (a user without privileges, who changes no machine-wide
            // object anyway) there is nothing to guard with: the claim holds nothing.
            return new MachineClaim(null, null);
        }
        try
        {
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            file.SetLength(0);
            file.Write(Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n" + key + "\n"));
            file.Flush();
            return new MachineClaim(null, file);
        }
        catch (UnauthorizedAccessException)
        {
            return new MachineClaim(null, null);
        }
        catch (IOException)
        {
            // The holder's open shuts ours out too (a sharing violation on Windows, flock elsewhere), so its id stays unknown.
            return null;
        }
    }

    public void Dispose()
    {
        _socket?.Dispose();
        _file?.Dispose();
    }
}

/// <summary>
/// The claims this process holds for the entries of its journals: one per object, shared by the entries of one owner
/// (a session's routes on one device, its resolver link on the same device), let go with the last of them.
/// </summary>
internal static class MachineClaims
{
    private sealed class Holding(MachineClaim claim, string owner)
    {
        public MachineClaim Claim { get; } = claim;

        public string Owner { get; } = owner;

        public HashSet<string> Entries { get; } = new(StringComparer.Ordinal);
    }

    private static readonly Dictionary<string, Holding> Held = new(StringComparer.Ordinal);

    /// <summary>Claims <paramref name="key"/> for <paramref name="owner"/>'s entry, or throws <c>MachineObjectInUse</c>.</summary>
    public static void Claim(string key, string owner, string entryId)
    {
        lock (Held)
        {
            if (!Held.TryGetValue(key, out var holding))
            {
                holding = new Holding(MachineClaim.TryAcquire(key, out var pid) ?? throw InUse(key, pid), owner);
                Held.Add(key, holding);
            }
            else if (holding.Owner != owner)
            {
                throw InUse(key, Environment.ProcessId);
            }
            holding.Entries.Add(entryId);
        }
    }

    public static void Release(string key, string entryId)
    {
        lock (Held)
        {
            if (!Held.TryGetValue(key, out var holding) || !holding.Entries.Remove(entryId) || holding.Entries.Count > 0) return;
            Held.Remove(key);
            holding.Claim.Dispose();
        }
    }

    /// <summary>
    /// What undoing the entry <paramref name="entryId"/> must hold: nothing when this process holds the claim for that
    /// entry already, else the claim for the time of the undo (to be disposed after it); throws <c>MachineObjectInUse</c>
    /// when another live session holds it.
    /// </summary>
    public static IDisposable? ClaimForUndo(string key, string entryId)
    {
        lock (Held)
        {
            if (Held.TryGetValue(key, out var holding))
                return holding.Entries.Contains(entryId) ? null : throw InUse(key, Environment.ProcessId);
            return MachineClaim.TryAcquire(key, out var pid) ?? throw InUse(key, pid);
        }
    }

    /// <summary>
    /// Throws <c>MachineObjectInUse</c> when another session holds <paramref name="key"/> now: the check a command makes
    /// before its first change, so that it is refused before it changes anything. Recording the entry claims for good.
    /// </summary>
    public static void EnsureFree(string key)
    {
        lock (Held)
        {
            if (Held.ContainsKey(key)) throw InUse(key, Environment.ProcessId);
            using var probe = MachineClaim.TryAcquire(key, out var pid) ?? throw InUse(key, pid);
        }
    }

    private static KtException InUse(string key, int? pid)
    {
        var who = pid == Environment.ProcessId ? "this process" : pid is { } p ? $"process {p}" : "another process";
        return new KtException("MachineObjectInUse", KtErrorCategory.ResourceBusy,
            $"The {key} is in use by a live KtConnect session ({who}), perhaps of another user or home; stop that session first.", target: key);
    }
}
