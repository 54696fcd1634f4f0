using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace KtConnect.Bench;

/// <summary>
/// Channel-open rate over one established connection. Each operation is a new TCP connection to a
/// local forward listener, which opens a new direct-tcpip channel, moves 8 bytes there and back, and
/// closes. The peer is the same thing through <c>ssh -L</c>: OpenSSH also opens one channel per
/// accepted connection on its existing connection, so neither side pays for a process or a handshake
/// (repeated <c>ssh -W</c> would mostly measure process start and key exchange).
/// </summary>
public sealed class SshChannelOpenScenario : IScenario
{
    public string Name => "ssh-channel-open";

    public string Description => "sequential and 16-way parallel channel opens through -L: ours vs OpenSSH ssh -L";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        const string Cipher = "aes128-gcm@openssh.com";
        await using var host = await SshBenchHost.StartAsync([]);
        await using var targets = new SshBenchTargets();
        await using var client = await host.ConnectAsync(Cipher, null);
        await using var ours = new SshBenchLocalForward(client, targets.SourcePort);
        var peer = SshBenchHost.FreePort();
        await host.StartOpenSshAsync(Cipher, null, peer, "-L", $"127.0.0.1:{peer}:127.0.0.1:{targets.SourcePort}");
        await context.CompareAsync(Name, "opens-sequential", "opens/s", true,
            ct => RateAsync(ours.Port, 400, 1, ct), "openssh ssh -L", ct => RateAsync(peer, 400, 1, ct), cancellationToken);
        await context.CompareAsync(Name, "opens-parallel16", "opens/s", true,
            ct => RateAsync(ours.Port, 1600, 16, ct), "openssh ssh -L", ct => RateAsync(peer, 1600, 16, ct), cancellationToken);
    }

    private static async Task<double> RateAsync(int port, int count, int parallel, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, parallel).Select(async _ =>
        {
            var buf = new byte[8];
            while (Interlocked.Increment(ref next) <= count)
            {
                using var c = new TcpClient { NoDelay = true };
                await c.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
                var s = c.GetStream();
                // The source answers an 8-byte request with that many bytes: one round trip on the new channel.
                await s.WriteAsync(BitConverter.GetBytes(8L), ct).ConfigureAwait(false);
                await s.ReadExactlyAsync(buf, ct).ConfigureAwait(false);
            }
        })).ConfigureAwait(false);
        return count / sw.Elapsed.TotalSeconds;
    }
}
