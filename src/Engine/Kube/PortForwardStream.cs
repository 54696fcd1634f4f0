using System.Buffers;
using System.Net.WebSockets;

namespace KtConnect.Engine.Kube;

/// <summary>
/// One TCP connection to a pod port, carried by one WebSocket (v4.channel.k8s.io). Reads return the pod's bytes
/// (port prefix stripped); writes send ours on the data channel. When the pod side fails (e.g. connection refused
/// inside the pod) the error channel's text surfaces as <see cref="KubePortForwardException"/> on the next read,
/// after any data that came before it. The protocol has no half-close: dispose to end the connection.
/// One reader and one writer may run concurrently.
/// </summary>
public sealed class PortForwardStream : Stream
{
    /// <summary>Largest payload per WebSocket message (also the receive buffer size).</summary>
    private const int MaxMessage = 64 * 1024;

    private readonly ClientWebSocket _ws;
    private readonly PortForwardDemuxer _demux;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly string _pod;
    private byte[]? _recv;
    private int _pendingOffset;
    private int _pendingLength;
    private bool _messageStart = true;
    private bool _eof;
    private int _disposed;
    private volatile bool _reading;

    internal PortForwardStream(ClientWebSocket ws, int port, string pod, string protocol)
    {
        _ws = ws;
        Port = port;
        _pod = pod;
        Protocol = protocol;
        _demux = new PortForwardDemuxer(port);
        _recv = ArrayPool<byte>.Shared.Rent(MaxMessage);
    }

    public int Port { get; }

    /// <summary>The negotiated subprotocol (v4.channel.k8s.io, or "" when the server chose none).</summary>
    public string Protocol { get; }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        // A zero-byte read waits, as a socket's does, until a read would not wait (data, the error channel, EOF), and
        // takes nothing: what arrives meanwhile is kept in our own buffer.
        var waitOnly = buffer.IsEmpty;
        while (true)
        {
            if (_pendingLength > 0)
            {
                if (waitOnly) return 0;
                var n = Math.Min(_pendingLength, buffer.Length);
                _recv.AsSpan(_pendingOffset, n).CopyTo(buffer.Span);
                _pendingOffset += n;
                _pendingLength -= n;
                return n;
            }
            if (_demux.Error is string error)
                throw new KubePortForwardException($"Port-forward to pod {_pod} port {Port} failed: {error}", Port, _pod);
            if (_eof) return 0;

            // Inside a data message the pod's bytes go straight into the caller's buffer. A message's first byte (its
            // channel), a port prefix and error text go through our own buffer, which the demuxer reads.
            var direct = !waitOnly && !_messageStart && _demux.InDataPayload;
            var target = direct ? buffer : _recv.AsMemory(0, _messageStart ? 1 : MaxMessage);
            ValueWebSocketReceiveResult result;
            _reading = true;
            try
            {
                result = await _ws.ReceiveAsync(target, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is WebSocketException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // A socket aborted under us (a cancelled send aborts the whole WebSocket) ends the receive with
                // OperationCanceledException although this read was not cancelled: the connection broke.
                if (_disposed != 0) throw new ObjectDisposedException(nameof(PortForwardStream));
                throw new KubeConnectionException($"The port-forward WebSocket to pod {_pod} port {Port} broke: {ex.Message}", ex, _pod);
            }
            finally
            {
                _reading = false;
            }
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                _eof = true;
                await KubeWebSockets.AnswerCloseAsync(_ws, _sendLock).ConfigureAwait(false);
                continue;
            }
            if (result.MessageType == WebSocketMessageType.Text)
            {
                throw new KubeProtocolException("KubePortForwardProtocol",
                    $"The port-forward to pod {_pod} sent a text frame; only binary v4.channel.k8s.io is supported.", null, _pod);
            }
            var (offset, length) = _demux.Process(target.Span[..result.Count], _messageStart, result.EndOfMessage);
            // An empty first frame (a re-framing proxy may send one) leaves the channel byte to the next.
            _messageStart = result.EndOfMessage || (_messageStart && result.Count == 0);
            if (direct)
            {
                if (length > 0) return length;
                continue;
            }
            _pendingOffset = offset;
            _pendingLength = length;
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (buffer.IsEmpty) return;
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        var frame = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length, MaxMessage - 1) + 1);
        try
        {
            while (!buffer.IsEmpty)
            {
                var n = Math.Min(buffer.Length, MaxMessage - 1);
                frame[0] = PortForwardDemuxer.DataChannel;
                buffer.Span[..n].CopyTo(frame.AsSpan(1));
                await _ws.SendAsync(new ReadOnlyMemory<byte>(frame, 0, n + 1), WebSocketMessageType.Binary, true, cancellationToken).ConfigureAwait(false);
                buffer = buffer[n..];
            }
        }
        catch (WebSocketException ex)
        {
            throw new KubeConnectionException($"The port-forward WebSocket to pod {_pod} port {Port} broke: {ex.Message}", ex, _pod);
        }
        finally
        {
            _sendLock.Release();
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Flush()
    {
    }

    /// <summary>Synchronous reads would block a thread on the network; this stream is async-only.</summary>
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("PortForwardStream is async-only: use ReadAsync.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("PortForwardStream is async-only: use WriteAsync.");

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Closes cleanly: sends close 1000 and waits (briefly) for the server's close.</summary>
    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            if (_ws.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                // With a read in flight only our close can be sent (one receive at a time); otherwise wait for the server's.
                if (_reading) await _ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
                else await _ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // InvalidOperationException: a read that started as we closed has a receive outstanding besides ours.
            _ws.Abort();
        }
        Release();
        GC.SuppressFinalize(this);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // Synchronous dispose cannot wait for the close handshake: abort the connection.
            _ws.Abort();
            Release();
        }
        base.Dispose(disposing);
    }

    private void Release()
    {
        _ws.Dispose();
        _sendLock.Dispose();
        // A receive still in flight may write into the buffer until the socket's disposal completes it: leave
        // that buffer to the GC rather than hand it to another pool user.
        var buf = _reading ? null : Interlocked.Exchange(ref _recv, null);
        if (buf is not null) ArrayPool<byte>.Shared.Return(buf);
    }
}
