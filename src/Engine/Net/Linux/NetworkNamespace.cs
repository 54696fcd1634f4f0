using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace KtConnect.Engine.Net.Linux;

/// <summary>
/// Runs a function on a short-lived thread that entered a named network namespace with setns(2). Sockets and
/// tun devices belong to the namespace current when they are created, so they keep working from any thread
/// afterwards; no thread of ours stays in the other namespace.
/// </summary>
[SupportedOSPlatform("linux")]
public static class NetworkNamespace
{
    public static T Run<T>(string netnsPath, Func<T> action)
    {
        ArgumentException.ThrowIfNullOrEmpty(netnsPath);
        ArgumentNullException.ThrowIfNull(action);
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                var nsFd = LinuxNative.Open(netnsPath, LinuxNative.O_CLOEXEC);
                if (nsFd < 0)
                    throw new TunDeviceException("NetworkNamespaceNotFound", $"Cannot open {netnsPath}: {LinuxNative.Error(Marshal.GetLastPInvokeError())}.");
                try
                {
                    if (LinuxNative.SetNs(nsFd, LinuxNative.CLONE_NEWNET) < 0)
                        throw new TunDeviceException("NetworkNamespaceNotFound", $"setns {netnsPath} failed: {LinuxNative.Error(Marshal.GetLastPInvokeError())}.");
                }
                finally
                {
                    LinuxNative.Close(nsFd);
                }
                result = action();
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        { IsBackground = true, Name = "kt-setns" };
        thread.Start();
        thread.Join();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
        return result!;
    }

    /// <summary>Path of a namespace created with `ip netns add NAME`.</summary>
    public static string PathOf(string name) => "/var/run/netns/" + name;
}
