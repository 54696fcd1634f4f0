using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>Data integrity through direct-tcpip and remote forwards, concurrency, and re-keying under load.</summary>
public sealed class SshTransferTests
{
    /// <summary>Writes <paramref name="bytes"/> of seeded pseudo-random data while reading the echo; returns both SHA-256s.</summary>
    internal static async Task<(byte[] Sent, byte[] Received, long ReceivedBytes)> EchoHashAsync(Stream s, long bytes, int seed, Func<ValueTask>? completeWrites = null)
    {
        var write = Task.Run(async () =>
        {
            using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buf = new byte[64 * 1024];
            var x = (ulong)seed * 0x9E3779B97F4A7C15UL + 1;
            for (long sent = 0; sent < bytes; sent += buf.Length)
            {
                var span = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(buf.AsSpan());
                for (var i = 0; i < span.Length; i++)
                {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    span[i] = x;
                }
                var n = (int)Math.Min(buf.Length, bytes - sent);
                h.AppendData(buf, 0, n);
                await s.WriteAsync(buf.AsMemory(0, n));
            }
            if (completeWrites is not null) await completeWrites();
            return h.GetHashAndReset();
        });
        using var rh = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var rbuf = new byte[64 * 1024];
        long received = 0;
        int r;
        while ((r = await s.ReadAsync(rbuf)) > 0)
        {
            rh.AppendData(rbuf, 0, r);
            received += r;
        }
        return (await write, rh.GetHashAndReset(), received);
    }

    private static async Task AssertEchoAsync(SshClient client, int port, long bytes, int seed)
    {
        await using var s = await client.OpenDirectTcpIpAsync("127.0.0.1", port);
        var (sent, received, n) = await EchoHashAsync(s, bytes, seed, () => s.CompleteWritesAsync());
        Assert.Equal(bytes, n);
        Assert.Equal(sent, received);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task DirectTcpIp_256MiBEachWay_HashesMatch()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key);
        await AssertEchoAsync(client, echo.Port, 256L << 20, 1);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task HundredConcurrentChannels_HashesMatch()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key, o => new SshClientOptions
        {
            Identity = o.Identity,
            ExpectedHostKeys = o.ExpectedHostKeys,
            WindowSize = 256 * 1024,
            MaxPacketSize = 16 * 1024,
        });
        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => AssertEchoAsync(client, echo.Port, 1L << 20, i + 10)));
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Rekey_ByServerAndClient_ManyTimesDuringTransfer(bool ktShadowConfig)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        string[] cfg = ktShadowConfig ? [.. SshdProcess.KtShadowConfig, "RekeyLimit 1M"] : ["RekeyLimit 1M"];
        await using var sshd = await SshdProcess.StartAsync(key, cfg);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key, o => new SshClientOptions
        {
            Identity = o.Identity,
            ExpectedHostKeys = o.ExpectedHostKeys,
            RekeyBytesLimit = 3 << 20,
        });
        await Task.WhenAll(Enumerable.Range(0, 4).Select(i => AssertEchoAsync(client, echo.Port, 16L << 20, i)));
        // 128 MiB crossed the link: with 1 MiB (server) and 3 MiB (client) limits that is dozens of exchanges.
        Assert.True(client.KeyExchangeCount > 20, $"only {client.KeyExchangeCount} key exchanges");
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Rekey_ByTime()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key, o => new SshClientOptions
        {
            Identity = o.Identity,
            ExpectedHostKeys = o.ExpectedHostKeys,
            RekeyTimeLimit = TimeSpan.FromMilliseconds(300),
        });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (client.KeyExchangeCount < 3 && DateTime.UtcNow < deadline)
            await AssertEchoAsync(client, echo.Port, 64 * 1024, 3);
        Assert.True(client.KeyExchangeCount >= 3);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task RemoteForward_PortZero_OutsideClientsReachTheRightHandler()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ["GatewayPorts yes"]);
        await using var client = await sshd.ConnectAsync(key);
        async Task Echo(SshChannelStream s, CancellationToken ct)
        {
            await s.CopyToAsync(s, ct);
            await s.CompleteWritesAsync(ct);
        }
        async Task Tag(SshChannelStream s, CancellationToken ct)
        {
            await s.WriteAsync("second"u8.ToArray(), ct);
            await s.CompleteWritesAsync(ct);
        }
        var fwdA = await client.ForwardRemoteAsync("0.0.0.0", 0, Echo);
        var fwdB = await client.ForwardRemoteAsync("127.0.0.1", 0, Tag);
        Assert.NotEqual(0, fwdA.BoundPort);
        Assert.NotEqual(fwdA.BoundPort, fwdB.BoundPort);

        // A plain TCP client outside the SSH link, 8 at once, each with its own data.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, fwdA.BoundPort);
            var s = tcp.GetStream();
            var (sent, received, n) = await EchoHashAsync(s, 4L << 20, 100 + i, () =>
            {
                tcp.Client.Shutdown(SocketShutdown.Send);
                return ValueTask.CompletedTask;
            });
            Assert.Equal(4L << 20, n);
            Assert.Equal(sent, received);
        }));
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(IPAddress.Loopback, fwdB.BoundPort);
            var ms = new MemoryStream();
            await tcp.GetStream().CopyToAsync(ms);
            Assert.Equal("second"u8.ToArray(), ms.ToArray());
        }
        Assert.Equal(8, fwdA.ConnectionCount);
        Assert.Null(fwdA.LastHandlerError);

        // Cancelled: sshd stops listening on that port.
        var port = fwdA.BoundPort;
        await fwdA.DisposeAsync();
        await Wait.UntilAsync(async () =>
        {
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, port);
                return false;
            }
            catch (SocketException)
            {
                return true;
            }
        }, "the cancelled forward's port to refuse connections", TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50));
        await fwdB.DisposeAsync();
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task RemoteForward_Refused_TypedError()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ["AllowTcpForwarding local"]);
        await using var client = await sshd.ConnectAsync(key);
        var e = await Assert.ThrowsAsync<SshException>(() => client.ForwardRemoteAsync("127.0.0.1", 0, (_, _) => Task.CompletedTask));
        Assert.Equal(SshErrorIds.ForwardRejected, e.ErrorId);
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }
}

