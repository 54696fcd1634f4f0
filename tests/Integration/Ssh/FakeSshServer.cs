using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>
/// A hostile or broken SSH server for one connection: it speaks just enough plaintext SSH (version,
/// KEXINIT, ECDH reply) for a script to misbehave at a chosen point.
/// </summary>
internal sealed class FakeSshServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _run;
    private readonly CancellationTokenSource _cts = new();
    private NetworkStream? _stream;
    private readonly TaskCompletionSource _clientClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public FakeSshServer(Func<FakeSshServer, CancellationToken, Task> script)
    {
        _listener.Start();
        _run = RunAsync(script);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public SshKeyPair HostKey { get; } = SshKeyPair.GenerateEcdsa();

    /// <summary>Completes when the client has closed its socket (the test's proof that resources were freed).</summary>
    public Task ClientClosed => _clientClosed.Task;

    public string ClientVersion { get; private set; } = "";

    private async Task RunAsync(Func<FakeSshServer, CancellationToken, Task> script)
    {
        using var c = await _listener.AcceptTcpClientAsync(_cts.Token);
        _stream = c.GetStream();
        try
        {
            await script(this, _cts.Token);
            // Then wait for the client to hang up.
            var buf = new byte[4096];
            while (await _stream.ReadAsync(buf, _cts.Token) > 0)
            {
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or EndOfStreamException)
        {
        }
        _clientClosed.TrySetResult();
    }

    public async Task SendRawAsync(byte[] data, CancellationToken ct) => await _stream!.WriteAsync(data, ct);

    public Task SendLineAsync(string line, CancellationToken ct) => SendRawAsync(Encoding.ASCII.GetBytes(line + "\r\n"), ct);

    public async Task<string> ReadLineAsync(CancellationToken ct)
    {
        var sb = new StringBuilder();
        var b = new byte[1];
        while (true)
        {
            await _stream!.ReadExactlyAsync(b, ct);
            if (b[0] == '\n') break;
            if (b[0] != '\r') sb.Append((char)b[0]);
        }
        return sb.ToString();
    }

    /// <summary>Frames a payload with the "none" cipher (block 8, padding at least 4).</summary>
    public Task SendPacketAsync(byte[] payload, CancellationToken ct) => SendRawAsync(Frame(payload), ct);

    public static byte[] Frame(byte[] payload)
    {
        var pad = 8 - (5 + payload.Length) % 8;
        if (pad < 4) pad += 8;
        var p = new byte[5 + payload.Length + pad];
        BinaryPrimitives.WriteUInt32BigEndian(p, (uint)(1 + payload.Length + pad));
        p[4] = (byte)pad;
        payload.CopyTo(p, 5);
        return p;
    }

    public async Task<byte[]> ReadPacketAsync(CancellationToken ct)
    {
        var head = new byte[5];
        await _stream!.ReadExactlyAsync(head, ct);
        var len = BinaryPrimitives.ReadUInt32BigEndian(head);
        var rest = new byte[len - 1];
        await _stream.ReadExactlyAsync(rest, ct);
        return rest.AsSpan(0, rest.Length - head[4]).ToArray();
    }

    public static byte[] KexInit(bool strict)
    {
        using var w = new SshWriter();
        w.Byte(20).Raw(new byte[16])
            .String(strict ? "ecdh-sha2-nistp256,kex-strict-s-v00@openssh.com" : "ecdh-sha2-nistp256")
            .String("ecdsa-sha2-nistp256").String("aes128-ctr").String("aes128-ctr").String("hmac-sha2-256").String("hmac-sha2-256")
            .String("none").String("none").String("").String("").Boolean(false).UInt32(0);
        return w.ToArray();
    }

    /// <summary>Version exchange and both KEXINITs; returns (serverKexInit, clientKexInit).</summary>
    public async Task<(byte[] Server, byte[] Client)> HandshakeToKexAsync(CancellationToken ct)
    {
        await SendLineAsync("SSH-2.0-FakeServer", ct);
        ClientVersion = await ReadLineAsync(ct);
        var ours = KexInit(strict: true);
        await SendPacketAsync(ours, ct);
        var theirs = await ReadPacketAsync(ct);
        return (ours, theirs);
    }

    /// <summary>Answers the client's ECDH_INIT with a reply whose signature is valid or deliberately wrong.</summary>
    public async Task SendEcdhReplyAsync(byte[] serverKexInit, byte[] clientKexInit, bool corruptSignature, CancellationToken ct)
    {
        var init = await ReadPacketAsync(ct);
        var qc = init.AsSpan(5).ToArray();
        using var ecdh = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var p = ecdh.ExportParameters(false).Q;
        var qs = new byte[65];
        qs[0] = 4;
        p.X!.CopyTo(qs, 1);
        p.Y!.CopyTo(qs, 33);
        using var peer = ECDiffieHellman.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = qc.AsSpan(1, 32).ToArray(), Y = qc.AsSpan(33, 32).ToArray() },
        });
        var k = ecdh.DeriveRawSecretAgreement(peer.PublicKey);
        var hostBlob = HostKey.PublicKey.Blob.ToArray();
        using var hw = new SshWriter();
        hw.String(ClientVersion).String("SSH-2.0-FakeServer").String(clientKexInit).String(serverKexInit)
            .String(hostBlob).String(qc).String(qs).MpintUnsigned(k);
        var h = SHA256.HashData(hw.Span);
        if (corruptSignature) h[0] ^= 1;
        var sig = HostKey.Sign(SshAlgorithms.EcdsaNistp256, h);
        using var w = new SshWriter();
        w.Byte(31).String(hostBlob).String(qs).String(sig);
        await SendPacketAsync(w.ToArray(), ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        try
        {
            await _run;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException)
        {
        }
        _cts.Dispose();
        HostKey.Dispose();
    }
}
