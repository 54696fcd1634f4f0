using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>Broken and hostile peers: each must give one typed error quickly and release the connection.</summary>
public sealed class SshHostilePeerTests
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(15);

    private static async Task<SshException> ConnectToFakeAsync(FakeSshServer fake, TimeSpan? handshakeTimeout = null)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, fake.Port);
        var options = new SshClientOptions
        {
            Identity = key,
            ExpectedHostKeys = [fake.HostKey.PublicKey],
            HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(30),
        };
        var e = await Assert.ThrowsAnyAsync<SshException>(() => SshClient.ConnectAsync(tcp.GetStream(), options, CancellationToken.None).WaitAsync(Quick));
        // The client closed its socket: nothing is left behind.
        await fake.ClientClosed.WaitAsync(Quick);
        return e;
    }

    [LinuxRootFact]
    public async Task OversizedPacketLength()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            await f.SendLineAsync("SSH-2.0-FakeServer", ct);
            await f.SendRawAsync([0x7f, 0xff, 0xff, 0xf0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ct);
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.PacketTooLarge, e.ErrorId);
    }

    [LinuxRootFact]
    public async Task BadSignatureOnKexReply()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            var (s, c) = await f.HandshakeToKexAsync(ct);
            await f.SendEcdhReplyAsync(s, c, corruptSignature: true, ct);
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.HostKeySignatureInvalid, e.ErrorId);
    }

    [LinuxRootFact]
    public async Task GoodSignatureOnKexReply_ClientMovesOnToNewKeys()
    {
        // The control for the test above: the same fake server with a correct signature is accepted.
        byte[]? newKeys = null;
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            var (s, c) = await f.HandshakeToKexAsync(ct);
            await f.SendEcdhReplyAsync(s, c, corruptSignature: false, ct);
            newKeys = await f.ReadPacketAsync(ct);
            throw new EndOfStreamException("hang up");
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.ConnectionLost, e.ErrorId);
        Assert.Equal([21], newKeys);
    }

    [LinuxRootFact]
    public async Task IgnoreBeforeKexInit_StrictKexViolation()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            await f.SendLineAsync("SSH-2.0-FakeServer", ct);
            await f.SendPacketAsync([2, 0, 0, 0, 0], ct);
            await f.SendPacketAsync(FakeSshServer.KexInit(strict: true), ct);
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.StrictKexViolation, e.ErrorId);
    }

    [LinuxRootFact]
    public async Task DisconnectDuringKex_TypedWithReason()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            await f.HandshakeToKexAsync(ct);
            using var w = new SshWriter();
            w.Byte(1).UInt32(3).String("key exchange failed\u001b[31m").String("");
            await f.SendPacketAsync(w.ToArray(), ct);
        });
        var e = await ConnectToFakeAsync(fake);
        var d = Assert.IsType<SshDisconnectException>(e);
        Assert.Equal(SshErrorIds.Disconnected, d.ErrorId);
        Assert.Equal(3u, d.ReasonCode);
        Assert.Equal("key exchange failed?[31m", d.Description);
    }

    [LinuxRootFact]
    public async Task NoCommonCipher_TypedError()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            await f.SendLineAsync("SSH-2.0-FakeServer", ct);
            using var w = new SshWriter();
            w.Byte(20).Raw(new byte[16]).String("ecdh-sha2-nistp256").String("ecdsa-sha2-nistp256").String("3des-cbc").String("3des-cbc")
                .String("hmac-sha1").String("hmac-sha1").String("none").String("none").String("").String("").Boolean(false).UInt32(0);
            await f.SendPacketAsync(w.ToArray(), ct);
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.NoCommonAlgorithm, e.ErrorId);
        Assert.Contains("3des-cbc", e.Message);
    }

    [LinuxRootFact]
    public async Task PreBannerLinesTolerated_ThenUnsupportedVersion()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            await f.SendLineAsync("Welcome to a very chatty server", ct);
            await f.SendLineAsync("", ct);
            await f.SendLineAsync("SSH-1.5-Ancient", ct);
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.VersionExchangeFailed, e.ErrorId);
    }

    [LinuxRootFact]
    public async Task TruncatedDuringKexInit_ConnectionLost()
    {
        await using var fake = new FakeSshServer(async (f, ct) =>
        {
            await f.SendLineAsync("SSH-2.0-FakeServer", ct);
            // A well-formed packet header announcing more bytes than ever arrive.
            await f.SendRawAsync(FakeSshServer.Frame(FakeSshServer.KexInit(strict: true))[..40], ct);
            throw new EndOfStreamException("hang up");
        });
        var e = await ConnectToFakeAsync(fake);
        Assert.Equal(SshErrorIds.ConnectionLost, e.ErrorId);
    }

    [LinuxRootFact]
    public async Task SilentServer_HandshakeTimeout()
    {
        // Reads what the client sends and never answers.
        await using var fake = new FakeSshServer((f, ct) => Task.CompletedTask);
        var e = await ConnectToFakeAsync(fake, TimeSpan.FromSeconds(1));
        Assert.Equal(SshErrorIds.HandshakeTimeout, e.ErrorId);
    }

    [LinuxRootTheory("sshd", "ssh-keygen")]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BadMacMidSession(bool ktShadowConfig)
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ktShadowConfig ? SshdProcess.KtShadowConfig : null);
        await using var proxy = new TcpProxy(sshd.Port);
        await using var client = await ConnectViaAsync(proxy, sshd, key);
        proxy.CorruptNextServerChunk = true;
        var e = await Assert.ThrowsAsync<SshException>(() => client.ExecAsync("echo hi").WaitAsync(Quick));
        Assert.Equal(SshErrorIds.MacMismatch, e.ErrorId);
        Assert.Equal(SshErrorIds.MacMismatch, ((SshException)await client.Completion.WaitAsync(Quick)).ErrorId);
        await Wait.UntilAsync(() => proxy.ClientClosed, "the proxy to see the client close its side", Quick);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task TruncatedMidSession_EveryChannelGetsConnectionLost()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var proxy = new TcpProxy(sshd.Port);
        await using var client = await ConnectViaAsync(proxy, sshd, key);
        await using var a = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        await using var b = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        proxy.CutAfterServerBytes = proxy.ServerBytes + 1;
        await a.WriteAsync(new byte[100]);
        var ea = await Assert.ThrowsAsync<SshException>(async () =>
        {
            var buf = new byte[1000];
            while (await a.ReadAsync(buf).AsTask().WaitAsync(Quick) > 0)
            {
            }
        });
        var eb = await Assert.ThrowsAsync<SshException>(async () => await b.ReadAsync(new byte[10]).AsTask().WaitAsync(Quick));
        Assert.Equal(SshErrorIds.ConnectionLost, ea.ErrorId);
        Assert.Same(ea, eb);
        Assert.False(client.IsConnected);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task StalledPeer_KeepaliveFailsEveryChannel()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await using var proxy = new TcpProxy(sshd.Port);
        await using var client = await ConnectViaAsync(proxy, sshd, key, keepalive: TimeSpan.FromMilliseconds(400));
        await using var a = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        await using var b = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        var disconnects = 0;
        client.Disconnected += (_, _) => Interlocked.Increment(ref disconnects);
        proxy.Freeze();
        var sw = Stopwatch.StartNew();
        var readA = a.ReadAsync(new byte[10]).AsTask();
        // A writer blocked by flow control must be released too: push more than the window.
        var writeB = b.WriteAsync(new byte[8 << 20]).AsTask();
        var ea = await Assert.ThrowsAsync<SshException>(() => readA.WaitAsync(Quick));
        var eb = await Assert.ThrowsAsync<SshException>(() => writeB.WaitAsync(Quick));
        Assert.Equal(SshErrorIds.KeepaliveTimeout, ea.ErrorId);
        Assert.Equal(SshErrorIds.KeepaliveTimeout, eb.ErrorId);
        Assert.True(sw.Elapsed < Quick);
        var e = await Assert.ThrowsAsync<SshException>(() => client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port));
        Assert.Equal(SshErrorIds.KeepaliveTimeout, e.ErrorId);
        // The event is raised once the channels have failed, on the teardown's thread: it may trail what the test saw.
        await Wait.UntilAsync(() => Volatile.Read(ref disconnects) > 0, "the Disconnected event", Quick, TimeSpan.FromMilliseconds(10));
        await Task.Delay(100); // and no second one
        Assert.Equal(1, Volatile.Read(ref disconnects));
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task ServerKeepalives_AreAnswered()
    {
        // sshd drops clients that do not answer its keepalive@openssh.com after CountMax intervals.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key, ["ClientAliveInterval 1", "ClientAliveCountMax 1"]);
        await using var echo = new EchoServer();
        await using var client = await sshd.ConnectAsync(key, o => new SshClientOptions
        {
            Identity = o.Identity,
            ExpectedHostKeys = o.ExpectedHostKeys,
            KeepaliveInterval = TimeSpan.Zero,
        });
        await using var idle = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.True(client.IsConnected);
        Assert.Equal(0, (await client.ExecAsync("true")).ExitStatus);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_typed_failure_of_the_stream_under_ssh_is_a_lost_connection_on_both_sides()
    {
        // The stream under SSH is a Kubernetes port-forward in the product; it reports a broken WebSocket as its own
        // typed error (KubeConnectionException), which must end the SSH connection like an IOException does.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();

        var (client, stream) = await ConnectBreakableAsync(sshd, key);
        await using (client)
        {
            await using var channel = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
            stream.BreakWrites();
            var write = await Assert.ThrowsAsync<SshException>(() => channel.WriteAsync(new byte[10]).AsTask().WaitAsync(Quick));
            Assert.Equal(SshErrorIds.ConnectionLost, write.ErrorId);
            Assert.IsType<KtConnect.Engine.Kube.KubeConnectionException>(write.InnerException);
        }

        await BreakReadsUnderAConnectionAsync(sshd, key, echo);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_stream_failing_with_an_exception_of_any_other_kind_still_ends_the_connection_for_every_waiter()
    {
        // An aborted WebSocket throws OperationCanceledException, not a KtException or IOException; the reader loop
        // must still tear the connection down, or readers stay parked on a connection that reports itself up.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        var read = await BreakReadsUnderAConnectionAsync(sshd, key, echo, new OperationCanceledException("The WebSocket was aborted (test)."));
        Assert.IsType<OperationCanceledException>(read.InnerException);
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_stream_that_throws_as_it_is_closed_does_not_keep_the_channels_from_hearing_of_the_end()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        await BreakReadsUnderAConnectionAsync(sshd, key, echo, disposeError: new IOException("The close handshake failed (test)."));
    }

    /// <summary>
    /// Breaks the reads under a fresh connection (with <paramref name="error"/>, or a port-forward's typed error): a
    /// pending channel read fails with SshConnectionLost (returned), and Disconnected and IsConnected say it ended.
    /// </summary>
    private static async Task<SshException> BreakReadsUnderAConnectionAsync(SshdProcess sshd, SshKeyPair key, EchoServer echo, Exception? error = null,
        Exception? disposeError = null)
    {
        var (client, stream) = await ConnectBreakableAsync(sshd, key);
        stream.DisposeError = disposeError;
        await using (client)
        {
            await using var channel = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port);
            var disconnected = new TaskCompletionSource();
            client.Disconnected += (_, _) => disconnected.TrySetResult();
            stream.BreakReads(error);
            var read = await Assert.ThrowsAsync<SshException>(() => channel.ReadAsync(new byte[10]).AsTask().WaitAsync(Quick));
            Assert.Equal(SshErrorIds.ConnectionLost, read.ErrorId);
            await disconnected.Task.WaitAsync(Quick);
            Assert.False(client.IsConnected);
            return read;
        }
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_connect_cancelled_on_any_read_of_its_handshake_fails_even_when_that_read_completed_it()
    {
        // The caller's cancel closes the transport at once. Landing on the handshake's last read, the reply is already
        // in hand and the handshake completes: the connect must fail then too, not return a client with no transport.
        // Each k cancels on the k-th read, until k is past every read of a connect.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var echo = new EchoServer();
        for (var k = 1; ; k++)
        {
            Assert.True(k < 40, "the handshake never finished without a cancel");
            using var cts = new CancellationTokenSource();
            var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync(IPAddress.Loopback, sshd.Port);
            var reads = 0;
            var stream = new BreakableStream(tcp.GetStream()) { AfterRead = () => { if (++reads == k) cts.Cancel(); } };
            SshClient client;
            try
            {
                client = await SshClient.ConnectAsync(stream, new SshClientOptions { Identity = key, ExpectedHostKeys = sshd.HostKeys }, cts.Token).WaitAsync(Quick);
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                continue;
            }
            await using (client)
            {
                // A client that came back works, whether or not a read after the handshake was the k-th.
                await using var channel = await client.OpenDirectTcpIpAsync("127.0.0.1", echo.Port).WaitAsync(Quick);
                await channel.WriteAsync("x"u8.ToArray());
                Assert.Equal((byte)'x', (await ReadByteAsync(channel)));
            }
            if (!cts.IsCancellationRequested) return;
        }
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_send_that_comes_after_the_client_is_disposed_fails_at_once_and_does_not_wait_forever()
    {
        // A sender that checked the client just before a teardown reaches the transport after it: the write lock must
        // not be left taken by the disposal.
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        var client = await sshd.ConnectAsync(key);
        var transport = client.Transport;
        await client.DisposeAsync();
        var e = await Assert.ThrowsAsync<SshException>(() =>
            transport.SendAsync(new[] { SshMsg.Ignore }, default, null, fromReader: false, CancellationToken.None).AsTask().WaitAsync(Quick));
        Assert.Equal(SshErrorIds.ConnectionClosed, e.ErrorId);
    }

    private static async Task<byte> ReadByteAsync(Stream s)
    {
        var b = new byte[1];
        await s.ReadExactlyAsync(b).AsTask().WaitAsync(Quick);
        return b[0];
    }

    private static async Task<(SshClient Client, BreakableStream Stream)> ConnectBreakableAsync(SshdProcess sshd, SshKeyPair key)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(IPAddress.Loopback, sshd.Port);
        var stream = new BreakableStream(tcp.GetStream());
        var client = await SshClient.ConnectAsync(stream, new SshClientOptions { Identity = key, ExpectedHostKeys = sshd.HostKeys }, CancellationToken.None);
        return (client, stream);
    }

    /// <summary>A stream that, once broken, fails as a port-forward does: with a typed KtException, not an IOException.</summary>
    private sealed class BreakableStream(NetworkStream inner) : Stream
    {
        private readonly TaskCompletionSource _readsBroken = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile bool _writesBroken;
        private Exception? _readError;

        public void BreakWrites() => _writesBroken = true;

        /// <summary>Pending and later reads throw <paramref name="error"/> (default: a port-forward's typed error).</summary>
        public void BreakReads(Exception? error = null)
        {
            _readError = error;
            _readsBroken.TrySetResult();
        }

        /// <summary>Runs after each read that returned bytes, before the reader sees them.</summary>
        public Action? AfterRead { get; init; }

        /// <summary>Disposal closes the inner stream, then throws this (a port-forward whose close handshake failed).</summary>
        public Exception? DisposeError { get; set; }

        private static KtConnect.Engine.Kube.KubeConnectionException Broken() => new("The port-forward WebSocket broke (test).");

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = inner.ReadAsync(buffer, cancellationToken).AsTask();
            if (await Task.WhenAny(read, _readsBroken.Task).ConfigureAwait(false) != read) throw _readError ?? Broken();
            var n = await read.ConfigureAwait(false);
            if (n > 0) AfterRead?.Invoke();
            return n;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            _writesBroken ? ValueTask.FromException(Broken()) : inner.WriteAsync(buffer, cancellationToken);

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
            if (disposing && DisposeError is { } e) throw e;
        }
    }

    [LinuxRootFact("sshd", "ssh-keygen")]
    public async Task A_remote_forward_cancelled_after_its_request_went_out_does_not_leave_sshd_listening()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        await using var sshd = await SshdProcess.StartAsync(key);
        await using var proxy = new TcpProxy(sshd.Port);
        await using var client = await ConnectViaAsync(proxy, sshd, key);
        var port = SshdProcess.FreePort();
        bool Listening() => System.Net.NetworkInformation.IPGlobalProperties.GetIPGlobalProperties().GetActiveTcpListeners()
            .Any(e => e.Port == port && IPAddress.IsLoopback(e.Address));

        // sshd gets the request and listens; its "granted" is held back until the caller has given up.
        proxy.FreezeServer();
        using var cancel = new CancellationTokenSource();
        var request = client.ForwardRemoteAsync("127.0.0.1", port, (_, _) => Task.CompletedTask, cancel.Token);
        await Wait.UntilAsync(Listening, "sshd to listen on the forwarded port", Quick);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        proxy.ThawServer();

        await Wait.UntilAsync(() => !Listening(), "sshd to stop listening once the late grant is answered with a cancel", Quick);
        Assert.True(client.IsConnected);
        // The port is free for a forward that is wanted.
        await using var again = await client.ForwardRemoteAsync("127.0.0.1", port, (_, _) => Task.CompletedTask).WaitAsync(Quick);
        Assert.Equal(port, again.BoundPort);
    }

    private static async Task<SshClient> ConnectViaAsync(TcpProxy proxy, SshdProcess sshd, SshKeyPair key, TimeSpan? keepalive = null)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(IPAddress.Loopback, proxy.Port);
        return await SshClient.ConnectAsync(tcp.GetStream(), new SshClientOptions
        {
            Identity = key,
            ExpectedHostKeys = sshd.HostKeys,
            KeepaliveInterval = keepalive ?? TimeSpan.FromSeconds(15),
            KeepaliveCountMax = 2,
        }, CancellationToken.None);
    }
}
