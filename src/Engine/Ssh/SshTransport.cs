using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;

namespace KtConnect.Engine.Ssh;

/// <summary>Lets the owner of a message veto or record its send atomically with the write (e.g. a channel's CLOSE).</summary>
internal interface ISendGuard
{
    /// <summary>
    /// Called under the transport's write lock right before <paramref name="msg"/> is written. Returns false
    /// to drop the message silently (a second CLOSE); throws to refuse it (data after CLOSE).
    /// </summary>
    bool OnSending(byte msg);
}

/// <summary>
/// The SSH transport layer (RFC 4253): version exchange, binary packets, key exchange and re-exchange
/// (strict KEX included), and the always-valid messages. One reader at a time calls
/// <see cref="ReadPacketAsync"/>; any number of writers call <see cref="SendAsync"/>.
/// While a key exchange is in progress, non-KEX messages from writers wait, and the reader's own
/// replies are queued and flushed right after our NEWKEYS.
/// </summary>
internal sealed class SshTransport : IDisposable
{
    internal const int MaxPacketLength = 256 * 1024;
    private const int ReadBufferSize = 512 * 1024;
    private const int WriteBufferSize = MaxPacketLength + 4 + 64;

    private readonly Stream _stream;
    private readonly SshClientOptions _options;
    private readonly CancellationToken _lifetime;
    private readonly IReadOnlyList<string> _hostKeyAlgorithms;

    // Read side: touched only by the single reader.
    private byte[] _rbuf;
    private int _rpos;
    private int _rend;
    private PacketCipher _rcipher = NoneCipher.Instance;
    private uint _rseq;
    private uint _lastReadSeq;
    private long _rbytes;

    // Write side: guarded by _wlock.
    private readonly SemaphoreSlim _wlock = new(1, 1);
    private byte[] _wbuf;
    private PacketCipher _wcipher = NoneCipher.Instance;
    private uint _wseq;
    private long _wbytes;
    private long _lastKexTicks = Environment.TickCount64;
    private bool _sendKexActive;
    private TaskCompletionSource _kexGate = NewGate(completed: true);
    private readonly List<byte[]> _deferred = [];
    private byte[]? _ourKexInit;

    // Key exchange state: touched only by the reader (and the handshake before the reader starts).
    private enum KexState { Idle, AwaitReply, AwaitNewKeys }
    private volatile KexState _kex = KexState.Idle;
    private byte[]? _theirKexInit;
    private Negotiated? _negotiated;
    private ECDiffieHellman? _ecdh;
    private byte[]? _ourQ;
    private PacketCipher? _pendingRead;
    private bool _skipNextKexPacket;
    private volatile bool _firstKexDone;
    private volatile Exception? _failure;

    public SshTransport(Stream stream, SshClientOptions options, CancellationToken lifetime)
    {
        _stream = stream;
        _options = options;
        _lifetime = lifetime;
        _rbuf = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        _wbuf = ArrayPool<byte>.Shared.Rent(WriteBufferSize);
        _hostKeyAlgorithms = HostKeyAlgorithmsFor(options);
    }

    /// <summary>Runs before each read from the stream, once the bytes already read are handled (the client wakes channel readers).</summary>
    public Action? BeforeRead { get; init; }

    public string ServerVersion { get; private set; } = "";

    public byte[]? SessionId { get; private set; }

    public bool StrictKex { get; private set; }

    /// <summary>The server-sig-algs extension (RFC 8308), or null when the server sent none.</summary>
    public IReadOnlyCollection<string>? ServerSigAlgs { get; private set; }

    /// <summary>Names of the algorithms of the last completed key exchange (kex, hostkey, c2s cipher, c2s mac).</summary>
    public string? NegotiatedSummary { get; private set; }

    /// <summary>How many key exchanges have completed (the first one included).</summary>
    public int KeyExchangeCount { get; private set; }

    /// <summary>Environment.TickCount64 of the last packet received.</summary>
    public long LastReceiveTicks { get; private set; } = Environment.TickCount64;

