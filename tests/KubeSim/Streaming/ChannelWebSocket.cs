using System.Buffers;
using System.Net.WebSockets;
using System.Text;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// The Kubernetes channel framing over a server-side WebSocket: every message is one channel byte then data
/// (binary protocols), or an ASCII channel digit then base64 data in a text frame (the *.base64.* protocols).
/// Sends are serialized (a WebSocket allows one send at a time); each send is one unfragmented frame.
/// </summary>
internal sealed class ChannelWebSocket(WebSocket socket, bool base64) : IAsyncDisposable
{
    private readonly SemaphoreSlim _sendLock = new(1, 1);

    public WebSocket Socket => socket;

    public bool Base64 => base64;

    public async Task SendAsync(byte channel, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await _sendLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (socket.State != WebSocketState.Open) return;
            if (base64)
            {
                var text = (char)('0' + channel) + Convert.ToBase64String(data.Span);
                await socket.SendAsync(Encoding.ASCII.GetBytes(text), WebSocketMessageType.Text, true, ct).ConfigureAwait(false);
                return;
            }
            var frame = ArrayPool<byte>.Shared.Rent(data.Length + 1);
            try
            {
                frame[0] = channel;
                data.Span.CopyTo(frame.AsSpan(1));
                await socket.SendAsync(frame.AsMemory(0, data.Length + 1), WebSocketMessageType.Binary, true, ct).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(frame);
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Receives one whole message; null when the peer closed (or the socket broke).</summary>
    public async Task<(byte Channel, byte[] Data)?> ReceiveAsync(CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            using var message = new MemoryStream();
            while (true)
            {
                ValueWebSocketReceiveResult r;
                try
                {
                    r = await socket.ReceiveAsync(buffer.AsMemory(), ct).ConfigureAwait(false);
                }
                catch (WebSocketException)
                {
                    return null;
                }
                if (r.MessageType == WebSocketMessageType.Close) return null;
                message.Write(buffer, 0, r.Count);
                if (r.EndOfMessage) break;
            }
            var bytes = message.ToArray();
            if (bytes.Length == 0) return (0, []);
            if (!base64) return (bytes[0], bytes[1..]);
            var channel = (byte)(bytes[0] - '0');
            try
            {
                return (channel, Convert.FromBase64String(Encoding.ASCII.GetString(bytes, 1, bytes.Length - 1)));
            }
            catch (FormatException)
            {
                return (channel, []);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Sends close 1000 (server-initiated, or the answer to the client's close) without waiting: the receive loop
    /// sees the client's answer. Never throws.
    /// </summary>
    public async Task CloseAsync(CancellationToken ct)
    {
        await _sendLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(TimeSpan.FromSeconds(10));
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The peer is gone; nothing left to close.
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Gives the peer's receive loop time to see its close frame answered, so the TCP close is clean.</summary>
    public static async Task DrainAsync(Task receiveLoop)
    {
        try
        {
            await receiveLoop.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The client never answered our close; abort.
        }
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        _sendLock.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Picks the subprotocol like the Go server: the first one the client offered that we support; "" when the
    /// client offered none; null when it offered only ones we do not support.
    /// </summary>
    public static string? Negotiate(IList<string> offered, IReadOnlyCollection<string> supported)
    {
        if (offered.Count == 0) return "";
        return offered.FirstOrDefault(supported.Contains);
    }
}
