using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Threading.Channels;

namespace KtConnect.KubeSim.Streaming;

/// <summary>One stream of a <see cref="SpdySession"/>: the client's headers, what it sends, and writes back to it.</summary>
internal sealed class SpdyStream(SpdySession session, uint id, IReadOnlyDictionary<string, string> headers)
{
    private readonly Channel<byte[]> _inbound = Channel.CreateUnbounded<byte[]>();

    public uint Id { get; } = id;

    public IReadOnlyDictionary<string, string> Headers { get; } = headers;

    public string Header(string name) => Headers.TryGetValue(name, out var v) ? v : "";

    /// <summary>The client's data, one chunk per DATA frame; completed by its FIN (or a reset).</summary>
    public ChannelReader<byte[]> Inbound => _inbound.Reader;

    internal void Received(byte[] data) => _inbound.Writer.TryWrite(data);

    internal void ReceivedFin() => _inbound.Writer.TryComplete();

    public Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct) => session.SendDataAsync(Id, data, fin: false, ct);

    /// <summary>Half-closes our side (DATA with FLAG_FIN).</summary>
    public Task CloseAsync(CancellationToken ct) => session.SendDataAsync(Id, ReadOnlyMemory<byte>.Empty, fin: true, ct);
}

/// <summary>
/// The server side of SPDY/3.1 as the kubelet speaks it to client-go's spdystream (kubectl exec/port-forward up to
/// 1.29, and the fallback of newer ones): SYN_STREAM answered by an empty SYN_REPLY, DATA with FIN half-closes,
/// PING echoed, SETTINGS/WINDOW_UPDATE/GOAWAY read and ignored (spdystream does no flow control). Header blocks are
/// zlib with the SPDY/3 dictionary: ours are written as stored blocks, the client's inflated by replaying its whole
/// deflate stream after a stored block holding the dictionary (.NET's inflater takes no preset dictionary).
/// </summary>
internal sealed class SpdySession : IAsyncDisposable
{
    private const ushort Version = 3;
    private const ushort SynStream = 1;
    private const ushort SynReply = 2;
    private const ushort RstStream = 3;
    private const ushort Ping = 6;
    private const ushort GoAway = 7;
    private const byte FlagFin = 1;

    private readonly Stream _transport;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Dictionary<uint, SpdyStream> _streams = [];
    private readonly Channel<SpdyStream> _accepted = Channel.CreateUnbounded<SpdyStream>();
    private readonly MemoryStream _compressedIn = new();
    private int _inflatedSoFar;
    private bool _outHeaderWritten;

    public SpdySession(Stream transport) => _transport = transport;

    /// <summary>Streams the client opened, in order.</summary>
    public ChannelReader<SpdyStream> Accepted => _accepted.Reader;

    /// <summary>Reads frames until the client closes the connection or <paramref name="ct"/> fires.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var header = new byte[8];
        try
        {
            while (true)
            {
                if (!await ReadExactlyOrEndAsync(header, ct).ConfigureAwait(false)) return;
                var length = (int)(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) & 0xffffff);
                var flags = header[4];
                var payload = new byte[length];
                if (!await ReadExactlyOrEndAsync(payload, ct).ConfigureAwait(false)) return;
                if ((header[0] & 0x80) == 0)
                {
                    var id = BinaryPrimitives.ReadUInt32BigEndian(header) & 0x7fffffff;
                    SpdyStream? s;
                    lock (_streams) _streams.TryGetValue(id, out s);
                    if (s is null) continue;
                    if (payload.Length > 0) s.Received(payload);
                    if ((flags & FlagFin) != 0) s.ReceivedFin();
                    continue;
                }
                var type = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
                switch (type)
                {
                    case SynStream:
                        {
                            var id = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff;
                            var headers = InflateHeaders(payload.AsSpan(10));
                            var stream = new SpdyStream(this, id, headers);
                            lock (_streams) _streams[id] = stream;
                            await SendSynReplyAsync(id, ct).ConfigureAwait(false);
                            if ((flags & FlagFin) != 0) stream.ReceivedFin();
                            _accepted.Writer.TryWrite(stream);
                            break;
                        }
                    case RstStream:
                        {
                            var id = BinaryPrimitives.ReadUInt32BigEndian(payload) & 0x7fffffff;
                            SpdyStream? s;
                            lock (_streams) _streams.TryGetValue(id, out s);
                            s?.ReceivedFin();
                            break;
                        }
                    case Ping:
                        await WriteFrameAsync(Control(Ping, 0, payload), ct).ConfigureAwait(false);
                        break;
                    case GoAway:
                        return;
                    default:
                        break; // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do.
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidDataException)
        {
            // The connection went away or sent what we cannot read: the session ends.
        }
        finally
        {
            _accepted.Writer.TryComplete();
            lock (_streams)
            {
                foreach (var s in _streams.Values) s.ReceivedFin();
            }
        }
    }

