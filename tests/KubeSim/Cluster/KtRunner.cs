using System.Diagnostics;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Cluster;

/// <summary>
/// Runs `kt` (src/Cli's kt.dll under `dotnet`) inside the cluster's laptop namespace with a kubeconfig whose server
/// is the laptop-reachable API address (KUBECONFIG set, HOME a private directory). kt.dll is found through
/// KTCONNECT_KT_DLL or by walking up from this assembly to the repository's src/Cli/bin/&lt;config&gt;/net8.0/kt.dll
/// (build src/Cli first).
/// </summary>
public sealed class KtRunner(SimCluster cluster)
{
    // Inside the cluster's state directory, so it goes with the cluster (a temp directory of /tmp stayed behind each run).
    private readonly string _home = Directory.CreateDirectory(Path.Combine(cluster.Node.StateDirectory, "kthome-" + Guid.NewGuid().ToString("N")[..8])).FullName;
    private string? _kubeconfig;

    /// <summary>The admin kubeconfig kt gets (written on first use into its HOME).</summary>
    public string Kubeconfig => _kubeconfig ??= cluster.WriteKubeconfig(Path.Combine(_home, ".kube", "config"));

    public string Home => _home;

    public static string? FindKtDll()
    {
        if (Environment.GetEnvironmentVariable("KTCONNECT_KT_DLL") is { Length: > 0 } env && File.Exists(env)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var bin = Path.Combine(dir.FullName, "src", "Cli", "bin");
            if (!Directory.Exists(bin)) continue;
            return Directory.GetFiles(bin, "kt.dll", SearchOption.AllDirectories)
                .OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault();
        }
        return null;
    }

    private string KtDll => FindKtDll() ?? throw new FileNotFoundException("kt.dll not found: build src/Cli or set KTCONNECT_KT_DLL");

    private Dictionary<string, string> KtEnvironment() => new()
    {
        ["KUBECONFIG"] = Kubeconfig,
        ["HOME"] = _home,
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
    };

    /// <summary>Runs kt to completion in the laptop, with <paramref name="environment"/> added to its variables.</summary>
    public Task<ProcessResult> RunAsync(IReadOnlyList<string> args, TimeSpan? timeout = null, CancellationToken cancellationToken = default,
        IReadOnlyDictionary<string, string>? environment = null) =>
        cluster.Laptop.RunAsync(["dotnet", KtDll, .. args], null, timeout ?? TimeSpan.FromMinutes(2),
            KtEnvironment().Concat(environment ?? new Dictionary<string, string>()).ToDictionary(kv => kv.Key, kv => (string?)kv.Value), cancellationToken);

    /// <summary>
    /// Starts kt in the laptop (e.g. `connect`), output redirected; the laptop kills it on dispose. kt starts with
    /// SIGINT and SIGTERM ignored, as a background job of a non-interactive shell (or a CI agent) may start it,
    /// whatever this test process inherited: both must stop it all the same (the shell execs kt, so the pid is kt's).
    /// SIGHUP is set back to its default: kt keeps an inherited ignore of it on purpose (`nohup kt`), and a test run
    /// started under nohup would otherwise hand that ignore down to every kt.
    /// </summary>
    public Process Start(IReadOnlyList<string> args) =>
        cluster.Laptop.Start(["sh", "-c", "trap '' INT TERM; exec \"$@\"", "sh", "env", "--default-signal=HUP", "dotnet", KtDll, .. args], KtEnvironment());

    /// <summary>SIGKILL, as a crash would end it (`ip netns exec` execs the command, so the pid is kt's), and waits.</summary>
    public static async Task KillAsync(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: false);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        await process.WaitForExitAsync().ConfigureAwait(false);
    }
}
