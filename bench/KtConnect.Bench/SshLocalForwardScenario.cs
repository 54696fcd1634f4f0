using System.Diagnostics;

namespace KtConnect.Bench;

/// <summary>
/// Single-flow throughput through a local forward: our client behind an in-process listener vs
/// <c>ssh -N -L</c>, both to the same sshd and the same sink/source, both with the same cipher (GCM,
/// and kt-connect's shadow choice aes256-ctr + hmac-sha2-256). Besides MiB/s it reports client-side
/// CPU per MiB, which is far less sensitive to a busy machine: for ours, this process's CPU time (the
/// bench's own socket client and sink included); for the peer, the same process's CPU time plus the
/// ssh process's. sshd's CPU is the same on both sides and counted on neither.
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
            if (!context.Wants($"upload-{label}") && !context.Wants($"download-{label}")) continue;
            await using var client = await host.ConnectAsync(cipher, mac);
            await using var upOurs = new SshBenchLocalForward(client, targets.SinkPort);
            await using var downOurs = new SshBenchLocalForward(client, targets.SourcePort);
            var upPeer = SshBenchHost.FreePort();
            var downPeer = SshBenchHost.FreePort();
            await host.StartOpenSshAsync(cipher, mac, downPeer,
                "-L", $"127.0.0.1:{upPeer}:127.0.0.1:{targets.SinkPort}", "-L", $"127.0.0.1:{downPeer}:127.0.0.1:{targets.SourcePort}");
            var peerName = $"openssh ssh -L ({cipher})";
            foreach (var (dir, oursPort, peerPort) in new[] { ("upload", upOurs.Port, upPeer), ("download", downOurs.Port, downPeer) })
            {
                if (!context.Wants($"{dir}-{label}")) continue;
                Func<int, CancellationToken, Task<double>> run = dir == "upload"
                    ? (port, ct) => SshBenchTargets.UploadAsync(port, Bytes, ct)
                    : (port, ct) => SshBenchTargets.DownloadAsync(port, Bytes, ct);
                var (ours, peer) = await MeasureAsync(context.Runs, () => run(oursPort, cancellationToken), () => run(peerPort, cancellationToken), () => host.OpenSshCpu);
                context.Report(Name, $"{dir}-{label}", "MiB/s", true, ours.Rate, peerName, peer.Rate);
                context.Report(Name, $"{dir}-{label}-cpu", "ms/MiB", false, ours.Cpu, peerName, peer.Cpu);
            }
        }
    }

    /// <summary>
    /// One warm-up each, then <paramref name="runs"/> alternating runs of ours and the peer: throughput and
    /// client CPU ms per MiB (the peer's includes the ssh process, read through <paramref name="peerCpu"/>).
    /// </summary>
    private static async Task<((List<double> Rate, List<double> Cpu) Ours, (List<double> Rate, List<double> Cpu) Peer)> MeasureAsync(
        int runs, Func<Task<double>> ours, Func<Task<double>> peer, Func<TimeSpan> peerCpu)
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
            await OnceAsync(ours, () => TimeSpan.Zero, o);
            await OnceAsync(peer, peerCpu, p);
        }
        return (o, p);
    }
}
