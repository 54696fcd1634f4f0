namespace KtConnect.Bench;

/// <summary>
/// Single-flow throughput through a local forward: our client behind an in-process listener vs
/// <c>ssh -N -L</c>, both to the same sshd and the same sink/source, both with the same cipher (GCM,
/// and kt-connect's shadow choice aes256-ctr + hmac-sha2-256).
/// </summary>
public sealed class SshLocalForwardScenario : IScenario
{
    public string Name => "ssh-local-forward";

    public string Description => "single TCP flow through -L: ours vs OpenSSH ssh -L (upload and download, GCM and CTR+HMAC)";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        const long Bytes = 256L << 20;
        await using var host = await SshBenchHost.StartAsync([]);
        await using var targets = new SshBenchTargets();
        foreach (var (cipher, mac, label) in new[] { ("aes128-gcm@openssh.com", (string?)null, "gcm"), ("aes256-ctr", "hmac-sha2-256", "ctr") })
        {
            await using var client = await host.ConnectAsync(cipher, mac);
            await using var upOurs = new SshBenchLocalForward(client, targets.SinkPort);
            await using var downOurs = new SshBenchLocalForward(client, targets.SourcePort);
            var upPeer = SshBenchHost.FreePort();
            var downPeer = SshBenchHost.FreePort();
            await host.StartOpenSshAsync(cipher, mac, downPeer,
                "-L", $"127.0.0.1:{upPeer}:127.0.0.1:{targets.SinkPort}", "-L", $"127.0.0.1:{downPeer}:127.0.0.1:{targets.SourcePort}");
            await context.CompareAsync(Name, $"upload-{label}", "MiB/s", true,
                ct => SshBenchTargets.UploadAsync(upOurs.Port, Bytes, ct), $"openssh ssh -L ({cipher})",
                ct => SshBenchTargets.UploadAsync(upPeer, Bytes, ct), cancellationToken);
            await context.CompareAsync(Name, $"download-{label}", "MiB/s", true,
                ct => SshBenchTargets.DownloadAsync(downOurs.Port, Bytes, ct), $"openssh ssh -L ({cipher})",
                ct => SshBenchTargets.DownloadAsync(downPeer, Bytes, ct), cancellationToken);
        }
    }
}
