using System.Runtime.InteropServices;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// `KtConnect.KubeSim node --state DIR [--echo NS/NAME]... [--shadow NS/NAME]... [--laptop]`: a node
/// without a control plane, for poking at by hand and for crash tests. Prints one line per pod
/// ("pod KEY IP NETNS PID"), "laptop NETNS APISERVERADDR" and then "ready"; runs until SIGTERM/SIGINT,
/// then removes everything. After a SIGKILL, `SimNode.StopAsync(DIR)` cleans up.
/// </summary>
public static class NodeHost
{
    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        string? state = null;
        var pods = new List<PodSpecLite>();
        var laptop = false;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--state" when value is not null: state = value; i++; break;
                case "--echo" when value is not null && Key(value) is var (ns, name):
                    pods.Add(PodSpecLite.Create(ns, name, "ktconnect/echo:sim", 8080)); i++; break;
                case "--shadow" when value is not null && Key(value) is var (ns, name):
                    pods.Add(PodSpecLite.Create(ns, name, "ktconnect/shadow:sim", 22)); i++; break;
                case "--laptop": laptop = true; break;
                default:
                    await Console.Error.WriteLineAsync("usage: node --state DIR [--echo NS/NAME]... [--shadow NS/NAME]... [--laptop]").ConfigureAwait(false);
                    return 2;
            }
        }
        if (state is null)
        {
            await Console.Error.WriteLineAsync("node: --state DIR is required").ConfigureAwait(false);
            return 2;
        }

        await using var node = await SimNode.StartAsync(new SimNodeOptions { StateDirectory = state }, cancellationToken).ConfigureAwait(false);
        foreach (var spec in pods)
        {
            var info = await node.StartPodAsync(spec, cancellationToken).ConfigureAwait(false);
            await node.WaitPodReadyAsync(info.Key, cancellationToken).ConfigureAwait(false);
            Console.WriteLine($"pod {info.Key} {info.Ip} {info.NetNsName} {info.ProcessId}");
        }
        if (laptop)
        {
            var l = await node.CreateLaptopAsync(cancellationToken).ConfigureAwait(false);
            Console.WriteLine($"laptop {l.NetNsName} {l.ApiServerAddress}");
        }
        Console.WriteLine("ready");
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        return 0;
    }

    /// <summary>The process entry: runs until SIGTERM or SIGINT.</summary>
    public static int RunMain(string[] args)
    {
        using var cts = new CancellationTokenSource();
        void Stop(PosixSignalContext c)
        {
            c.Cancel = true;
            cts.Cancel();
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        return RunAsync(args, cts.Token).GetAwaiter().GetResult();
    }

    private static (string Ns, string Name)? Key(string key) =>
        key.Split('/') is [var ns, var name] ? (ns, name) : null;
}