/// <summary>Runs alone: the allocation figure is process-wide and other tests would pollute it.</summary>
[CollectionDefinition(nameof(SshAllocationTests), DisableParallelization = true)]
public sealed class SshAllocationCollection
{
}

/// <summary>Steady-state allocation on the data path, measured process-wide across a long transfer.</summary>
[Collection(nameof(SshAllocationTests))]
public sealed class SshAllocationTests
{
    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData(SshAlgorithms.Aes128Gcm, null)]
    [InlineData(SshAlgorithms.Aes256Ctr, SshAlgorithms.HmacSha256)]
    [InlineData(SshAlgorithms.Aes128Ctr, SshAlgorithms.HmacSha512Etm)]
    public async Task SteadyStateTransfer_AllocatesAlmostNothingPerPacket(string cipher, string? mac)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key, o => new SshClientOptions
        {
            Identity = o.Identity,
            ExpectedHostKeys = o.ExpectedHostKeys,
            Algorithms = new SshAlgorithmPreferences { Ciphers = [cipher], Macs = mac is null ? SshAlgorithms.DefaultMacs : [mac] },
        });
        await using var s = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        var buf = new byte[32 * 1024];
        var rbuf = new byte[64 * 1024];
        async Task Pump(long bytes)
        {
            var reader = Task.Run(async () =>
            {
                long got = 0;
                while (got < bytes) got += await s.ReadAsync(rbuf);
            });
            for (long sent = 0; sent < bytes; sent += buf.Length) await s.WriteAsync(buf);
            await reader;
        }
        await Pump(16L << 20);
        const long Bytes = 64L << 20;
        // The figure is process-wide, so one-off work elsewhere in the test host (the runner compiling an
        // expression, reflecting over a type) lands in whichever round it overlaps. A per-packet cost shows
        // in every round; the quietest of three is the data path's own.
        var allocated = long.MaxValue;
        for (var round = 0; round < 3; round++)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            await Pump(Bytes);
            allocated = Math.Min(allocated, GC.GetTotalAllocatedBytes(precise: true) - before);
        }
        // 4096 packets each way (32 KiB): timers and thread pool growth may allocate a little, but
        // nothing proportional to the packets.
        var packets = 2 * Bytes / buf.Length;
#if DEBUG
        // Debug builds compile async state machines as classes, one allocation per suspended call.
        const long PerPacket = 2048;
#else
        const long PerPacket = 64;
#endif
        Assert.True(allocated < packets * PerPacket, $"{allocated} bytes allocated for {packets} packets ({(double)allocated / packets:0.0} B/packet)");
    }
}
