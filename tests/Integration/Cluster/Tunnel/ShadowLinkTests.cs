using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Integration.Ssh;
using KtConnect.Engine.Sessions.Tunnel;

namespace KtConnect.Tests.Integration.Cluster.Tunnel;

/// <summary>
/// The data-path core end to end, no root needed for the path itself: KubeSim's port-forward to a pod whose port 22 is a
/// real sshd on loopback, our SSH client over it, direct-tcpip channels to local servers.
/// </summary>
public sealed class ShadowLinkTests
{
    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Direct_tcpip_through_port_forward_and_ssh_carries_megabytes_intact_over_20_concurrent_channels()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var echo = new EchoServer();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 2));
        Assert.Equal(ShadowLinkState.Connected, link.State);
        await Wait.UntilAsync(() => link.HealthyConnections == 2, "both SSH connections up");

        // One big flow, then 20 side by side (spread over both connections).
        await RoundTripAsync(link, echo.Port, 4 * 1024 * 1024, seed: 1);
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => RoundTripAsync(link, echo.Port, 256 * 1024 + i * 1000, seed: 100 + i)));
        Assert.Equal(0, link.Reconnects);
        Assert.Equal(ShadowLinkState.Connected, link.State);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Wrong_host_key_surfaces_the_typed_ssh_error_from_start_without_retrying()
    {
        await using var lab = await ShadowLab.StartAsync();
        using var other = SshKeyPair.GenerateEcdsa();
        var e = await Assert.ThrowsAsync<SshHostKeyMismatchException>(() =>
            ShadowLink.StartAsync(lab.CountingTransport, lab.Options(hostKeys: [other.PublicKey])));
        Assert.Equal(SshErrorIds.HostKeyMismatch, e.ErrorId);
        Assert.Equal(lab.Sshd.HostKeys[0].Fingerprint, e.ActualFingerprint);
        Assert.Equal(1, lab.PortForwards);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Unauthorized_key_surfaces_authentication_failure_from_start()
    {
        await using var lab = await ShadowLab.StartAsync();
        using var stranger = SshKeyPair.GenerateEcdsa();
        var options = lab.Options();
        var e = await Assert.ThrowsAsync<SshException>(() => ShadowLink.StartAsync(lab.CountingTransport, new ShadowLinkOptions
        {
            Namespace = options.Namespace,
            PodName = options.PodName,
            Identity = stranger,
            ExpectedHostKeys = options.ExpectedHostKeys,
        }));
        Assert.Equal(SshErrorIds.AuthenticationFailed, e.ErrorId);
        Assert.Equal(1, lab.PortForwards);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Killing_sshd_mid_session_reports_reconnecting_then_recovered_and_new_connections_work_again()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var echo = new EchoServer();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 2, openWait: TimeSpan.FromSeconds(1)));
        var events = new ConcurrentQueue<string>();
        var reconnecting = new TaskCompletionSource<Exception>(TaskCreationOptions.RunContinuationsAsynchronously);
        var recovered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        link.Reconnecting += (_, e) =>
        {
            events.Enqueue("reconnecting");
            reconnecting.TrySetResult(e.Cause);
        };
        link.Recovered += (_, _) =>
        {
            events.Enqueue("recovered");
            recovered.TrySetResult();
        };
        await Wait.UntilAsync(() => link.HealthyConnections == 2, "both SSH connections up");

        // A flow that is open when sshd dies breaks with an IOException (what the relays handle).
        var dialer = new SshFlowDialer(link);
        await using var open = await dialer.DialAsync("127.0.0.1", echo.Port, CancellationToken.None);
        await lab.Sshd.KillAsync();
        var cause = await reconnecting.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.NotNull(cause);
        Assert.Equal(ShadowLinkState.Reconnecting, link.State);
        await Assert.ThrowsAsync<IOException>(async () =>
        {
            // Bounded: a flow that never learns of the dead connection fails the test instead of hanging it.
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var buffer = new byte[16];
            await open.WriteAsync(buffer, bound.Token);
            while (await open.ReadAsync(buffer, bound.Token) > 0)
            {
            }
            throw new InvalidOperationException("The broken flow ended cleanly.");
        });

        // While sshd is down, opens wait (bounded) and then fail with the typed error.
        var down = await Assert.ThrowsAsync<ShadowLinkException>(() => link.OpenAsync("127.0.0.1", echo.Port));
        Assert.Equal(TunnelErrorIds.LinkUnavailable, down.ErrorId);

        await lab.Sshd.RestartAsync();
        await recovered.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ShadowLinkState.Connected, link.State);
        Assert.Equal(["reconnecting", "recovered"], events.ToArray());
        await RoundTripAsync(link, echo.Port, 64 * 1024, seed: 7);
        await Wait.UntilAsync(() => link.HealthyConnections == 2, "both SSH connections back");
        Assert.True(link.Reconnects >= 2);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Losing_one_of_two_connections_is_not_an_outage_and_the_slot_reconnects()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var echo = new EchoServer();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 2));
        var outages = 0;
        link.Reconnecting += (_, _) => Interlocked.Increment(ref outages);
        await Wait.UntilAsync(() => link.HealthyConnections == 2, "both SSH connections up");

        lab.Sshd.KillOneConnection();
        await Wait.UntilAsync(() => link.Reconnects >= 1 && link.HealthyConnections == 2, "the dropped connection replaced");
        Assert.Equal(ShadowLinkState.Connected, link.State);
        Assert.Equal(0, Volatile.Read(ref outages));
        await RoundTripAsync(link, echo.Port, 256 * 1024, seed: 3);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Remote_forward_is_requested_again_on_the_same_port_after_sshd_comes_back()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 2));
        await using var forward = await link.ForwardRemoteAsync("127.0.0.1", 0, async (conn, ct) =>
        {
            await conn.WriteAsync("hello from the laptop\n"u8.ToArray(), ct);
            await conn.CompleteWritesAsync(ct);
        });
        Assert.Equal("hello from the laptop\n", await ReadAllFromAsync(forward.BoundPort));

        await lab.Sshd.KillAsync();
        await Wait.UntilAsync(() => link.State == ShadowLinkState.Reconnecting, "the link reconnecting");
        await lab.Sshd.RestartAsync();
        await Wait.UntilAsync(() => forward.Reestablished >= 1, "the forward requested again");
        // While the new connections settle the forward may be lost and requested again once more (between the two the
        // port refuses, as the class says), so the test waits for a connection that is answered, on the same port.
        var text = await Wait.ForAsync(async () =>
        {
            try
            {
                return await ReadAllFromAsync(forward.BoundPort);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return null;
            }
        }, t => t is not null, "the forward's port to answer again", _ => $"reestablished {forward.Reestablished} times, last error {forward.LastError?.Message}");
        Assert.Equal("hello from the laptop\n", text);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Handlers_of_a_forward_lost_with_its_connection_are_cancelled_once_it_is_requested_again()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 1));
        var handlerStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handlerCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var forward = await link.ForwardRemoteAsync("127.0.0.1", 0, async (_, ct) =>
        {
            handlerStarted.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
                handlerCancelled.TrySetResult();
            }
        });
        using var held = new TcpClient();
        await held.ConnectAsync(IPAddress.Loopback, forward.BoundPort);
        await handlerStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));

        lab.Sshd.KillOneConnection();
        await Wait.UntilAsync(() => forward.Reestablished >= 1, "the forward requested again");
        await handlerCancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_link_disposed_before_its_users_fails_them_as_closed_and_its_remote_forward_still_disposes()
    {
        // Teardown order is not always forwards first (a replaced shadow's link goes while its forwards are still
        // registered): what comes after the link's end gets its typed error, not an ObjectDisposedException.
        await using var lab = await ShadowLab.StartAsync();
        var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 1));
        var forward = await link.ForwardRemoteAsync("127.0.0.1", 0, (_, _) => Task.CompletedTask);
        await link.DisposeAsync();
        var e = await Assert.ThrowsAsync<ShadowLinkException>(() => link.OpenAsync("127.0.0.1", lab.Sshd.Port));
        Assert.Equal(TunnelErrorIds.LinkClosed, e.ErrorId);
        // The forward's connection ended with the link: it asks the link again and learns that it is closed.
        await Wait.UntilAsync(() => forward.LastError is ShadowLinkException { ErrorId: TunnelErrorIds.LinkClosed }, "the forward to see the link closed");
        await forward.DisposeAsync();
    }

    private static async Task<string> ReadAllFromAsync(int port)
    {
        using var c = new TcpClient();
        await c.ConnectAsync(IPAddress.Loopback, port);
        using var reader = new StreamReader(c.GetStream());
        return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Refused_destination_is_a_typed_dial_error_carrying_connection_refused()
    {
        await using var lab = await ShadowLab.StartAsync();
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options(connections: 1));
        var dialer = new SshFlowDialer(link);
        var closed = ShadowLab.FreeTcpPort();
        var e = await Assert.ThrowsAsync<TunnelDialException>(() => dialer.DialAsync(new IPEndPoint(IPAddress.Loopback, closed), CancellationToken.None));
        Assert.Equal(TunnelErrorIds.DestinationRefused, e.ErrorId);
        Assert.Equal(SocketError.ConnectionRefused, Assert.IsType<SocketException>(e.InnerException).SocketErrorCode);
        Assert.Equal(0x05, KtConnect.Engine.Net.Socks5Server.ReplyCode(e));
        // The connection survives a refused channel.
        Assert.Equal(ShadowLinkState.Connected, link.State);
        Assert.Equal(1, link.HealthyConnections);
    }

    /// <summary>Writes <paramref name="size"/> random bytes, half-closes, reads the echo to EOF; compares SHA-256.</summary>
    internal static async Task RoundTripAsync(ShadowLink link, int port, int size, int seed)
    {
        var dialer = new SshFlowDialer(link);
        await using var stream = await dialer.DialAsync("127.0.0.1", port, CancellationToken.None);
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        var writer = Task.Run(async () =>
        {
            for (var off = 0; off < data.Length; off += 40_000)
                await stream.WriteAsync(data.AsMemory(off, Math.Min(40_000, data.Length - off)));
            await ((KtConnect.Engine.Net.IHalfCloseStream)stream).ShutdownWriteAsync(CancellationToken.None);
        });
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long total = 0;
        int n;
        // A stuck transfer fails the test (with how far it got) instead of hanging the run.
        using var stuck = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            while ((n = await stream.ReadAsync(buffer, stuck.Token)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                total += n;
            }
            await writer.WaitAsync(stuck.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"Transfer of {size} bytes stuck after {total} bytes back; writer {writer.Status}.");
        }
        Assert.Equal(size, total);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(data)), Convert.ToHexString(hash.GetHashAndReset()));
    }
}
