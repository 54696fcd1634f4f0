using System.Net;
using System.Net.Sockets;

namespace KtConnect.Bench;

/// <summary>
/// Single-flow throughput through a remote forward: a client connects to the port sshd listens on,
/// sshd sends it over SSH as forwarded-tcpip, the SSH client connects it to a local sink/source.
/// Ours (<c>ForwardRemoteAsync</c>) vs <c>ssh -N -R</c>, same cipher.
/// </summary>
public sealed class SshRemoteForwardScenario : IScenario
{
    public string Name => "ssh-remote-forward";

    public string Description => "single TCP flow through -R: ours vs OpenSSH ssh -R (upload and download, aes128-gcm)";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        const long Bytes = 256L << 20;
        const string Cipher = "aes128-gcm@openssh.com";
        await using var host = await SshBenchHost.StartAsync([]);
        await using var targets = new SshBenchTargets();
        await using var client = await host.ConnectAsync(Cipher, null);
        Func<Engine.Ssh.SshChannelStream, CancellationToken, Task> To(int port) => async (ch, ct) =>
        {
            using var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
            await SshBenchPipe.SpliceAsync(tcp, ch, ct).ConfigureAwait(false);
        };
        await using var upOurs = await client.ForwardRemoteAsync("127.0.0.1", 0, To(targets.SinkPort), cancellationToken);
        await using var downOurs = await client.ForwardRemoteAsync("127.0.0.1", 0, To(targets.SourcePort), cancellationToken);
        var upPeer = SshBenchHost.FreePort();
        var downPeer = SshBenchHost.FreePort();
        await host.StartOpenSshAsync(Cipher, null, downPeer,
            "-R", $"127.0.0.1:{upPeer}:127.0.0.1:{targets.SinkPort}", "-R", $"127.0.0.1:{downPeer}:127.0.0.1:{targets.SourcePort}");
        await SshBenchHost.WaitPortAsync(upPeer, () => false);
        await context.CompareAsync(Name, "upload", "MiB/s", true,
            ct => SshBenchTargets.UploadAsync(upOurs.BoundPort, Bytes, ct), "openssh ssh -R",
            ct => SshBenchTargets.UploadAsync(upPeer, Bytes, ct), cancellationToken);
        await context.CompareAsync(Name, "download", "MiB/s", true,
            ct => SshBenchTargets.DownloadAsync(downOurs.BoundPort, Bytes, ct), "openssh ssh -R",
            ct => SshBenchTargets.DownloadAsync(downPeer, Bytes, ct), cancellationToken);
    }
}
