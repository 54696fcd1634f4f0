using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// Opens sockets inside a named network namespace without running a process there: a short-lived thread
/// joins the namespace with setns(2), creates the socket (a socket belongs to the namespace it was created
/// in, whatever thread later uses it) and ends. The thread never returns to the pool, so a failed switch
/// back cannot leak the namespace into unrelated work.
/// </summary>
public static partial class NetNsSocket
{
    private const int CloneNewNet = 0x40000000;

    /// <summary>Connects to <paramref name="endpoint"/> from inside <paramref name="netNsName"/>.</summary>
    public static async Task<Socket> ConnectAsync(string netNsName, IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = await CreateAsync(netNsName, endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp).ConfigureAwait(false);
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Creates an unconnected socket that lives in <paramref name="netNsName"/>.</summary>
    public static Task<Socket> CreateAsync(string netNsName, AddressFamily family, SocketType type, ProtocolType protocol)
    {
        var path = "/var/run/netns/" + netNsName;
        if (netNsName.Contains('/', StringComparison.Ordinal) || !File.Exists(path))
            throw new KtException("SimNetNsNotFound", KtErrorCategory.ObjectNotFound, $"Network namespace '{netNsName}' does not exist.", target: netNsName);
        var tcs = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                tcs.SetResult(CreateOnThisThread(path, family, type, protocol));
            }
            catch (Exception e)
            {
                tcs.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = "netns " + netNsName,
        };
        thread.Start();
        return tcs.Task;
    }

    private static Socket CreateOnThisThread(string path, AddressFamily family, SocketType type, ProtocolType protocol)
    {
        using var original = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read);
        using var target = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        if (SetNs(target.DangerousGetHandle().ToInt32(), CloneNewNet) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new KtException("SimSetNsFailed", KtErrorCategory.PermissionDenied, $"setns({path}) failed with errno {errno}.", target: path);
        }
        try
        {
            return new Socket(family, type, protocol);
        }
        finally
        {
            // The thread ends right after this; switching back is courtesy for anything the runtime does on exit.
            _ = SetNs(original.DangerousGetHandle().ToInt32(), CloneNewNet);
        }
    }

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nsType);
}
