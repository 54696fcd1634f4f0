using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Connect;
using KtConnect.Engine.Ssh;

namespace KtConnect.Bench;

/// <summary>
/// Time from the shadow pod Running (seen in the API server's store) to the first successful request from the laptop:
/// `kt connect --mode tun` (watch sees Running, host keys read through exec and pinned, port-forward, SSH, tun device,
/// routes) vs what a user does by hand on a Running shadow: a kubectl-like port-forward and OpenSSH `ssh -D`
/// (no host-key pinning), the request through SOCKS5. Both probes are the same client retrying every 2 ms; both
/// clocks are this machine's wall clock. Also reported: ours from Running to kt's "connected" line.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ConnectFirstRequestScenario : IScenario
{
    public string Name => "connect-first-request";

    public string Description => "shadow Running → first request through kt connect (tun) vs port-forward + ssh -D by hand";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        // No default route: before the tun's routes exist a request fails at once (ENETUNREACH) instead of hanging.
        await using var b = await ConnectBench.StartAsync(defaultRoute: false, cancellationToken).ConfigureAwait(false);
        var target = b.WebIps[0];
        var toReady = new List<double>();
        var toSeen = new List<double>();
        var toSshUp = new List<double>();
        var toDevice = new List<double>();
        var lastTimeline = "";
        var toSsh = new List<double>();

        async Task<double> Ours(CancellationToken ct)
        {
            var running = WatchRunning(b, "kt-connect-shadow-", ct);
            var probe = b.ClientAsync(["probe", target, ConnectBench.WebPort.ToString(CultureInfo.InvariantCulture), "/small", "-", "120"], ct, TimeSpan.FromMinutes(3));
            var (kt, ready, lineTime, timeline) = await b.StartKtAsync(["connect", "-n", ConnectBench.Ns, "--mode", "tun", "--dnsMode", "none"], ct).ConfigureAwait(false);
            try
            {
                var first = FromUnix(await probe.ConfigureAwait(false));
                var r = await running.ConfigureAwait(false);
                lastTimeline = timeline(r) + $"\n{(first - r).TotalMilliseconds,8:F1} ms  (first response in the laptop)";
                toReady.Add((ready - r).TotalMilliseconds);
                // kt's own lines: the pod seen Running (watch), SSH starting (host keys read through exec, heartbeat started).
                if (lineTime("Running") is { } seen) toSeen.Add((seen - r).TotalMilliseconds);
                if (lineTime("SSH to the shadow pod") is { } ssh) toSsh.Add((ssh - r).TotalMilliseconds);
                if (lineTime($"SSH to {ConnectBench.Ns}/") is { } sshUp) toSshUp.Add((sshUp - r).TotalMilliseconds);
                if (lineTime("Device kt0 is up") is { } device) toDevice.Add((device - r).TotalMilliseconds);
                return (first - r).TotalMilliseconds;
            }
            finally
            {
                await ConnectBench.StopKtAsync(kt).ConfigureAwait(false);
                await WaitGoneAsync(b, "kt-connect-shadow-", ct).ConfigureAwait(false);
            }
        }

        var socksPort = 1081;
        async Task<double> ByHand(CancellationToken ct)
        {
            using var key = SshKeyPair.GenerateEcdsa("bench");
            var keyFile = Path.Combine(b.Directory, "hand.key");
            await File.WriteAllTextAsync(keyFile, key.ToOpenSshPrivateKey(), ct).ConfigureAwait(false);
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var options = new ConnectOptions();
            var spec = options.ToShadowSpec(KtConventions.ConnectShadowName(), ConnectBench.Ns, KtConventions.Roles.ShadowConnect, key.ToAuthorizedKeysLine());
            var shadows = new ShadowPods(b.Client);
            var running = WatchRunning(b, spec.Name, ct);
            await using var handle = await shadows.CreateAsync(spec, null, ct).ConfigureAwait(false);
            var r = await running.ConfigureAwait(false);
            // From here on: what the user does once the pod runs.
            var forward = b.PortForward(spec.Name, KtConventions.SshPort);
            var socks = "127.0.0.1:" + (socksPort++).ToString(CultureInfo.InvariantCulture);
            var ssh = b.StartInLaptop("ssh", "-i", keyFile, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR", "-p", forward.ToString(CultureInfo.InvariantCulture), "-N", "-D", socks, "root@" + b.Cluster.Laptop.ApiServerAddress);
            try
            {
                var first = FromUnix(await b.ClientAsync(["probe", target, ConnectBench.WebPort.ToString(CultureInfo.InvariantCulture), "/small", socks, "60"], ct,
                    TimeSpan.FromMinutes(2)).ConfigureAwait(false));
                return (first - r).TotalMilliseconds;
            }
            finally
            {
                ConnectBench.Kill(ssh);
                await handle.DeleteAsync(ct).ConfigureAwait(false);
                await WaitGoneAsync(b, spec.Name, ct).ConfigureAwait(false);
            }
        }

        await context.CompareAsync(Name, "running-to-first-request", "ms", false, Ours, "port-forward + OpenSSH ssh -D by hand (no host-key pinning)", ByHand,
            cancellationToken).ConfigureAwait(false);
        // The breakdown of ours: Running → session up (kt prints it) and the rest (first flow through the stack).
        // Diagnostics on stderr: the last run's kt output, timed from the pod seen Running.
        await Console.Error.WriteLineAsync("connect-first-request, last run, kt's lines from the shadow Running:\n" + lastTimeline).ConfigureAwait(false);
        foreach (var (metric, samples) in new[]
                 {
                     ("running-to-kt-sees-running", toSeen), ("running-to-host-keys-read", toSsh), ("running-to-ssh-up", toSshUp),
                     ("running-to-device-and-routes-up", toDevice), ("running-to-session-up", toReady),
                 })
        {
            var measured = samples.Skip(1).ToList(); // the first is the warm-up
            context.Report(Name, metric, "ms", false, measured, "(ours only: breakdown from kt's progress lines)", measured);
        }
    }

    private static DateTime FromUnix(string seconds) =>
        DateTime.UnixEpoch.AddTicks((long)(double.Parse(seconds, CultureInfo.InvariantCulture) * TimeSpan.TicksPerSecond));

    /// <summary>When a pod whose name starts with <paramref name="prefix"/> first shows Running and Ready in the store (polled every 2 ms).</summary>
    private static Task<DateTime> WatchRunning(ConnectBench b, string prefix, CancellationToken ct) => Task.Run(async () =>
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromMinutes(3))
        {
            foreach (var pod in b.Cluster.Pods(ConnectBench.Ns))
            {
                if (pod["metadata"]?["name"]?.GetValue<string>() is { } n && n.StartsWith(prefix, StringComparison.Ordinal) && IsReady(pod))
                    return DateTime.UtcNow;
            }
            await Task.Delay(2, ct).ConfigureAwait(false);
        }
        throw new TimeoutException("the shadow pod did not run");
    }, ct);

    private static bool IsReady(JsonObject pod) =>
        pod["status"]?["phase"]?.GetValue<string>() == "Running" &&
        pod["status"]?["conditions"] is JsonArray c && c.Any(x => x?["type"]?.GetValue<string>() == "Ready" && x["status"]?.GetValue<string>() == "True");

    private static Task WaitGoneAsync(ConnectBench b, string prefix, CancellationToken ct) =>
        ConnectBench.WaitUntilAsync(() => Task.FromResult(!b.Cluster.Pods(ConnectBench.Ns).Any(p =>
            p["metadata"]?["name"]?.GetValue<string>()?.StartsWith(prefix, StringComparison.Ordinal) == true)), "the shadow to go", TimeSpan.FromMinutes(1), ct);
}
