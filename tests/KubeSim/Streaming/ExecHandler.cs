using System.Buffers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;
using static KtConnect.KubeSim.Streaming.RemoteCommandWebSocket;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// pods/{name}/exec over WebSocket (7a-7i): channels 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; an empty
/// "ready" frame on the lowest selected output channel first; after the command ends its output, then the
/// status on channel 3 (a Status JSON without kind/apiVersion on v4/v5, plain text on channel.k8s.io), then
/// close 1000. v5 (when enabled) lets the client close stdin with [255, 0]. A client close ends the command
/// without a status (7b).
/// </summary>
internal sealed class ExecHandler(IPodExec exec, bool enableV5)
{
    public async Task HandleAsync(HttpContext context, JsonObject pod, string ns, string podName, CancellationToken ct)
    {
        if (!context.WebSockets.IsWebSocketRequest) throw KubeApiException.BadRequest("Upgrade request required");
        if (await NegotiateAsync(context, enableV5).ConfigureAwait(false) is not { } protocol) return;
        if (await ReadRequestAsync(context, ns, podName, ct).ConfigureAwait(false) is not { } request) return;

        await using var channels = await AcceptAsync(context, protocol).ConfigureAwait(false);
        var v1 = IsV1(protocol);
        var v5 = IsV5(protocol);
        using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var token = sessionCts.Token;

        var ready = request.Stdout ? StdoutChannel : request.Stderr ? StderrChannel : StatusChannel;
        await channels.SendAsync(ready, ReadOnlyMemory<byte>.Empty, token).ConfigureAwait(false);

        var (startRequest, pty) = Pty.Wrap(request);
        using var ptyScope = pty;
        IExecProcess process;
        try
        {
            process = await exec.StartAsync(startRequest, pod, token).ConfigureAwait(false);
        }
        catch (ExecStartException e)
        {
            await SendStatusAsync(channels, v1, InternalError(e.Message), "Internal error occurred: " + e.Message, token).ConfigureAwait(false);
            await channels.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            var closeAnswer = FromClientAsync(channels, null, v5, null, token);
            await ChannelWebSocket.DrainAsync(closeAnswer).ConfigureAwait(false);
            await sessionCts.CancelAsync().ConfigureAwait(false);
            await SwallowAsync(closeAnswer).ConfigureAwait(false);
            return;
        }

        await using (process)
        {
            var stdout = PumpAsync(process.Stdout, request.Stdout ? channels : null, StdoutChannel, token);
            var stderr = PumpAsync(process.Stderr, request.Stderr ? channels : null, StderrChannel, token);
            var fromClient = FromClientAsync(channels, process.Stdin, v5, pty, token);
            var outputDone = Task.WhenAll(stdout, stderr);
            var exitTask = process.WaitForExitAsync(token);
            var finished = Task.WhenAll(outputDone, exitTask);
            var first = await Task.WhenAny(finished, fromClient).ConfigureAwait(false);
            if (first == fromClient && !finished.IsCompleted)
            {
                // The client closed the WebSocket: answer its close, stop the command, send no status (7b).
                await channels.CloseAsync(CancellationToken.None).ConfigureAwait(false);
                await sessionCts.CancelAsync().ConfigureAwait(false);
                await SwallowAsync(finished).ConfigureAwait(false);
                return;
            }
            var exitCode = await exitTask.ConfigureAwait(false);
            var cmd = "[" + string.Join(' ', request.Command) + "]";
            if (exitCode == 0)
            {
                if (!v1) await SendStatusAsync(channels, v1, new JsonObject { ["metadata"] = new JsonObject(), ["status"] = "Success" }, "", token).ConfigureAwait(false);
            }
            else
            {
                var message = $"command terminated with non-zero exit code: error executing command {cmd}, exit code {exitCode}";
                var status = new JsonObject
                {
                    ["metadata"] = new JsonObject(),
                    ["status"] = "Failure",
                    ["message"] = message,
                    ["reason"] = "NonZeroExitCode",
                    ["details"] = new JsonObject
                    {
                        ["causes"] = new JsonArray(new JsonObject { ["reason"] = "ExitCode", ["message"] = exitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) }),
                    },
                };
                await SendStatusAsync(channels, v1, status, message, token).ConfigureAwait(false);
            }
            await channels.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            await ChannelWebSocket.DrainAsync(fromClient).ConfigureAwait(false);
            await sessionCts.CancelAsync().ConfigureAwait(false);
            await SwallowAsync(fromClient).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The exec request in the query (container, command, which streams, tty), as both the WebSocket and the SPDY
    /// upgrade take it; null after answering 400 when no stream is asked for, as the kubelet does.
    /// </summary>
    internal static async Task<ExecRequest?> ReadRequestAsync(HttpContext context, string ns, string podName, CancellationToken ct)
    {
        var q = context.Request.Query;
        var request = new ExecRequest(ns, podName, q["container"].FirstOrDefault(), q["command"].Select(c => c ?? "").ToArray(),
            ApiHandler.IsTrue(q["stdin"]), ApiHandler.IsTrue(q["stdout"]), ApiHandler.IsTrue(q["stderr"]), ApiHandler.IsTrue(q["tty"]));
        if (request.Stdin || request.Stdout || request.Stderr) return request;
        await HttpBodies.WriteTextAsync(context, 400, "you must specify at least 1 of stdin, stdout, stderr", ct, noSniff: false).ConfigureAwait(false);
        return null;
    }

    private static JsonObject InternalError(string detail) => new()
    {
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = "Internal error occurred: " + detail,
        ["reason"] = "InternalError",
        ["details"] = new JsonObject { ["causes"] = new JsonArray(new JsonObject { ["message"] = detail }) },
        ["code"] = 500,
    };

    private static Task SendStatusAsync(ChannelWebSocket channels, bool v1, JsonObject status, string text, CancellationToken ct)
    {
        var payload = v1 ? Encoding.UTF8.GetBytes(text) : KubeJson.ToBytesWithNewline(status).AsMemory(..^1).ToArray();
        return channels.SendAsync(StatusChannel, payload, ct);
    }

    private static async Task PumpAsync(Stream? from, ChannelWebSocket? to, byte channel, CancellationToken ct)
    {
        if (from is null) return;
        var buffer = ArrayPool<byte>.Shared.Rent(32 * 1024);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer.AsMemory(0, 32 * 1024), ct).ConfigureAwait(false);
                if (n == 0) return;
                if (to is not null) await to.SendAsync(channel, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // The process or the client went away.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task FromClientAsync(ChannelWebSocket channels, Stream? stdin, bool v5, Pty? pty, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                var message = await channels.ReceiveAsync(ct).ConfigureAwait(false);
                if (message is null) return;
                var (channel, data) = message.Value;
                try
                {
                    if (channel == StdinChannel && stdin is not null && data.Length > 0)
                    {
                        await stdin.WriteAsync(data, ct).ConfigureAwait(false);
                        await stdin.FlushAsync(ct).ConfigureAwait(false);
                    }
                    else if (channel == ResizeChannel && pty is not null)
                    {
                        await pty.ResizeAsync(data, ct).ConfigureAwait(false);
                    }
                    else if (v5 && channel == CloseChannel && data.Length > 0 && data[0] == StdinChannel && stdin is not null)
                    {
                        await stdin.DisposeAsync().ConfigureAwait(false);
                        stdin = null;
                    }
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException)
                {
                    // The command stopped reading (it exited): further stdin is dropped, as the kubelet does.
                    stdin = null;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The session ended.
        }
    }

    private static async Task SwallowAsync(Task t)
    {
        try
        {
            await t.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or WebSocketException)
        {
            // Shutting down.
        }
    }
}
