using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Cluster;

/// <summary>
/// `KtConnect.KubeSim start --state DIR --with-node [--port N]`: the whole <see cref="SimCluster"/> as its own
/// process. Writes DIR/kubeconfig (server = the laptop-facing API address), DIR/kubesim.pid and DIR/laptop (the
/// laptop namespace's name), prints the kubeconfig path, serves until SIGTERM/SIGINT, then removes everything.
/// `stop --state DIR`: SIGTERM to the recorded process (SIGKILL after 20 s), then removes whatever the node's
/// state (DIR/node/state.json) still lists: namespaces, /etc/netns entries, root-namespace devices, processes,
/// also when the previous run crashed.
/// </summary>
public static class ClusterCommand
{
    public const string NodeDirectory = "node";

    /// <summary>`start … --with-node`, or `stop` for a state directory a cluster (not a bare API server) used.</summary>
    public static bool Handles(string[] args, string state) =>
        args.Length > 0 && ((args[0] == "start" && args.Contains("--with-node"))
            || (args[0] == "stop" && (Directory.Exists(Path.Combine(state, NodeDirectory)) || File.Exists(Path.Combine(state, "laptop")))));

    public static async Task<int> RunAsync(string[] args, string state)
    {
        Directory.CreateDirectory(state);
        return args[0] == "start" ? await StartAsync(args, state).ConfigureAwait(false) : await StopAsync(state).ConfigureAwait(false);
    }

    private static async Task<int> StartAsync(string[] args, string state)
    {
        var i = Array.IndexOf(args, "--port");
        var port = i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : 0;
        // A previous run that crashed left its namespaces listed here: remove them before starting anew.
        await SimNode.StopAsync(Path.Combine(state, NodeDirectory)).ConfigureAwait(false);
        var pidFile = Path.Combine(state, "kubesim.pid");
        await using var cluster = await SimCluster.StartAsync(new SimClusterOptions { StateDirectory = Path.Combine(state, NodeDirectory), Port = port })
            .ConfigureAwait(false);
        var kubeconfig = cluster.WriteKubeconfig(Path.Combine(state, "kubeconfig"));
        await File.WriteAllTextAsync(Path.Combine(state, "laptop"), cluster.Laptop.NetNsName + "\n").ConfigureAwait(false);
        await File.WriteAllTextAsync(pidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
        Console.Out.WriteLine(kubeconfig);
        Console.Out.Flush();
        using var stop = new CancellationTokenSource();
        void OnSignal(PosixSignalContext c)
        {
            c.Cancel = true;
            stop.Cancel();
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Asked to stop: disposing the cluster removes everything.
        }
        File.Delete(pidFile);
        File.Delete(Path.Combine(state, "laptop"));
        return 0;
    }

    private static async Task<int> StopAsync(string state)
    {
        var pidFile = Path.Combine(state, "kubesim.pid");
        if (File.Exists(pidFile)
            && int.TryParse(await File.ReadAllTextAsync(pidFile).ConfigureAwait(false), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                if (IsKubeSim(process))
                {
                    // SIGTERM lets the cluster stop its pods and remove its namespaces itself.
                    _ = kill(pid, 15);
                    using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                    try
                    {
                        await process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        process.Kill(entireProcessTree: true);
                        await process.WaitForExitAsync().ConfigureAwait(false);
                    }
                }
            }
            catch (ArgumentException)
            {
                // Already gone (a crashed run).
            }
        }
        // Whatever a crashed (or killed) run left: its namespaces with their processes, devices, files.
        await SimNode.StopAsync(Path.Combine(state, NodeDirectory)).ConfigureAwait(false);
        File.Delete(pidFile);
        File.Delete(Path.Combine(state, "laptop"));
        return 0;
    }

    // A recycled pid must not be signalled: only a dotnet process running this assembly counts.
    private static bool IsKubeSim(Process process)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{process.Id}/cmdline");
            return cmdline.Contains("KtConnect.KubeSim", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
