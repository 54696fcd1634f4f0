using System.Security.Cryptography;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>Our client against the real OpenSSH sshd, across the configurations kt-connect meets.</summary>
public sealed class SshInteropTests
{
    /// <summary>Connects, runs a command and pushes 1 MiB through a direct-tcpip echo; returns the client's negotiated algorithms.</summary>
    private static async Task<string> RoundTripAsync(SshdProcess sshd, SshKeyPair key, Func<SshClientOptions, SshClientOptions>? tweak = null)
    {
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key, tweak);
        var r = await client.ExecAsync("echo ok");
        Assert.Equal(0, r.ExitStatus);
        Assert.Equal("ok\n", r.StdoutText);
        await using var s = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        var data = RandomNumberGenerator.GetBytes(1 << 20);
        var write = Task.Run(async () =>
        {
            await s.WriteAsync(data);
            await s.CompleteWritesAsync();
        });
        var ms = new MemoryStream();
        await s.CopyToAsync(ms);
        await write;
        Assert.Equal(data, ms.ToArray());
        return client.NegotiatedAlgorithms;
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task DefaultConfig_NegotiatesGcmAndWorks()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        var algos = await RoundTripAsync(sshd, key);
        Assert.StartsWith("ecdh-sha2-nistp256 ecdsa-sha2-nistp256 aes256-gcm@openssh.com", algos);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task KtConnectShadowConfig_CtrWithHmac()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, SshdProcess.KtShadowConfig);
        var algos = await RoundTripAsync(sshd, key);
        Assert.Equal("ecdh-sha2-nistp256 ecdsa-sha2-nistp256 aes256-ctr hmac-sha2-256", algos);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task GcmOnlyServer()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ["Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com", "MACs hmac-sha2-512"]);
        var a = await RoundTripAsync(sshd, key, o => WithAlgorithms(o, ciphers: [SshAlgorithms.Aes128Gcm]));
        Assert.Contains("aes128-gcm@openssh.com (aead)", a);
        var b = await RoundTripAsync(sshd, key);
        Assert.Contains("aes256-gcm@openssh.com (aead)", b);
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData("aes128-ctr", "hmac-sha2-256")]
    [InlineData("aes192-ctr", "hmac-sha2-512")]
    [InlineData("aes256-ctr", "hmac-sha2-256-etm@openssh.com")]
    [InlineData("aes128-ctr", "hmac-sha2-512-etm@openssh.com")]
    public async Task EveryCtrCipherAndMac(string cipher, string mac)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, [$"Ciphers {cipher}", $"MACs {mac}"]);
        var a = await RoundTripAsync(sshd, key);
        Assert.EndsWith($"{cipher} {mac}", a);
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData("ecdh-sha2-nistp384", "ecdsa:384", "ecdsa-sha2-nistp384")]
    [InlineData("ecdh-sha2-nistp521", "ecdsa:521", "ecdsa-sha2-nistp521")]
    [InlineData("ecdh-sha2-nistp256", "rsa:2048", "rsa-sha2-512")]
    public async Task KexCurvesAndHostKeyTypes(string kex, string hostKeyType, string expectedHostAlgo)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, [$"KexAlgorithms {kex}"], [hostKeyType]);
        var a = await RoundTripAsync(sshd, key);
        Assert.StartsWith($"{kex} {expectedHostAlgo} ", a);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task RsaSha256HostKey_WhenServerOffersOnlyThat()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ["HostKeyAlgorithms rsa-sha2-256"], ["rsa:2048"]);
        var a = await RoundTripAsync(sshd, key);
        Assert.StartsWith("ecdh-sha2-nistp256 rsa-sha2-256 ", a);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task LegacySshRsaHostKey_OnlyWhenAllowed()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ["HostKeyAlgorithms ssh-rsa"], ["rsa:2048"]);
        var e = await Assert.ThrowsAsync<SshException>(() => RoundTripAsync(sshd, key));
        Assert.Equal(SshErrorIds.NoCommonAlgorithm, e.ErrorId);
        var a = await RoundTripAsync(sshd, key, o => WithAlgorithms(o, hostKey: [.. SshAlgorithms.DefaultHostKey, SshAlgorithms.SshRsa]));
        Assert.StartsWith("ecdh-sha2-nistp256 ssh-rsa ", a);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task WrongHostKey_NamesBothFingerprints()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        using var other = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, null, ["ecdsa:256"]);
        var e = await Assert.ThrowsAsync<SshHostKeyMismatchException>(() =>
            sshd.ConnectAsync(key, o => new SshClientOptions { Identity = key, ExpectedHostKeys = [other.PublicKey] }));
        Assert.Equal(SshErrorIds.HostKeyMismatch, e.ErrorId);
        Assert.Equal(sshd.HostKeys[0].Fingerprint, e.ActualFingerprint);
        Assert.Contains(other.PublicKey.Fingerprint, e.Message);
        Assert.Contains(sshd.HostKeys[0].Fingerprint, e.Message);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task UnknownUserKey_AuthenticationFailed()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        using var stranger = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        var e = await Assert.ThrowsAsync<SshException>(() => sshd.ConnectAsync(stranger));
        Assert.Equal(SshErrorIds.AuthenticationFailed, e.ErrorId);
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData("rsa", "2048", "RFC4716")]
    [InlineData("rsa", "3072", "PEM")]
    [InlineData("ecdsa", "384", "RFC4716")]
    [InlineData("ecdsa", "521", "RFC4716")]
    public async Task KeysWrittenBySshKeygen_AuthenticateWithSha2Signatures(string type, string bits, string format)
    {
        var dir = Directory.CreateTempSubdirectory("ktssh-key-");
        try
        {
            var file = Path.Combine(dir.FullName, "id");
            // -m RFC4716 writes the default "OPENSSH PRIVATE KEY" format for private keys; PEM writes PKCS#1 for RSA.
            (await KtConnect.Engine.ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", type, "-b", bits, "-N", "", "-m", format, "-f", file])).EnsureSuccess();
            using var key = SshKeyPair.Parse(await File.ReadAllTextAsync(file));
            Assert.Equal(SshPublicKey.ParseAuthorizedKey(await File.ReadAllTextAsync(file + ".pub")), key.PublicKey);
            await using var sshd = await SshdProcess.StartAsync(key);
            await using var client = await sshd.ConnectAsync(key);
            Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);

            // And what we write, ssh-keygen reads back to the same public key.
            await File.WriteAllTextAsync(file, key.ToOpenSshPrivateKey());
            var pub = (await KtConnect.Engine.ProcessRunner.RunAsync("ssh-keygen", ["-y", "-f", file])).EnsureSuccess().StandardOutput;
            Assert.Equal(key.PublicKey, SshPublicKey.ParseAuthorizedKey(pub));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData("rsa-sha2-256")]
    [InlineData("rsa-sha2-512")]
    public async Task RsaIdentity_FindsTheSha2HashTheServerAccepts(string only)
    {
        using var key = SshKeyPair.GenerateRsa(2048);
        await using var sshd = await SshdProcess.StartAsync(key, [$"PubkeyAcceptedAlgorithms {only}"]);
        await using var client = await sshd.ConnectAsync(key);
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
        Assert.Contains(only, client.Transport.ServerSigAlgs!);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Pkcs1PemRsaKey_RoundTripsAndAuthenticates()
    {
        using var generated = SshKeyPair.GenerateRsa(2048);
        using var key = SshKeyPair.Parse(generated.ToPkcs1Pem());
        Assert.Equal(generated.PublicKey, key.PublicKey);
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var client = await sshd.ConnectAsync(key);
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData("exit 0", 0)]
    [InlineData("exit 1", 1)]
    [InlineData("exit 255", 255)]
    [InlineData("false", 1)]
    public async Task Exec_ExitCodes(string command, int expected)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var client = await sshd.ConnectAsync(key);
        var r = await client.ExecAsync(command);
        Assert.Equal(expected, r.ExitStatus);
        Assert.Null(r.ExitSignal);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Exec_KilledBySignal_ReportsSignal()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var client = await sshd.ConnectAsync(key);
        var r = await client.ExecAsync("echo before; kill -KILL $$");
        Assert.Null(r.ExitStatus);
        Assert.Equal("KILL", r.ExitSignal);
        Assert.Equal("before\n", r.StdoutText);
        // Big output, both streams, larger than the window: flow control on the exec path.
        var big = await client.ExecAsync("head -c 5000000 /dev/zero; head -c 3000000 /dev/zero >&2");
        Assert.Equal(5000000, big.Stdout.Length);
        Assert.Equal(3000000, big.Stderr.Length);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task DirectTcpIp_ToClosedPort_ChannelOpenFailed()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var client = await sshd.ConnectAsync(key);
        var e = await Assert.ThrowsAsync<SshException>(() => client.OpenDirectTcpIpAsync("127.0.0.1", SshdProcess.FreePort()));
        Assert.Equal(SshErrorIds.ChannelOpenFailed, e.ErrorId);
        // The connection is still usable afterwards.
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task Cancellation_ExecAndReads_LeaveTheConnectionUsable()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key);
        using (var cts = new CancellationTokenSource())
        {
            var exec = client.ExecAsync("sleep 30", cts.Token);
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => exec);
        }
        await using (var s = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port))
        {
            using var cts = new CancellationTokenSource();
            var read = s.ReadAsync(new byte[10], cts.Token).AsTask();
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read);
            // The stream still works after a cancelled read.
            await s.WriteAsync("ping"u8.ToArray());
            var buf = new byte[4];
            await s.ReadExactlyAsync(buf);
            Assert.Equal("ping"u8.ToArray(), buf);
        }
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task ZeroByteRead_WaitsForData_ThenForEof_LikeASocket()
    {
        // Relays wait for data with a zero-byte read so that idle flows hold no buffer; it must wait, not return at once.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key);
        await using var s = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        var wait = s.ReadAsync(Memory<byte>.Empty).AsTask();
        await Task.Delay(300);
        Assert.False(wait.IsCompleted);
        await s.WriteAsync("ping"u8.ToArray());
        Assert.Equal(0, await wait.WaitAsync(TimeSpan.FromSeconds(10)));
        var buf = new byte[4];
        await s.ReadExactlyAsync(buf);
        Assert.Equal("ping"u8.ToArray(), buf);
        // Nothing buffered again: waits, and the echo server's EOF (after ours) ends the wait.
        wait = s.ReadAsync(Memory<byte>.Empty).AsTask();
        await Task.Delay(300);
        Assert.False(wait.IsCompleted);
        await s.CompleteWritesAsync();
        Assert.Equal(0, await wait.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, await s.ReadAsync(buf));
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_read_whose_token_is_cancelled_still_returns_the_bytes_it_took_and_none_are_lost()
    {
        // The read that takes the window past the top-up point sends the adjustment with the reader's token; a
        // cancelled token must not drop the bytes already taken out of the buffer, nor the window owed.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var client = await sshd.ConnectAsync(key);
        await using var echo = new EchoServer();
        await using var s = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        var sent = new byte[512 * 1024];
        new Random(7).NextBytes(sent);
        var writer = Task.Run(async () =>
        {
            await s.WriteAsync(sent);
            await s.CompleteWritesAsync();
        });
        var got = new MemoryStream();
        var buffer = new byte[sent.Length];
        // One byte short of the top-up point (three 32 KiB packets consumed) with a live token...
        const int before = 96 * 1024 - 1;
        await s.ReadExactlyAsync(buffer.AsMemory(0, before));
        got.Write(buffer, 0, before);
        Assert.Equal(0, await s.ReadAsync(Memory<byte>.Empty)); // waits until more has arrived
        // ... then a read past it with a cancelled one.
        var n = await s.ReadAsync(buffer, new CancellationToken(canceled: true));
        Assert.True(n > 0);
        got.Write(buffer, 0, n);
        while ((n = await s.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30))) > 0) got.Write(buffer, 0, n);
        await writer;
        Assert.Equal(sent.Length, got.Length);
        Assert.True(sent.AsSpan().SequenceEqual(got.ToArray()));
    }

    internal static SshClientOptions WithAlgorithms(SshClientOptions o, IReadOnlyList<string>? ciphers = null, IReadOnlyList<string>? hostKey = null) =>
        new()
        {
            Identity = o.Identity,
            ExpectedHostKeys = o.ExpectedHostKeys,
            Algorithms = new SshAlgorithmPreferences
            {
                Ciphers = ciphers ?? SshAlgorithms.DefaultCiphers,
                HostKey = hostKey ?? SshAlgorithms.DefaultHostKey,
            },
        };
}