    public async Task SendDataAsync(uint streamId, ReadOnlyMemory<byte> data, bool fin, CancellationToken ct)
    {
        const int MaxFrame = 0xffffff;
        do
        {
            var chunk = data.Length > MaxFrame ? data[..MaxFrame] : data;
            data = data[chunk.Length..];
            var frame = new byte[8 + chunk.Length];
            BinaryPrimitives.WriteUInt32BigEndian(frame, streamId & 0x7fffffff);
            BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), (uint)chunk.Length);
            frame[4] = fin && data.IsEmpty ? FlagFin : (byte)0;
            chunk.CopyTo(frame.AsMemory(8));
            await WriteFrameAsync(frame, ct).ConfigureAwait(false);
        }
        while (!data.IsEmpty);
    }

    /// <summary>GOAWAY (last good stream id, status OK), as the kubelet's server sends before closing.</summary>
    public Task GoAwayAsync(CancellationToken ct)
    {
        uint last;
        lock (_streams) last = _streams.Count == 0 ? 0 : _streams.Keys.Max();
        var payload = new byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(payload, last);
        return WriteFrameAsync(Control(GoAway, 0, payload), ct);
    }

    private async Task SendSynReplyAsync(uint id, CancellationToken ct)
    {
        var block = CompressHeaders([]);
        var payload = new byte[4 + block.Length];
        BinaryPrimitives.WriteUInt32BigEndian(payload, id);
        block.CopyTo(payload, 4);
        await WriteFrameAsync(Control(SynReply, 0, payload), ct).ConfigureAwait(false);
    }

    private static byte[] Control(ushort type, byte flags, byte[] payload)
    {
        var frame = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, 0x8000 | Version);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), type);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), (uint)payload.Length);
        frame[4] = flags;
        payload.CopyTo(frame, 8);
        return frame;
    }

    private async Task WriteFrameAsync(byte[] frame, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await _transport.WriteAsync(frame, ct).ConfigureAwait(false);
            await _transport.FlushAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Our header blocks: one zlib stream for the session (header 78 01, no preset dictionary, which the reader then
    /// does not need) with one non-final stored block and a sync flush per frame.
    /// </summary>
    private byte[] CompressHeaders(IReadOnlyList<(string Name, string Value)> headers)
    {
        using var raw = new MemoryStream();
        Span<byte> n = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(n, (uint)headers.Count);
        raw.Write(n);
        foreach (var (name, value) in headers)
        {
            foreach (var s in new[] { name, value })
            {
                var bytes = Encoding.UTF8.GetBytes(s);
                BinaryPrimitives.WriteUInt32BigEndian(n, (uint)bytes.Length);
                raw.Write(n);
                raw.Write(bytes);
            }
        }
        var data = raw.ToArray();
        using var block = new MemoryStream();
        lock (_writeLock)
        {
            if (!_outHeaderWritten)
            {
                block.Write([0x78, 0x01]);
                _outHeaderWritten = true;
            }
        }
        block.WriteByte(0x00);
        block.Write([(byte)data.Length, (byte)(data.Length >> 8), (byte)~data.Length, (byte)(~data.Length >> 8)]);
        block.Write(data);
        // A sync flush (empty stored block) after it: Go's inflater hands out stored data only at a flush.
        block.Write([0x00, 0x00, 0x00, 0xff, 0xff]);
        return block.ToArray();
    }

    /// <summary>Inflates one client header block (the client's zlib stream continues across frames).</summary>
    private Dictionary<string, string> InflateHeaders(ReadOnlySpan<byte> block)
    {
        var first = _compressedIn.Length == 0;
        if (first)
        {
            if (block.Length < 2) throw new InvalidDataException("short SPDY header block");
            var hasDictionary = (block[1] & 0x20) != 0;
            block = block[(hasDictionary ? 6 : 2)..];
        }
        _compressedIn.Write(block);

        // Stored block with the dictionary first, so the client's back-references into it resolve.
        using var replay = new MemoryStream();
        var dict = SpdyDictionary.V3;
        replay.WriteByte(0x00);
        replay.Write([(byte)dict.Length, (byte)(dict.Length >> 8), (byte)~dict.Length, (byte)(~dict.Length >> 8)]);
        replay.Write(dict);
        replay.Write(_compressedIn.GetBuffer(), 0, (int)_compressedIn.Length);
        replay.Position = 0;
        using var inflated = new MemoryStream();
        using (var inflater = new DeflateStream(replay, CompressionMode.Decompress))
        {
            var buffer = new byte[8192];
            try
            {
                int read;
                while ((read = inflater.Read(buffer)) > 0) inflated.Write(buffer, 0, read);
            }
            catch (InvalidDataException)
            {
                // The stream continues in later frames: everything up to this frame's sync flush is out.
            }
        }
        var all = inflated.ToArray();
        var start = dict.Length + _inflatedSoFar;
        if (all.Length < start) throw new InvalidDataException("SPDY header block did not inflate");
        var mine = all.AsSpan(start);
        _inflatedSoFar = all.Length - dict.Length;

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var pos = 0;
        var count = ReadUInt32(mine, ref pos);
        for (var i = 0; i < count; i++)
        {
            var nameLength = (int)ReadUInt32(mine, ref pos);
            var name = Encoding.UTF8.GetString(mine.Slice(pos, nameLength));
            pos += nameLength;
            var valueLength = (int)ReadUInt32(mine, ref pos);
            var value = Encoding.UTF8.GetString(mine.Slice(pos, valueLength));
            pos += valueLength;
            headers[name] = value.Split('\0')[0];
        }
        return headers;

        static uint ReadUInt32(ReadOnlySpan<byte> s, ref int p)
        {
            var v = BinaryPrimitives.ReadUInt32BigEndian(s[p..]);
            p += 4;
            return v;
        }
    }

    private async Task<bool> ReadExactlyOrEndAsync(byte[] buffer, CancellationToken ct)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await _transport.ReadAsync(buffer.AsMemory(read), ct).ConfigureAwait(false);
            if (n == 0) return false;
            read += n;
        }
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await _transport.DisposeAsync().ConfigureAwait(false);
        _writeLock.Dispose();
        await _compressedIn.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1), 1423 bytes.</summary>
internal static class SpdyDictionary
{
    private static readonly string[] Names =
    [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding", "accept-language",
        "accept-ranges", "age", "allow", "authorization", "cache-control", "connection", "content-base", "content-encoding",
        "content-language", "content-length", "content-location", "content-md5", "content-range", "content-type", "date", "etag",
        "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since",
        "last-modified", "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
        "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
        "origin",
    ];

    private const string Tail =
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505" +
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden" +
        "404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable" +
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT" +
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript," +
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

    public static byte[] V3 { get; } = Build();

    private static byte[] Build()
    {
        using var ms = new MemoryStream();
        Span<byte> n = stackalloc byte[4];
        foreach (var name in Names)
        {
            BinaryPrimitives.WriteUInt32BigEndian(n, (uint)name.Length);
            ms.Write(n);
            ms.Write(Encoding.ASCII.GetBytes(name));
        }
        ms.Write(Encoding.ASCII.GetBytes(Tail));
        return ms.ToArray();
    }
}
