using System.Globalization;
using KtConnect.KubeSim.Store;

namespace KtConnect.Bench;

/// <summary>
/// The PowerShell module as a user meets it (the built layout, out/KtConnect/&lt;version&gt;/, in pwsh 7.6.10):
/// - Import-Module in a fresh pwsh, timed inside it, vs importing Microsoft.PowerShell.PSResourceGet, the binary module
///   that ships with pwsh;
/// - Connect-KtCluster -Mode Socks to the first successful request through its SOCKS5 port, vs `kt connect --mode
///   socks` from process start to the same first request. Both are timed by the same loop in a pwsh in the laptop.
/// Needs the module laid out (`pwsh ./build.ps1`), pwsh on PATH or under $KT_TOOLS (.ci/install-pwsh), Linux and root.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ModuleScenario : IScenario
{
    public string Name => "module";

    public string Description => "Import-Module time; Connect-KtCluster -Mode Socks to a usable session vs kt connect --mode socks";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var pwsh = FindPwsh();
        var manifest = Path.Combine(FindModule(), "KtConnect.psd1");

        async Task<double> Import(string module, CancellationToken ct)
        {
            var r = await KtConnect.Engine.ProcessRunner.RunAsync(pwsh,
                ["-NoProfile", "-NonInteractive", "-Command", $"(Measure-Command {{ Import-Module '{module}' }}).TotalMilliseconds"],
                cancellationToken: ct).ConfigureAwait(false);
            if (r.ExitCode != 0) throw new InvalidOperationException("pwsh failed: " + r.StandardError);
            return double.Parse(r.StandardOutput.Trim(), CultureInfo.CurrentCulture);
        }
        await context.CompareAsync(Name, "import", "ms", higherIsBetter: false, ct => Import(manifest, ct),
            "Import-Module Microsoft.PowerShell.PSResourceGet", ct => Import("Microsoft.PowerShell.PSResourceGet", ct), cancellationToken).ConfigureAwait(false);

        await using var b = await ConnectBench.StartAsync(defaultRoute: false, cancellationToken).ConfigureAwait(false);
        var url = $"http://{b.WebIps[0]}:{ConnectBench.WebPort.ToString(CultureInfo.InvariantCulture)}/small";
        var port = 2310;
        var environment = new Dictionary<string, string?> { ["KUBECONFIG"] = b.Kt.Kubeconfig, ["HOME"] = b.Kt.Home };

        // The clock starts when the command is issued and stops at the first 200 through the SOCKS5 port.
        async Task<double> InLaptop(string start, string stop, CancellationToken ct)
        {
            var p = (port++).ToString(CultureInfo.InvariantCulture);
            var script = $$"""
                $ErrorActionPreference = 'Stop'
                Import-Module '{{manifest}}'
                $sw = [Diagnostics.Stopwatch]::StartNew()
                {{start.Replace("PORT", p, StringComparison.Ordinal)}}
                while ((curl -s -o /dev/null -w '%{http_code}' --max-time 5 --socks5 127.0.0.1:{{p}} {{url}}) -ne '200') { Start-Sleep -Milliseconds 2 }
                $ms = $sw.Elapsed.TotalMilliseconds
                {{stop}}
                [string]::Format([Globalization.CultureInfo]::InvariantCulture, 'MS {0}', $ms)
                """;
            var r = await b.Cluster.RunInLaptopAsync([pwsh, "-NoProfile", "-NonInteractive", "-Command", script], null, TimeSpan.FromMinutes(3), environment, ct)
                .ConfigureAwait(false);
            var line = r.StandardOutput.Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.StartsWith("MS ", StringComparison.Ordinal))
                ?? throw new InvalidOperationException($"pwsh in the laptop failed ({r.ExitCode}): {r.StandardOutput}\n{r.StandardError}");
            await WaitNoShadowAsync(b, ct).ConfigureAwait(false);
            return double.Parse(line[3..], CultureInfo.InvariantCulture);
        }

        var cmdlet = "$s = Connect-KtCluster -Namespace " + ConnectBench.Ns + " -Mode Socks -ProxyPort PORT";
        var kt = $"$kt = Start-Process dotnet -ArgumentList '{b.KtDll}', 'connect', '-n', '{ConnectBench.Ns}', '--mode', 'socks', '--proxyPort', 'PORT' -PassThru -RedirectStandardOutput /dev/null";
        await context.CompareAsync(Name, "connect-socks-usable", "ms", higherIsBetter: false,
            ct => InLaptop(cmdlet, "$s | Stop-KtSession", ct),
            "kt connect --mode socks", ct => InLaptop(kt, "kill -INT $kt.Id; $kt.WaitForExit()", ct), cancellationToken).ConfigureAwait(false);
    }

    private static async Task WaitNoShadowAsync(ConnectBench b, CancellationToken ct) =>
        await ConnectBench.WaitUntilAsync(() => Task.FromResult(!b.Cluster.Store.List(ResourceTypes.Pods, ConnectBench.Ns).Items
                .Any(p => p["metadata"]?["name"]?.GetValue<string>()?.StartsWith("kt-connect-shadow-", StringComparison.Ordinal) == true)),
            "the shadow pod to be gone", TimeSpan.FromMinutes(1), ct).ConfigureAwait(false);

    private static string FindPwsh()
    {
        var tools = Environment.GetEnvironmentVariable("KT_TOOLS") is { Length: > 0 } t ? t : "/opt/kt-tools";
        var candidates = new[] { Path.Combine(tools, "pwsh", "pwsh") }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "pwsh")));
        return candidates.FirstOrDefault(File.Exists) ?? throw new InvalidOperationException("pwsh not found: run .ci/install-pwsh");
    }

    private static string FindModule()
    {
        if (Environment.GetEnvironmentVariable("KTCONNECT_MODULE") is { Length: > 0 } m && File.Exists(Path.Combine(m, "KtConnect.psd1"))) return m;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var root = Path.Combine(dir.FullName, "out", "KtConnect");
            if (Directory.Exists(root))
                return Directory.GetDirectories(root).OrderByDescending(Directory.GetLastWriteTimeUtc).FirstOrDefault(d => File.Exists(Path.Combine(d, "KtConnect.psd1")))
                    ?? throw new InvalidOperationException("out/KtConnect has no laid-out module: run `pwsh ./build.ps1`");
        }
        throw new InvalidOperationException("the module is not built: run `pwsh ./build.ps1` (or set KTCONNECT_MODULE)");
    }
}
