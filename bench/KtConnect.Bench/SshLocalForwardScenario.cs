using System.Diagnostics;

namespace KtConnect.Bench;

/// <summary>
/// Single-flow throughput through a local forward: our client behind an in-process listener vs
/// <c>ssh -N -L</c>, both to the same sshd and the same sink/source, both with the same cipher (GCM,
/// and kt-connect's shadow choice aes256-ctr + hmac-sha2-256). Besides MiB/s it reports client-side
/// CPU per MiB, which is far less sensitive to a busy machine: for ours, this process's CPU time (the
/// bench's own socket client and sink included); for the peer, the same process's CPU time plus the
/// ssh process's. sshd's CPU is the same on both sides and counted on neither. The <c>-process</c> figures run
/// our forward in a fresh process of its own, as <c>kt</c> runs and as <c>ssh -L</c> runs (its CPU counted like ssh's).
/// </summary>
public sealed class SshLocalForwardScenario : IScenario
{
    public string Name => "ssh-local-forward";

    public string Description => "single TCP flow through -L: ours vs OpenSSH ssh -L (upload and download, GCM and CTR+HMAC; MiB/s and CPU ms/MiB)";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        const long Bytes = 256L << 20;
        await using var host = await SshBenchHost.StartAsync([]);
        await using var targets = new SshBenchTargets();
        foreach (var (cipher, mac, label) in new[] { ("aes128-gcm@openssh.com", (string?)null, "gcm"), ("aes256-ctr", "hmac-sha2-256", "ctr") })
        {
            string[] metrics = [$"upload-{label}", $"download-{label}", $"upload-{label}-process", $"download-{label}-process"];
            if (!metrics.Any(context.Wants)) continue;
            await using var client = await host.ConnectAsync(cipher, mac);
            await using var upOurs = new SshBenchLocalForward(client, targets.SinkPort);
            await using var downOurs = new SshBenchLocalForward(client, targets.SourcePort);
            var apart = context.Wants($"upload-{label}-process") || context.Wants($"download-{label}-process");
            var upOursApart = apart ? await host.StartOurForwardProcessAsync(cipher, mac, targets.SinkPort) : 0;
            var downOursApart = apart ? await host.StartOurForwardProcessAsync(cipher, mac, targets.SourcePort) : 0;
            var upPeer = SshBenchHost.FreePort();
            var downPeer = SshBenchHost.FreePort();
            await host.StartOpenSshAsync(cipher, mac, downPeer,
                "-L", $"127.0.0.1:{upPeer}:127.0.0.1:{targets.SinkPort}", "-L", $"127.0.0.1:{downPeer}:127.0.0.1:{targets.SourcePort}");
            var peerName = $"openssh ssh -L ({cipher})";
            // Ours in this process (its CPU is this process's), and ours in a process of its own like the peer (its CPU
            // is this process's plus the helper's).
            foreach (var (metric, dir, oursPort, peerPort, oursCpu) in new (string, string, int, int, Func<TimeSpan>)[]
            {
                ($"upload-{label}", "upload", upOurs.Port, upPeer, () => TimeSpan.Zero),
                ($"download-{label}", "download", downOurs.Port, downPeer, () => TimeSpan.Zero),
                ($"upload-{label}-process", "upload", upOursApart, upPeer, () => host.OurProcessCpu),
                ($"download-{label}-process", "download", downOursApart, downPeer, () => host.OurProcessCpu),
            })
            {
                if (!context.Wants(metric)) continue;
                Func<int, CancellationToken, Task<double>> run = dir == "upload"
                    ? (port, ct) => SshBenchTargets.UploadAsync(port, Bytes, ct)
                    : (port, ct) => SshBenchTargets.DownloadAsync(port, Bytes, ct);
                var (ours, peer) = await MeasureAsync(context.Runs, () => run(oursPort, cancellationToken), oursCpu,
                    () => run(peerPort, cancellationToken), () => host.OpenSshCpu);
                context.Report(Name, metric, "MiB/s", true, ours.Rate, peerName, peer.Rate);
                context.Report(Name, metric + "-cpu", "ms/MiB", false, ours.Cpu, peerName, peer.Cpu);
            }
        }
    }

    /// <summary>
    /// One warm-up each, then <paramref name="runs"/> alternating runs of ours and the peer: throughput and
    /// client CPU ms per MiB (this process's, plus that of the other processes each side runs in, read through
    /// <paramref name="oursCpu"/> and <paramref name="peerCpu"/>: the ssh process, or our forward's own process).
    /// </summary>
    private static async Task<((List<double> Rate, List<double> Cpu) Ours, (List<double> Rate, List<double> Cpu) Peer)> MeasureAsync(
        int runs, Func<Task<double>> ours, Func<TimeSpan> oursCpu, Func<Task<double>> peer, Func<TimeSpan> peerCpu)
    {
        await ours();
        await peer();
        (List<double> Rate, List<double> Cpu) o = ([], []), p = ([], []);
        using var self = Process.GetCurrentProcess();
        async Task OnceAsync(Func<Task<double>> f, Func<TimeSpan> external, (List<double> Rate, List<double> Cpu) into)
        {
            self.Refresh();
            var c0 = self.TotalProcessorTime + external();
            into.Rate.Add(await f());
            self.Refresh();
            var c1 = self.TotalProcessorTime + external();
            into.Cpu.Add((c1 - c0).TotalMilliseconds / 256.0);
        }
        for (var i = 0; i < runs; i++)
        {
            await OnceAsync(ours, oursCpu, o);
            await OnceAsync(peer, peerCpu, p);
        }
        return (o, p);
    }
}
