using System.Net.WebSockets;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;
using static KtConnect.KubeSim.Streaming.RemoteCommandWebSocket;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// pods/{name}/attach over WebSocket, as the kubelet's remotecommand server serves it (ServeAttach) with the channels of
/// exec: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize. The container's main process is joined through
/// <see cref="IPodAttach"/> before the upgrade (a container that does not run is the kubelet's 500 text); then an empty
/// ready frame on the lowest selected output channel, the output from that moment on, and when the attach ends (the
/// process exited, or the client's stdin ended and it was detached) a Success status on channel 3 (v4/v5; nothing on
/// channel.k8s.io) and close 1000. A client close detaches without a status.
/// </summary>
internal sealed class AttachHandler(IPodAttach attach, bool enableV5)
{
    public async Task HandleAsync(HttpContext context, JsonObject pod, string ns, string podName, string container, CancellationToken ct)
    {
        if (!context.WebSockets.IsWebSocketRequest) throw KubeApiException.BadRequest("Upgrade request required");
        if (await NegotiateAsync(context, enableV5).ConfigureAwait(false) is not { } protocol) return;
        if (await ReadRequestAsync(context, ns, podName, container, ct).ConfigureAwait(false) is not { } request) return;
        if (await StartAsync(context, attach, request, pod, ct).ConfigureAwait(false) is not { } session) return;

        await using (session)
        {
            await using var channels = await AcceptAsync(context, protocol).ConfigureAwait(false);
            var v1 = IsV1(protocol);
            var v5 = IsV5(protocol);
            using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var token = sessionCts.Token;

            var ready = session.Stdout is not null ? StdoutChannel : session.Stderr is not null ? StderrChannel : StatusChannel;
            await channels.SendAsync(ready, ReadOnlyMemory<byte>.Empty, token).ConfigureAwait(false);

            var stdinEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var fromClient = FromClientAsync(channels, session, request.Stdin, v5, stdinEnded, token);
            // The attach lasts while any requested output flows; with stdin alone, until the client's input ends.
            var outputs = new[] { Pump(session.Stdout, channels, StdoutChannel, token), Pump(session.Stderr, channels, StderrChannel, token) };
            var finished = session.Stdout is null && session.Stderr is null ? stdinEnded.Task : Task.WhenAll(outputs);
            var first = await Task.WhenAny(finished, fromClient).ConfigureAwait(false);
            if (first == fromClient && !finished.IsCompleted)
            {
                // The client closed the WebSocket: answer its close and detach, no status.
                await channels.CloseAsync(CancellationToken.None).ConfigureAwait(false);
                await sessionCts.CancelAsync().ConfigureAwait(false);
                await SwallowAsync(Task.WhenAll(outputs)).ConfigureAwait(false);
                return;
            }
            if (!v1)
            {
                var success = KubeJson.ToBytesWithNewline(new JsonObject { ["metadata"] = new JsonObject(), ["status"] = "Success" }).AsMemory(..^1);
                await SwallowAsync(channels.SendAsync(StatusChannel, success, token)).ConfigureAwait(false);
            }
            await channels.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            await ChannelWebSocket.DrainAsync(fromClient).ConfigureAwait(false);
            await sessionCts.CancelAsync().ConfigureAwait(false);
            await SwallowAsync(fromClient).ConfigureAwait(false);
        }
    }

    /// <summary>The attach options in the query; null after answering 400 when no stream is asked for (the kubelet's NewOptions).</summary>
    internal static async Task<AttachRequest?> ReadRequestAsync(HttpContext context, string ns, string podName, string container, CancellationToken ct)
    {
        var q = context.Request.Query;
        var request = new AttachRequest(ns, podName, container, ApiHandler.IsTrue(q["stdin"]), ApiHandler.IsTrue(q["stdout"]),
            ApiHandler.IsTrue(q["stderr"]), ApiHandler.IsTrue(q["tty"]));
        if (request.Stdin || request.Stdout || request.Stderr) return request;
        await HttpBodies.WriteTextAsync(context, 400, "you must specify at least 1 of stdin, stdout, stderr", ct, noSniff: false).ConfigureAwait(false);
        return null;
    }

    /// <summary>Joins the main process; null after answering the kubelet's 500 text when its container does not run.</summary>
    internal static async Task<IAttachSession?> StartAsync(HttpContext context, IPodAttach attach, AttachRequest request, JsonObject pod, CancellationToken ct)
    {
        try
        {
            return await attach.AttachAsync(request, pod, ct).ConfigureAwait(false);
        }
        catch (AttachStartException e)
        {
            await HttpBodies.WriteTextAsync(context, 500, e.Message, ct, noSniff: false).ConfigureAwait(false);
            return null;
        }
    }

    private static async Task Pump(ChannelReader<byte[]>? from, ChannelWebSocket to, byte channel, CancellationToken ct)
    {
        if (from is null) return;
        try
        {
            await foreach (var chunk in from.ReadAllAsync(ct).ConfigureAwait(false)) await to.SendAsync(channel, chunk, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // The client went away.
        }
    }

    private static async Task FromClientAsync(ChannelWebSocket channels, IAttachSession session, bool stdin, bool v5, TaskCompletionSource stdinEnded,
        CancellationToken ct)
    {
        try
        {
            while (true)
            {
                var message = await channels.ReceiveAsync(ct).ConfigureAwait(false);
                if (message is null) return;
                var (channel, data) = message.Value;
                if (channel == StdinChannel && stdin && data.Length > 0)
                {
                    await session.WriteStdinAsync(data, ct).ConfigureAwait(false);
                }
                else if (channel == ResizeChannel)
                {
                    foreach (var (width, height) in Pty.Sizes(data)) await session.ResizeAsync(width, height, ct).ConfigureAwait(false);
                }
                else if (v5 && channel == CloseChannel && data.Length > 0 && data[0] == StdinChannel && stdin)
                {
                    session.EndStdin();
                    stdinEnded.TrySetResult();
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
