using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using KtConnect.KubeSim.Api;

namespace KtConnect.KubeSim;

/// <summary>
/// `KtConnect.KubeSim start --state &lt;dir&gt; [--address A] [--port N]`: runs the simulated API server in the
/// foreground, writes &lt;dir&gt;/kubeconfig and &lt;dir&gt;/kubesim.pid, prints the kubeconfig path, stops on SIGTERM/SIGINT.
/// `KtConnect.KubeSim stop --state &lt;dir&gt;`: stops the server recorded in that directory.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // `echo ...`: the process behind application images on the simulated node (Images/EchoServer.cs).
        if (args is ["echo", ..]) return Images.EchoServer.RunMain(args[1..]);
        // `router ...`: /usr/sbin/router of the router image, run by an exec in a router pod (Images/RouterCommand.cs).
        if (args is ["router", ..]) return Images.RouterCommand.RunMain(args[1..]);
        // `node ...`: a node without a control plane, for manual use and crash tests (Node/NodeHost.cs).
        if (args is ["node", ..]) return Node.NodeHost.RunMain(args[1..]);
        if (args.Length == 0) return Usage();
        var state = Option(args, "--state");
        if (state is null) return Usage();
        Directory.CreateDirectory(state);
        var pidFile = Path.Combine(state, "kubesim.pid");
        // The whole simulated cluster (node + control plane): Cluster/ClusterCommand.cs.
        if (Cluster.ClusterCommand.Handles(args, state)) return await Cluster.ClusterCommand.RunAsync(args, state).ConfigureAwait(false);
        switch (args[0])
        {
            case "start":
                {
                    var address = Option(args, "--address") is { } a ? IPAddress.Parse(a) : IPAddress.Loopback;
                    var port = Option(args, "--port") is { } p ? int.Parse(p, CultureInfo.InvariantCulture) : 0;
                    await using var server = await KubeSimServer.StartAsync(new KubeSimOptions { ListenAddress = address, Port = port, ExtraCertificateNames = [address.ToString()] })
                        .ConfigureAwait(false);
                    var kubeconfig = server.WriteKubeconfig(Path.Combine(state, "kubeconfig"));
                    await File.WriteAllTextAsync(pidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
                    Console.Out.WriteLine(kubeconfig);
                    Console.Out.Flush();
                    using var stop = new CancellationTokenSource();
                    using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
                    {
                        c.Cancel = true;
                        stop.Cancel();
                    });
                    using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
                    {
                        c.Cancel = true;
                        stop.Cancel();
                    });
                    try
                    {
                        await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        // Asked to stop.
                    }
                    File.Delete(pidFile);
                    return 0;
                }
            case "stop":
                {
                    if (!File.Exists(pidFile)) return 0;
                    var pid = int.Parse(await File.ReadAllTextAsync(pidFile).ConfigureAwait(false), CultureInfo.InvariantCulture);
                    try
                    {
                        using var process = Process.GetProcessById(pid);
                        process.Kill();
                        await process.WaitForExitAsync().ConfigureAwait(false);
                    }
                    catch (ArgumentException)
                    {
                        // Already gone (a crashed run): only the pid file is left.
                    }
                    File.Delete(pidFile);
                    return 0;
                }
            default:
                return Usage();
        }
    }

    private static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: KtConnect.KubeSim start|stop --state <dir> [--address <ip>] [--port <n>]");
        return 2;
    }
}
