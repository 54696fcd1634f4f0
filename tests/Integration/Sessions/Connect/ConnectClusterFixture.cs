using System.Diagnostics;
using System.Text;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.KubeSim;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.Sessions.Connect;

/// <summary>
/// A simulated cluster for Connect: namespace `dev` with Deployment + Service `orders` (2 replicas, 80 → 8080, an
/// echo server that names its pod), and `kt` run as a separate process in the laptop namespace.
/// </summary>
public sealed class ConnectClusterFixture : IAsyncLifetime
{
    public SimCluster Cluster { get; private set; } = null!;

    public KtRunner Kt { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!SimNodeFixture.CanRun) return;
        // A name only the cluster's DNS knows, outside cluster.local (a CoreDNS stub domain in a real cluster).
        Cluster = await SimCluster.StartAsync(new SimClusterOptions { ClusterDnsHostRecords = new Dictionary<string, string> { [StubName] = StubAddress } });
        try
        {
            Kt = new KtRunner(Cluster);
            // Like a real machine, the laptop has a default route, so the kernel has a route for cluster addresses (the
            // redirect mode's nat/output hook runs after routing). It points at lo: nothing leaves the namespace.
            (await Cluster.RunInLaptopAsync(["ip", "route", "add", "default", "dev", "lo"])).EnsureSuccess();
            // The laptop's own resolver: a dnsmasq that knows a name the cluster does not.
            Cluster.Laptop.Start(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--listen-address=127.0.0.2", "--bind-interfaces", "--port=53", "--address=/intranet.example/192.0.2.7"]);
            await File.WriteAllTextAsync(Path.Combine(Cluster.Laptop.EtcDirectory, "resolv.conf"), "nameserver 127.0.0.2\nsearch corp.example\n");
            Cluster.Apply("""{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dev"}}""");
            Cluster.Apply(SimClusterFixture.Deployment("dev", "orders", 2, "ktconnect/echo:1.0", 8080));
            Cluster.Apply(SimClusterFixture.Service("dev", "orders", "app=orders", 80, 8080));
            await Cluster.WaitForAsync(ResourceTypes.Deployments, "dev", "orders", d => (d?["status"]?["readyReplicas"]?.GetValue<int>() ?? 0) == 2);
            await Cluster.WaitUntilAsync(() => Cluster.Node.Services.Any(s => s.Namespace == "dev" && s.Name == "orders" && s.Endpoints.Count == 2),
                "the node to serve dev/orders");
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public const string StubName = "db.corp.internal";

    public const string StubAddress = "198.51.100.77";

    public string OrdersClusterIp => Cluster.Store.Get(ResourceTypes.Services, "dev", "orders")!["spec"]!["clusterIP"]!.GetValue<string>();

    public IReadOnlyList<string> OrdersPodIps => Cluster.Pods("dev", "app=orders")
        .Select(p => p["status"]?["podIP"]?.GetValue<string>()).OfType<string>().ToList();

    /// <summary>What a user sees of the laptop: its routes, links and resolver files, to compare before and after.</summary>
    public async Task<string> LaptopStateAsync()
    {
        var routes = await Cluster.RunInLaptopAsync(["ip", "route", "show", "table", "all"]);
        var links = await Cluster.RunInLaptopAsync(["ip", "-o", "link", "show"]);
        var sb = new StringBuilder(routes.StandardOutput).Append(links.StandardOutput);
        foreach (var f in Directory.GetFiles(Cluster.Laptop.EtcDirectory).Order(StringComparer.Ordinal))
            sb.Append(Path.GetFileName(f)).Append(':').Append(Convert.ToHexString(await File.ReadAllBytesAsync(f))).Append('\n');
        return sb.ToString();
    }

    /// <summary>Starts `kt args` in the laptop and waits until it says the session runs (or it exits).</summary>
    public async Task<KtProcess> StartKtAsync(params string[] args)
    {
        var p = new KtProcess(Kt.Start(args));
        await p.WaitForAsync("Press Ctrl+C", TimeSpan.FromMinutes(2));
        return p;
    }

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

/// <summary>A running `kt` with its output collected line by line.</summary>
public sealed class KtProcess
{
    private readonly StringBuilder _out = new();
    private readonly StringBuilder _err = new();

    public KtProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) => { lock (_out) if (e.Data is not null) _out.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (_err) if (e.Data is not null) _err.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Process Process { get; }

    public string Stdout
    {
        get { lock (_out) return _out.ToString(); }
    }

    public string Stderr
    {
        get { lock (_err) return _err.ToString(); }
    }

    public Task WaitForAsync(string text, TimeSpan timeout) =>
        Wait.ForAsync(() =>
        {
            if (Stdout.Contains(text, StringComparison.Ordinal)) return Task.FromResult(true);
            if (Process.HasExited) throw new InvalidOperationException($"kt exited with {Process.ExitCode}:\n{Stdout}\n{Stderr}");
            return Task.FromResult(false);
        }, printed => printed, $"kt to print '{text}'", _ => $"\n{Stdout}\n{Stderr}", timeout, TimeSpan.FromMilliseconds(100));

    /// <summary>
    /// Sends a signal (SIGINT = Ctrl+C, SIGTERM) and waits for kt to restore and exit. A kt that does not exit in
    /// time is killed, so it holds nothing the next test needs, and the error shows what it had printed.
    /// </summary>
    public async Task<int> SignalAndWaitAsync(int signal)
    {
        var sent = kill(Process.Id, signal) == 0 ? "sent" : $"kill failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})";
        try
        {
            await Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        }
        catch (TimeoutException)
        {
            // What the process made of the signal (pending, blocked, ignored or caught) and where its threads wait, then
            // whether SIGTERM (which .NET handles on a thread of its own, not the pool) still ends it.
            var state = ProcessState(Process.Id);
            var probe = "";
            if (signal != 15)
            {
                kill(Process.Id, 15);
                await Task.WhenAny(Process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(30)));
                probe = Process.HasExited ? $"SIGTERM then ended it (exit {Process.ExitCode}).\n" : "SIGTERM did not end it either.\n";
            }
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            await Process.WaitForExitAsync();
            throw new TimeoutException($"kt did not exit within 2 minutes of signal {signal} ({sent}); killed it.\n{state}{probe}It printed:\n{Stdout}\n{Stderr}");
        }
        return Process.ExitCode;
    }

    private static string ProcessState(int pid)
    {
        var sb = new StringBuilder();
        try
        {
            foreach (var line in File.ReadAllLines($"/proc/{pid}/status"))
                if (line.StartsWith("Sig", StringComparison.Ordinal) || line.StartsWith("ShdPnd", StringComparison.Ordinal)) sb.AppendLine(line);
            foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
            {
                string Read(string f) => File.Exists(Path.Combine(task, f)) ? File.ReadAllText(Path.Combine(task, f)).Trim() : "?";
                sb.AppendLine($"  thread {Path.GetFileName(task)} {Read("comm")}: {Read("wchan")}");
            }
        }
        catch (IOException e)
        {
            sb.AppendLine("(process state unreadable: " + e.Message + ")");
        }
        return sb.ToString();
    }

    /// <summary>Sends a signal (SIGINT = Ctrl+C, SIGTERM) and returns.</summary>
    public void Signal(int signal) => kill(Process.Id, signal);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConnectClusterCollection : ICollectionFixture<ConnectClusterFixture>
{
    public const string Name = "Connect on KubeSim";
}
