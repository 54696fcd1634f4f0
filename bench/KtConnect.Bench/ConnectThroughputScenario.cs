using System.Diagnostics;
using System.Globalization;
using System.Text;
using KtConnect.Engine.Cluster;

namespace KtConnect.Bench;

/// <summary>
/// `kt connect` carrying laptop→pod traffic, against the tools a user would otherwise reach for, all over the same
/// shadow sshd and the same kind of port-forward: `kt connect --mode tun` (ours) vs sshuttle, and vs OpenSSH
/// `ssh -D` with a SOCKS5 client; `kt connect --mode socks` vs `ssh -D` as the like-for-like proxy pair.
/// The shadow is shared (`--shareShadow`) so the peers can log in with the key kept in its ConfigMap.
/// Figures: HTTP download MiB/s with 1 and 8 flows; p50/p99 of small requests, each on a new connection.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ConnectThroughputScenario : IScenario
{
    private const string SocksOurs = "127.0.0.1:2300";
    private const string SocksOpenSsh = "127.0.0.1:1080";
    private const int LatencyRequests = 200;

    public string Name => "connect";

    public string Description => "kt connect (tun, socks) laptop→pod download 1/8 flows and small-request p50/p99 vs sshuttle and ssh -D over the same sshd";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        await using var b = await ConnectBench.StartAsync(defaultRoute: true, cancellationToken).ConfigureAwait(false);
        var ours = b.WebIps[0];
        var theirs = b.WebIps[1]; // sshuttle's capture; kept out of our tun so only sshuttle can carry it
        var (tun, _, _, _) = await b.StartKtAsync(["connect", "-n", ConnectBench.Ns, "--mode", "tun", "--dnsMode", "none", "--shareShadow",
            "--excludeIps", theirs + "/32"], cancellationToken).ConfigureAwait(false);
        Process? socks = null;
        Process? sshuttle = null;
        try
        {
            (socks, _, _, _) = await b.StartKtAsync(["connect", "-n", ConnectBench.Ns, "--mode", "socks", "--proxyPort", "2300", "--shareShadow"], cancellationToken)
                .ConfigureAwait(false);
            var cm = await b.Client.ConfigMaps.GetAsync(KtConventions.SharedShadowName, ConnectBench.Ns, cancellationToken).ConfigureAwait(false);
            var key = Path.Combine(b.Directory, "shared.key");
            await File.WriteAllTextAsync(key, cm.Data![KtConventions.ConfigMapPrivateKey], cancellationToken).ConfigureAwait(false);
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var forward = b.PortForward(KtConventions.SharedShadowName, KtConventions.SshPort);
            var api = b.Cluster.Laptop.ApiServerAddress;
            string[] sshOptions = ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"];
            b.StartInLaptop(["ssh", .. sshOptions, "-p", forward.ToString(CultureInfo.InvariantCulture), "-N", "-D", SocksOpenSsh, "root@" + api]);
            await ConnectBench.WaitUntilAsync(() => Works(b, ours, SocksOpenSsh, cancellationToken), "ssh -D", TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);

            var sshuttleLog = new StringBuilder();
            sshuttle = b.Cluster.Laptop.Start(["sshuttle", "-r", $"root@{api}:{forward}", "-e", "ssh " + string.Join(' ', sshOptions), theirs + "/32"]);
            sshuttle.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (sshuttleLog) sshuttleLog.AppendLine(e.Data); };
            sshuttle.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (sshuttleLog) sshuttleLog.AppendLine(e.Data); };
            sshuttle.BeginOutputReadLine();
            sshuttle.BeginErrorReadLine();
            try
            {
                await ConnectBench.WaitUntilAsync(() => sshuttle.HasExited ? throw new InvalidOperationException("sshuttle exited") : Works(b, theirs, null, cancellationToken),
                    "sshuttle", TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException)
            {
                lock (sshuttleLog) throw new InvalidOperationException("sshuttle did not carry traffic: " + sshuttleLog, e);
            }

            foreach (var flows in new[] { 1, 8 })
            {
                await context.CompareAsync(Name, $"download-{flows}-flow", "MiB/s", true,
                    ct => b.DownloadAsync(ours, flows, null, ct), "sshuttle (same sshd and port-forward)",
                    ct => b.DownloadAsync(theirs, flows, null, ct), cancellationToken).ConfigureAwait(false);
                await context.CompareAsync(Name, $"download-{flows}-flow", "MiB/s", true,
                    ct => b.DownloadAsync(ours, flows, null, ct), "OpenSSH ssh -D + SOCKS5 client",
                    ct => b.DownloadAsync(ours, flows, SocksOpenSsh, ct), cancellationToken).ConfigureAwait(false);
                await context.CompareAsync(Name, $"socks-download-{flows}-flow", "MiB/s", true,
                    ct => b.DownloadAsync(ours, flows, SocksOurs, ct), "OpenSSH ssh -D + SOCKS5 client",
                    ct => b.DownloadAsync(ours, flows, SocksOpenSsh, ct), cancellationToken).ConfigureAwait(false);
            }

            await LatencyAsync(context, "small-request", ct => b.LatencyAsync(ours, LatencyRequests, null, ct), "sshuttle (same sshd and port-forward)",
                ct => b.LatencyAsync(theirs, LatencyRequests, null, ct), cancellationToken).ConfigureAwait(false);
            await LatencyAsync(context, "small-request", ct => b.LatencyAsync(ours, LatencyRequests, null, ct), "OpenSSH ssh -D + SOCKS5 client",
                ct => b.LatencyAsync(ours, LatencyRequests, SocksOpenSsh, ct), cancellationToken).ConfigureAwait(false);
            await LatencyAsync(context, "socks-small-request", ct => b.LatencyAsync(ours, LatencyRequests, SocksOurs, ct), "OpenSSH ssh -D + SOCKS5 client",
                ct => b.LatencyAsync(ours, LatencyRequests, SocksOpenSsh, ct), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (sshuttle is not null) ConnectBench.Kill(sshuttle);
            if (socks is not null) await ConnectBench.StopKtAsync(socks).ConfigureAwait(false);
            await ConnectBench.StopKtAsync(tun).ConfigureAwait(false);
        }
    }

    private static async Task<bool> Works(ConnectBench b, string ip, string? socks, CancellationToken ct)
    {
        try
        {
            await b.LatencyAsync(ip, 1, socks, ct).ConfigureAwait(false);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Alternating runs after a warm-up of each; p50 and p99 reported as medians over the runs.</summary>
    private static async Task LatencyAsync(BenchContext context, string metric, Func<CancellationToken, Task<(double P50, double P99)>> ours, string peerName,
        Func<CancellationToken, Task<(double P50, double P99)>> peer, CancellationToken ct)
    {
        if (!context.Wants(metric + "-p50") && !context.Wants(metric + "-p99")) return;
        await ours(ct).ConfigureAwait(false);
        await peer(ct).ConfigureAwait(false);
        var a = new List<(double P50, double P99)>();
        var p = new List<(double P50, double P99)>();
        for (var i = 0; i < context.Runs; i++)
        {
            a.Add(await ours(ct).ConfigureAwait(false));
            p.Add(await peer(ct).ConfigureAwait(false));
        }
        context.Report("connect", metric + "-p50", "ms", false, a.Select(x => x.P50).ToList(), peerName, p.Select(x => x.P50).ToList());
        context.Report("connect", metric + "-p99", "ms", false, a.Select(x => x.P99).ToList(), peerName, p.Select(x => x.P99).ToList());
    }
}
