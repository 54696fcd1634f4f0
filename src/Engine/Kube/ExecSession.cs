using System.Buffers;
using System.Net.WebSockets;

namespace KtConnect.Engine.Kube;

/// <summary>
/// Runs one exec WebSocket: a receive loop demultiplexing stdout/stderr/status, and a stdin pump that half-closes
/// stdin on v5 when its source ends (v4 has no half-close, so stdin simply stops). Finishes when the server
/// closes the socket (right after the status).
/// </summary>
internal sealed class ExecSession
{
    private const int BufferSize = 64 * 1024;

    private readonly ClientWebSocket _ws;
    private readonly string _protocol;
    private readonly string _pod;
    private readonly Stream? _stdout;
    private readonly Stream? _stderr;
    private readonly SemaphoreSlim _sendLock = new(1, 1);

    public ExecSession(ClientWebSocket ws, string protocol, string pod, Stream? stdout, Stream? stderr)
    {
        _ws = ws;
        _protocol = protocol;
        _pod = pod;
        _stdout = stdout;
        _stderr = stderr;
    }

    public async Task<ExecResult> RunAsync(Stream? stdin, CancellationToken cancellationToken)
    {
        using var pumpCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pump = stdin is null ? Task.CompletedTask : PumpStdinAsync(stdin, pumpCts.Token);
        try
        {
            var status = await ReceiveAsync(cancellationToken).ConfigureAwait(false);
            var (code, st) = ExecProtocol.InterpretStatus(status.WrittenSpan, _protocol, _pod);
            return new ExecResult(code, _protocol, st);
        }
        finally
        {
            await pumpCts.CancelAsync().ConfigureAwait(false);
            try
            {
                await pump.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException or IOException)
            {
                // The command ended; whatever stdin was doing no longer matters.
            }
            _sendLock.Dispose();
        }
    }

    private async Task<ArrayBufferWriter<byte>> ReceiveAsync(CancellationToken cancellationToken)
    {
        var status = new ArrayBufferWriter<byte>();
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            var messageStart = true;
            var channel = -1;
            while (true)
            {
                WebSocketReceiveResult result;
                try
                {
                    result = await _ws.ReceiveAsync(new ArraySegment<byte>(buffer, 0, BufferSize), cancellationToken).ConfigureAwait(false);
                }
                catch (WebSocketException ex)
                {
                    throw new KubeConnectionException($"The exec WebSocket to pod {_pod} broke: {ex.Message}", ex, _pod);
                }
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await KubeWebSockets.AnswerCloseAsync(_ws, _sendLock).ConfigureAwait(false);
                    return status;
                }
                var offset = 0;
                if (messageStart)
                {
                    if (result.Count == 0)
                    {
                        messageStart = result.EndOfMessage;
                        continue;
                    }
                    channel = buffer[0];
                    offset = 1;
                }
                messageStart = result.EndOfMessage;
                var data = new ReadOnlyMemory<byte>(buffer, offset, result.Count - offset);
                switch (channel)
                {
                    case ExecProtocol.StdoutChannel:
                        if (_stdout is not null && !data.IsEmpty) await _stdout.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                        break;
                    case ExecProtocol.StderrChannel:
                        if (_stderr is not null && !data.IsEmpty) await _stderr.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                        break;
                    case ExecProtocol.ErrorChannel:
                        if (status.WrittenCount + data.Length > 1024 * 1024)
                            throw new KubeProtocolException("KubeExecProtocol", $"The exec status of pod {_pod} is larger than 1 MiB.", null, _pod);
                        status.Write(data.Span);
                        break;
                    default:
                        // The ready signal is an empty stdout frame; other channels are ignored.
                        break;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task PumpStdinAsync(Stream stdin, CancellationToken cancellationToken)
    {
        var frame = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            frame[0] = ExecProtocol.StdinChannel;
            while (true)
            {
                var n = await stdin.ReadAsync(frame.AsMemory(1, BufferSize - 1), cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                await SendAsync(new ReadOnlyMemory<byte>(frame, 0, n + 1), cancellationToken).ConfigureAwait(false);
            }
            if (_protocol == ExecProtocol.V5)
                await SendAsync(new byte[] { ExecProtocol.CloseChannel, ExecProtocol.StdinChannel }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    private async Task SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _ws.SendAsync(message, WebSocketMessageType.Binary, true, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }
}