    public int MaxPayload => MaxPacketLength - 1 - 255 - 16;

    /// <summary>Failed transports fail every later send and the key-exchange gate with this error.</summary>
    public void Fail(Exception error)
    {
        _failure ??= error;
        _kexGate.TrySetException(_failure);
    }

    private static TaskCompletionSource NewGate(bool completed)
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed) t.SetResult();
        return t;
    }

    /// <summary>Host-key algorithms we offer: the allowed ones that fit an expected key, so negotiation picks a pinned key.</summary>
    private static IReadOnlyList<string> HostKeyAlgorithmsFor(SshClientOptions o)
    {
        var types = o.ExpectedHostKeys.Select(k => k.KeyType).ToHashSet(StringComparer.Ordinal);
        var list = o.Algorithms.HostKey.Where(a => types.Contains(SshAlgorithms.HostKeyBlobType(a))).ToList();
        if (list.Count == 0)
            throw new ArgumentException("None of the allowed host-key algorithms can verify the expected host keys (ssh-rsa SHA-1 keys need rsa-sha2-256/512 or an explicit 'ssh-rsa').", nameof(o));
        return list;
    }

    // ---------------------------------------------------------------- version exchange

    /// <summary>Sends our identification and reads the server's, skipping pre-banner lines (RFC 4253 §4.2).</summary>
    public async Task ExchangeVersionsAsync(CancellationToken ct)
    {
        var ours = Encoding.ASCII.GetBytes(_options.ClientVersion + "\r\n");
        await _stream.WriteAsync(ours, ct).ConfigureAwait(false);
        await _stream.FlushAsync(ct).ConfigureAwait(false);
        for (var lines = 0; lines < 1024; lines++)
        {
            var line = await ReadLineAsync(ct).ConfigureAwait(false);
            if (!line.StartsWith("SSH-", StringComparison.Ordinal)) continue;
            if (!line.StartsWith("SSH-2.0-", StringComparison.Ordinal) && !line.StartsWith("SSH-1.99-", StringComparison.Ordinal))
                throw SshException.Protocol(SshErrorIds.VersionExchangeFailed, $"The server speaks an unsupported SSH version: '{line}'.");
            ServerVersion = line;
            return;
        }
        throw SshException.Protocol(SshErrorIds.VersionExchangeFailed, "The server sent no SSH identification line.");
    }

    private async ValueTask<string> ReadLineAsync(CancellationToken ct)
    {
        const int maxLine = 1024;
        var start = _rpos;
        while (true)
        {
            for (var i = start; i < _rend; i++)
            {
                if (_rbuf[i] != (byte)'\n') continue;
                var end = i > _rpos && _rbuf[i - 1] == '\r' ? i - 1 : i;
                var s = _rbuf.AsSpan(_rpos, end - _rpos);
                foreach (var c in s)
                {
                    if (c is 0) throw SshException.Protocol(SshErrorIds.VersionExchangeFailed, "The server's identification holds a NUL byte.");
                }
                var line = Encoding.ASCII.GetString(s);
                _rpos = i + 1;
                return line;
            }
            start = _rend;
            if (_rend - _rpos > maxLine) throw SshException.Protocol(SshErrorIds.VersionExchangeFailed, "The server's identification line is too long.");
            await FillAsync(_rend - _rpos + 1, ct).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- packet reading

    /// <summary>Makes at least <paramref name="need"/> unread bytes available at <c>_rpos</c>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FillAsync(int need, CancellationToken ct)
    {
        while (_rend - _rpos < need)
        {
            if (_rbuf.Length - _rpos < need)
            {
                var live = _rend - _rpos;
                Buffer.BlockCopy(_rbuf, _rpos, _rbuf, 0, live);
                _rpos = 0;
                _rend = live;
            }
            BeforeRead?.Invoke();
            int n;
            try
            {
                n = await _stream.ReadAsync(_rbuf.AsMemory(_rend), ct).ConfigureAwait(false);
            }
            // The stream under SSH may report its own typed failure (a broken port-forward is a KubeConnectionException).
            catch (Exception e) when (e is IOException or ObjectDisposedException or KtException && !ct.IsCancellationRequested)
            {
                throw _failure ?? new SshException(SshErrorIds.ConnectionLost, KtErrorCategory.ConnectionError, "The SSH connection was lost: " + e.Message, e);
            }
            if (n == 0)
                throw _failure ?? new SshException(SshErrorIds.ConnectionLost, KtErrorCategory.ConnectionError, "The SSH server closed the connection.");
            _rend += n;
        }
    }

    /// <summary>Reads one packet and returns its payload; the memory is valid until the next read.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadOnlyMemory<byte>> ReadRawAsync(CancellationToken ct)
    {
        var cipher = _rcipher;
        var first = cipher.FirstBlockSize;
        await FillAsync(first, ct).ConfigureAwait(false);
        var len = cipher.DecryptLength(_rseq, _rbuf.AsSpan(_rpos, first));
        if (len > MaxPacketLength)
            throw SshException.Protocol(SshErrorIds.PacketTooLarge, $"The server sent a packet of {len} bytes; the limit is {MaxPacketLength}.");
        var aligned = cipher.LengthInClear ? len % (uint)cipher.BlockSize == 0 : (len + 4) % (uint)cipher.BlockSize == 0;
        if (len < 5 || !aligned || len + 4 < first) throw SshException.Malformed("packet length is not a valid multiple of the block size");
        var total = 4 + (int)len + cipher.MacSize;
        await FillAsync(total, ct).ConfigureAwait(false);
        var packet = _rbuf.AsSpan(_rpos, 4 + (int)len);
        if (!cipher.DecryptRest(_rseq, packet, _rbuf.AsSpan(_rpos + 4 + (int)len, cipher.MacSize)))
            throw SshException.Protocol(SshErrorIds.MacMismatch, "An SSH packet failed its integrity check (bad MAC or tag).");
        int pad = packet[4];
        if (pad < 4 || pad >= len) throw SshException.Malformed("bad padding length");
        var payloadLen = (int)len - 1 - pad;
        if (payloadLen < 1) throw SshException.Malformed("empty payload");
        var payload = _rbuf.AsMemory(_rpos + 5, payloadLen);
        _rpos += total;
        _lastReadSeq = _rseq;
        _rseq++;
        _rbytes += total;
        LastReceiveTicks = Environment.TickCount64;
        return payload;
    }

    /// <summary>
    /// Returns the next connection- or auth-layer message. Transport messages (KEX, IGNORE, DEBUG,
    /// EXT_INFO, DISCONNECT ...) are handled here, including server-initiated re-exchange.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ReadOnlyMemory<byte>> ReadPacketAsync(CancellationToken ct)
    {
        while (true)
        {
            var payload = await ReadRawAsync(ct).ConfigureAwait(false);
            if (await HandleTransportAsync(payload, ct).ConfigureAwait(false)) continue;
            if (_firstKexDone && _kex == KexState.Idle && _rbytes > _options.RekeyBytesLimit)
                await StartRekeyAsync(ct).ConfigureAwait(false);
            return payload;
        }
    }

    /// <summary>Sends our KEXINIT and runs packets until the first key exchange completes.</summary>
    public async Task RunInitialKeyExchangeAsync(CancellationToken ct)
    {
        await StartRekeyAsync(ct).ConfigureAwait(false);
        while (!_firstKexDone)
        {
            var payload = await ReadRawAsync(ct).ConfigureAwait(false);
            if (!await HandleTransportAsync(payload, ct).ConfigureAwait(false))
                throw SshException.Protocol(SshErrorIds.UnexpectedMessage, $"The server sent message {payload.Span[0]} before the key exchange finished.");
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> HandleTransportAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var msg = payload.Span[0];
        var strictInitial = !_firstKexDone && StrictKex;
        if (_skipNextKexPacket && msg is >= 30 and <= 49)
        {
            // The server guessed a kex algorithm wrongly and sent its first packet anyway (RFC 4253 §7).
            _skipNextKexPacket = false;
            return true;
        }
        switch (msg)
        {
            case SshMsg.Disconnect:
                throw SshMessages.ParseDisconnect(payload.Span);
            case SshMsg.Ignore or SshMsg.Debug or SshMsg.Unimplemented:
                if (strictInitial) throw StrictViolation(msg);
                return true;
            case SshMsg.KexInit:
                await OnKexInitAsync(payload, ct).ConfigureAwait(false);
                return true;
            case SshMsg.KexEcdhReply:
                await OnEcdhReplyAsync(payload, ct).ConfigureAwait(false);
                return true;
            case SshMsg.NewKeys:
                OnNewKeys();
                return true;
            case SshMsg.ExtInfo:
                ServerSigAlgs = SshMessages.ParseExtInfo(payload.Span) ?? ServerSigAlgs;
                return true;
            default:
                if (!_firstKexDone)
                    throw SshException.Protocol(_negotiated is not null && StrictKex ? SshErrorIds.StrictKexViolation : SshErrorIds.UnexpectedMessage,
                        $"The server sent message {msg} during the initial key exchange.");
                // Connection messages between the server's KEXINIT and NEWKEYS break RFC 4253 §7.1; OpenSSH
                // never sends them and Go tolerates them, so they pass through here too.
                if (msg is >= 8 and <= 49 and not SshMsg.ServiceAccept)
                {
                    await SendUnimplementedAsync(ct).ConfigureAwait(false);
                    return true;
                }
                return false;
        }
    }

    private ValueTask SendUnimplementedAsync(CancellationToken ct)
    {
        var b = new byte[5];
        b[0] = SshMsg.Unimplemented;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(1), _lastReadSeq);
        return SendAsync(b, default, null, fromReader: true, ct);
    }

    private SshException StrictViolation(byte msg) =>
        SshException.Protocol(SshErrorIds.StrictKexViolation, $"Strict key exchange violated: the server sent message {msg} during the initial key exchange.");

    // ---------------------------------------------------------------- key exchange

    private sealed record Negotiated(string Kex, string HostKey, string CipherC2S, string CipherS2C, string? MacC2S, string? MacS2C);

    private byte[] BuildKexInit()
    {
        using var w = new SshWriter(512);
        Span<byte> cookie = stackalloc byte[16];
        RandomNumberGenerator.Fill(cookie);
        w.Byte(SshMsg.KexInit).Raw(cookie);
        var kex = _options.Algorithms.KeyExchange.ToList();
        if (SessionId is null)
        {
            // Pseudo-algorithms only in the first KEXINIT (Go and OpenSSH ignore them later).
            kex.Add(SshAlgorithms.ExtInfoC);
            kex.Add(SshAlgorithms.StrictKexC);
        }
        w.NameList(kex).NameList(_hostKeyAlgorithms)
            .NameList(_options.Algorithms.Ciphers).NameList(_options.Algorithms.Ciphers)
            .NameList(_options.Algorithms.Macs).NameList(_options.Algorithms.Macs)
            .String("none").String("none").String("").String("")
            .Boolean(false).UInt32(0);
        return w.ToArray();
    }

    /// <summary>Sends our KEXINIT unless one is already outstanding. Safe from any thread.</summary>
    public async ValueTask StartRekeyAsync(CancellationToken ct)
    {
        await _wlock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfFailed();
            if (_sendKexActive) return;
            if (_firstKexDone && _kex != KexState.Idle) return;
            await StartKexLockedAsync().ConfigureAwait(false);
        }
        finally
        {
            _wlock.Release();
        }
    }

    private async ValueTask StartKexLockedAsync()
    {
        _ourKexInit = BuildKexInit();
        _sendKexActive = true;
        _kexGate = NewGate(completed: false);
        await WriteLockedAsync(_ourKexInit, default).ConfigureAwait(false);
    }

    /// <summary>Re-exchanges keys when the time limit has passed; called by the client's timer.</summary>
    public ValueTask RekeyIfDueAsync(CancellationToken ct) =>
        _firstKexDone && _kex == KexState.Idle && Environment.TickCount64 - _lastKexTicks > (long)_options.RekeyTimeLimit.TotalMilliseconds
            ? StartRekeyAsync(ct)
            : ValueTask.CompletedTask;

    private async ValueTask OnKexInitAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        if (_kex != KexState.Idle) throw SshException.Protocol(SshErrorIds.ProtocolViolation, "The server sent KEXINIT during a key exchange.");
        var ki = SshMessages.ParseKexInit(payload.Span);
        _theirKexInit = payload.ToArray();
        var kex = ki.Kex;
        var hostKey = ki.HostKey;
        var guessFollows = ki.FirstKexFollows;

        if (!_firstKexDone && Array.IndexOf(kex, SshAlgorithms.StrictKexS) >= 0)
        {
            StrictKex = true;
            if (_lastReadSeq != 0) throw SshException.Protocol(SshErrorIds.StrictKexViolation, "Strict key exchange violated: KEXINIT was not the server's first packet.");
        }

        // Answer with our KEXINIT unless we started this exchange.
        await _wlock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfFailed();
            if (!_sendKexActive) await StartKexLockedAsync().ConfigureAwait(false);
        }
        finally
        {
            _wlock.Release();
        }

        var n = Negotiate(ki);
        _negotiated = n;
        if (guessFollows && (kex.Length == 0 || kex[0] != n.Kex || hostKey.Length == 0 || hostKey[0] != n.HostKey))
            _skipNextKexPacket = true;

        _ecdh?.Dispose();
        _ecdh = ECDiffieHellman.Create(SshAlgorithms.KexCurve(n.Kex));
        var q = _ecdh.ExportParameters(false).Q;
        _ourQ = new byte[1 + q.X!.Length + q.Y!.Length];
        _ourQ[0] = 4;
        q.X.CopyTo(_ourQ, 1);
        q.Y.CopyTo(_ourQ, 1 + q.X.Length);
        using var w = new SshWriter();
        w.Byte(SshMsg.KexEcdhInit).String(_ourQ);
        _kex = KexState.AwaitReply;
        await SendAsync(w.ToArray(), default, null, fromReader: true, ct).ConfigureAwait(false);
    }

    private Negotiated Negotiate(SshMessages.KexInit ki)
    {
        var (kex, hostKey, encC2S, encS2C, macC2S, macS2C, compC2S, compS2C) = (ki.Kex, ki.HostKey, ki.EncC2S, ki.EncS2C, ki.MacC2S, ki.MacS2C, ki.CompC2S, ki.CompS2C);
        var o = _options.Algorithms;
        var k = SshAlgorithms.FirstCommon(o.KeyExchange, kex) ?? throw NoCommon("key exchange", o.KeyExchange, kex);
        var h = SshAlgorithms.FirstCommon(_hostKeyAlgorithms, hostKey) ?? throw NoCommon("host key", _hostKeyAlgorithms, hostKey);
        var c1 = SshAlgorithms.FirstCommon(o.Ciphers, encC2S) ?? throw NoCommon("cipher", o.Ciphers, encC2S);
        var c2 = SshAlgorithms.FirstCommon(o.Ciphers, encS2C) ?? throw NoCommon("cipher", o.Ciphers, encS2C);
        string? m1 = null, m2 = null;
        if (!SshAlgorithms.IsAead(c1)) m1 = SshAlgorithms.FirstCommon(o.Macs, macC2S) ?? throw NoCommon("MAC", o.Macs, macC2S);
        if (!SshAlgorithms.IsAead(c2)) m2 = SshAlgorithms.FirstCommon(o.Macs, macS2C) ?? throw NoCommon("MAC", o.Macs, macS2C);
        if (Array.IndexOf(compC2S, "none") < 0 || Array.IndexOf(compS2C, "none") < 0)
            throw NoCommon("compression", ["none"], compC2S);
        return new Negotiated(k, h, c1, c2, m1, m2);
    }

    private static SshException NoCommon(string what, IEnumerable<string> ours, IEnumerable<string> theirs) =>
        SshException.Protocol(SshErrorIds.NoCommonAlgorithm,
            $"No common SSH {what} algorithm: we offer {string.Join(",", ours)}; the server offers {string.Join(",", theirs)}.");

    private async ValueTask OnEcdhReplyAsync(ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        if (_kex != KexState.AwaitReply || _negotiated is null || _ecdh is null || _ourQ is null || _ourKexInit is null || _theirKexInit is null)
            throw SshException.Protocol(SshErrorIds.ProtocolViolation, "The server sent KEX_ECDH_REPLY out of order.");
        var n = _negotiated;
        var reply = SshMessages.ParseEcdhReply(payload.Span);
        var hostKeyBlob = reply.HostKey;
        var theirQ = reply.Q.AsSpan();
        var signature = reply.Signature;

        var hostKey = VerifyHostKeyIdentity(hostKeyBlob);

        byte[] secret;
        try
        {
            var size = n.Kex switch { SshAlgorithms.EcdhNistp384 => 48, SshAlgorithms.EcdhNistp521 => 66, _ => 32 };
            if (theirQ.Length != 1 + 2 * size || theirQ[0] != 4) throw SshException.Malformed("server ECDH point is not an uncompressed point");
            using var peer = ECDiffieHellman.Create(new ECParameters
            {
                Curve = SshAlgorithms.KexCurve(n.Kex),
                Q = new ECPoint { X = theirQ.Slice(1, size).ToArray(), Y = theirQ.Slice(1 + size, size).ToArray() },
            });
            secret = _ecdh.DeriveRawSecretAgreement(peer.PublicKey);
        }
        catch (CryptographicException e)
        {
            throw new SshException(SshErrorIds.KeyExchangeFailed, KtErrorCategory.ProtocolError, "The server's ECDH public value is not a valid curve point.", e);
        }

        var hashName = SshAlgorithms.KexHash(n.Kex);
        byte[] h;
        using (var w = new SshWriter(2048))
        {
            w.String(_options.ClientVersion).String(ServerVersion).String(_ourKexInit).String(_theirKexInit)
                .String(hostKeyBlob).String(_ourQ).String(theirQ).MpintUnsigned(secret);
            h = HashData(hashName, w.Span);
        }
        if (!hostKey.Verify(n.HostKey, h, signature))
            throw new SshException(SshErrorIds.HostKeySignatureInvalid, KtErrorCategory.SecurityError,
                $"The server's key-exchange signature does not verify with its host key {hostKey.Fingerprint}.");

        SessionId ??= h;
        using var kw = new SshWriter(128);
        kw.MpintUnsigned(secret);
        var k = kw.ToArray();
        CryptographicOperations.ZeroMemory(secret);

        var write = SshAlgorithms.CreateCipher(n.CipherC2S, n.MacC2S,
            Derive(hashName, k, h, 'C', SshAlgorithms.KeySize(n.CipherC2S)),
            Derive(hashName, k, h, 'A', SshAlgorithms.IvSize(n.CipherC2S)),
            n.MacC2S is null ? [] : Derive(hashName, k, h, 'E', SshAlgorithms.MacKeySize(n.MacC2S)));
        _pendingRead?.Dispose();
        _pendingRead = SshAlgorithms.CreateCipher(n.CipherS2C, n.MacS2C,
            Derive(hashName, k, h, 'D', SshAlgorithms.KeySize(n.CipherS2C)),
            Derive(hashName, k, h, 'B', SshAlgorithms.IvSize(n.CipherS2C)),
            n.MacS2C is null ? [] : Derive(hashName, k, h, 'F', SshAlgorithms.MacKeySize(n.MacS2C)));
        CryptographicOperations.ZeroMemory(k);
        _ecdh.Dispose();
        _ecdh = null;
        _kex = KexState.AwaitNewKeys;
        NegotiatedSummary = $"{n.Kex} {n.HostKey} {n.CipherC2S} {n.MacC2S ?? "(aead)"}";

        // NEWKEYS goes out with the old keys; everything after it with the new ones.
        await _wlock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfFailed();
            await WriteLockedAsync(new byte[] { SshMsg.NewKeys }, default).ConfigureAwait(false);
            var old = _wcipher;
            _wcipher = write;
            if (old != NoneCipher.Instance) old.Dispose();
            if (StrictKex) _wseq = 0;
            _wbytes = 0;
            _lastKexTicks = Environment.TickCount64;
            _sendKexActive = false;
            foreach (var d in _deferred)
            {
                var len = BinaryPrimitives.ReadInt32LittleEndian(d);
                await WriteLockedAsync(d.AsMemory(4, len), default).ConfigureAwait(false);
                ArrayPool<byte>.Shared.Return(d);
            }
            _deferred.Clear();
            _kexGate.TrySetResult();
        }
        finally
        {
            _wlock.Release();
        }
    }

    private SshPublicKey VerifyHostKeyIdentity(ReadOnlySpan<byte> blob)
    {
        foreach (var k in _options.ExpectedHostKeys)
        {
            if (k.Blob.Span.SequenceEqual(blob)) return k;
        }
        throw new SshHostKeyMismatchException(SshPublicKey.FingerprintOf(blob), _options.ExpectedHostKeys.Select(k => k.Fingerprint).ToList());
    }

    private static byte[] HashData(HashAlgorithmName name, ReadOnlySpan<byte> data) =>
        name == HashAlgorithmName.SHA512 ? SHA512.HashData(data)
        : name == HashAlgorithmName.SHA384 ? SHA384.HashData(data)
        : SHA256.HashData(data);

    /// <summary>RFC 4253 §7.2: K1 = HASH(K || H || letter || session_id), Kn+1 = HASH(K || H || K1..Kn).</summary>
    private byte[] Derive(HashAlgorithmName name, byte[] k, byte[] h, char letter, int size)
    {
        using var hash = IncrementalHash.CreateHash(name);
        hash.AppendData(k);
        hash.AppendData(h);
        hash.AppendData([(byte)letter]);
        hash.AppendData(SessionId!);
        var output = new List<byte>(hash.GetHashAndReset());
        while (output.Count < size)
        {
            hash.AppendData(k);
            hash.AppendData(h);
            hash.AppendData(output.ToArray());
            output.AddRange(hash.GetHashAndReset());
        }
        return output.Take(size).ToArray();
    }

    private void OnNewKeys()
    {
        if (_kex != KexState.AwaitNewKeys || _pendingRead is null)
            throw SshException.Protocol(SshErrorIds.ProtocolViolation, "The server sent NEWKEYS out of order.");
        var old = _rcipher;
        _rcipher = _pendingRead;
        _pendingRead = null;
        if (old != NoneCipher.Instance) old.Dispose();
        if (StrictKex) _rseq = 0;
        _rbytes = 0;
        _theirKexInit = null;
        _kex = KexState.Idle;
        KeyExchangeCount++;
        _firstKexDone = true;
    }

    // ---------------------------------------------------------------- packet writing

    private void ThrowIfFailed()
    {
        if (_failure is not null) throw _failure;
    }

    /// <summary>
    /// Sends the message <paramref name="head"/> ‖ <paramref name="body"/>. Outside a key exchange it is
    /// written now; during one, writers wait for our NEWKEYS and the reader (<paramref name="fromReader"/>)
    /// queues instead of waiting, since only it can finish the exchange.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync(ReadOnlyMemory<byte> head, ReadOnlyMemory<byte> body, ISendGuard? guard, bool fromReader, CancellationToken ct)
    {
        var msg = head.Span[0];
        var kexMsg = SshMsg.IsKex(msg);
        while (true)
        {
            Task gate;
            await _wlock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                ThrowIfFailed();
                if (!_sendKexActive || kexMsg || fromReader)
                {
                    if (guard is not null && !guard.OnSending(msg)) return;
                    if (_sendKexActive && !kexMsg)
                    {
                        var len = head.Length + body.Length;
                        var copy = ArrayPool<byte>.Shared.Rent(len + 4);
                        BinaryPrimitives.WriteInt32LittleEndian(copy, len);
                        head.Span.CopyTo(copy.AsSpan(4));
                        body.Span.CopyTo(copy.AsSpan(4 + head.Length));
                        _deferred.Add(copy);
                        return;
                    }
                    await WriteLockedAsync(head, body).ConfigureAwait(false);
                    if (_firstKexDone && !_sendKexActive && _kex == KexState.Idle && _wbytes > _options.RekeyBytesLimit)
                        await StartKexLockedAsync().ConfigureAwait(false);
                    return;
                }
                gate = _kexGate.Task;
            }
            finally
            {
                _wlock.Release();
            }
            await gate.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Frames, encrypts and writes one packet; caller holds <c>_wlock</c>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteLockedAsync(ReadOnlyMemory<byte> head, ReadOnlyMemory<byte> body)
    {
        var n = Frame(head.Span, body.Span);
        try
        {
            await _stream.WriteAsync(_wbuf.AsMemory(0, n), _lifetime).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or KtException)
        {
            var f = _failure ?? new SshException(SshErrorIds.ConnectionLost, KtErrorCategory.ConnectionError, "The SSH connection was lost while sending: " + e.Message, e);
            Fail(f);
            throw f;
        }
    }

    private int Frame(ReadOnlySpan<byte> head, ReadOnlySpan<byte> body)
    {
        var cipher = _wcipher;
        var payloadLen = head.Length + body.Length;
        if (payloadLen > MaxPayload) throw new ArgumentException("SSH payload too large.", nameof(body));
        var bs = cipher.BlockSize;
        var counted = cipher.LengthInClear ? 0 : 4;
        var pad = bs - (counted + 1 + payloadLen) % bs;
        if (pad < 4) pad += bs;
        if (4 + 1 + payloadLen + pad < 16) pad += bs;
        var packetLen = 1 + payloadLen + pad;
        var buf = _wbuf.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(buf, (uint)packetLen);
        buf[4] = (byte)pad;
        head.CopyTo(buf[5..]);
        body.CopyTo(buf[(5 + head.Length)..]);
        RandomNumberGenerator.Fill(buf.Slice(5 + payloadLen, pad));
        cipher.Encrypt(_wseq, buf[..(4 + packetLen)], buf.Slice(4 + packetLen, cipher.MacSize));
        _wseq++;
        var total = 4 + packetLen + cipher.MacSize;
        _wbytes += total;
        return total;
    }

    public void Dispose()
    {
        // Called once the reader and writers have stopped; the buffers go back to the pool. A sender that comes later
        // (it checked the client before the teardown) takes the lock and meets this failure, rather than waiting for
        // a lock that is never released.
        Fail(SshException.Closed());
        _ecdh?.Dispose();
        _pendingRead?.Dispose();
        if (_rcipher != NoneCipher.Instance) _rcipher.Dispose();
        if (_wlock.Wait(0))
        {
            try
            {
                if (_wcipher != NoneCipher.Instance) _wcipher.Dispose();
                _wcipher = NoneCipher.Instance;
                foreach (var d in _deferred) ArrayPool<byte>.Shared.Return(d);
                _deferred.Clear();
                if (_wbuf.Length > 0) ArrayPool<byte>.Shared.Return(_wbuf);
                _wbuf = [];
            }
            finally
            {
                _wlock.Release();
            }
        }
        _rcipher = NoneCipher.Instance;
        if (_rbuf.Length > 0) ArrayPool<byte>.Shared.Return(_rbuf);
        _rbuf = [];
    }
}
