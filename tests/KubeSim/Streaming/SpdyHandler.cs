using System.Buffers;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// pods/exec and pods/portforward over an HTTP/1.1 upgrade to SPDY/3.1, as the kubelet serves kubectl up to 1.29
/// (and newer kubectl's fallback). Exec negotiates v4.channel.k8s.io (then v3, v2, channel.k8s.io) through
/// X-Stream-Protocol-Version; the client opens one stream per channel (streamtype error, stdin, stdout, stderr,
/// resize), the status goes on the error stream (v4: the Status JSON, as over WebSocket). Port-forward
/// (portforward.k8s.io) gets an error and a data stream per connection, named by the port and requestid headers.
/// A tty request runs the command under <see cref="Pty"/>; the resize stream resizes it. Attach takes the streams of
/// exec and joins the container's main process (<see cref="IPodAttach"/>): its output from that moment on, stdin to it
/// (the client's FIN ends the attacher's input), resize to its terminal; the Success status when the attach ends.
/// </summary>
internal sealed class SpdyHandler(IPodExec exec, IPodNetwork network, IPodAttach attach)
{
    private static readonly string[] ExecProtocols = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

    public static bool IsSpdyUpgrade(HttpContext context) =>
        string.Equals(context.Request.Headers.Upgrade.ToString(), "SPDY/3.1", StringComparison.OrdinalIgnoreCase)
        && context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true };

    /// <summary>The remotecommand protocol both sides speak, or null after the kubelet's 403 answer.</summary>
    private static async Task<string?> NegotiateOrRefuseAsync(HttpContext context, CancellationToken ct)
    {
        var protocol = Negotiate(context, ExecProtocols);
        if (protocol is null)
        {
            await HttpBodies.WriteTextAsync(context, 403, "unable to upgrade: unable to negotiate protocol: client supports " +
                context.Request.Headers["X-Stream-Protocol-Version"] + ", server supports " + string.Join(", ", ExecProtocols), ct).ConfigureAwait(false);
        }
        return protocol;
    }

    public async Task ExecAsync(HttpContext context, JsonObject pod, string ns, string podName, CancellationToken ct)
    {
        if (await NegotiateOrRefuseAsync(context, ct).ConfigureAwait(false) is not { } protocol) return;
        if (await ExecHandler.ReadRequestAsync(context, ns, podName, ct).ConfigureAwait(false) is not { } request) return;
        await using var session = await UpgradeAsync(context, protocol).ConfigureAwait(false);
        using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var token = sessionCts.Token;
        var reader = session.RunAsync(token);

        var streams = await AcceptStreamsAsync(session, protocol, request.Stdin, request.Stdout, request.Stderr, request.Tty, token).ConfigureAwait(false);
        if (streams is null)
        {
            await sessionCts.CancelAsync().ConfigureAwait(false);
            await Swallow(reader).ConfigureAwait(false);
            return;
        }
        var errorStream = streams["error"];
        var (startRequest, pty) = Pty.Wrap(request);
        using var ptyScope = pty;
        IExecProcess process;
        try
        {
            process = await exec.StartAsync(startRequest, pod, token).ConfigureAwait(false);
        }
        catch (ExecStartException e)
        {
            var status = new JsonObject
            {
                ["metadata"] = new JsonObject(),
                ["status"] = "Failure",
                ["message"] = "Internal error occurred: " + e.Message,
                ["reason"] = "InternalError",
                ["details"] = new JsonObject { ["causes"] = new JsonArray(new JsonObject { ["message"] = e.Message }) },
                ["code"] = 500,
            };
            await FinishAsync(session, errorStream, protocol, status, "Internal error occurred: " + e.Message, sessionCts, reader).ConfigureAwait(false);
            return;
        }
        await using (process)
        {
            var stdout = PumpAsync(process.Stdout, streams.GetValueOrDefault("stdout"), token);
            var stderr = PumpAsync(process.Stderr, streams.GetValueOrDefault("stderr") ?? (request.Tty ? streams.GetValueOrDefault("stdout") : null), token,
                closeWhenDone: !request.Tty);
            var stdin = streams.TryGetValue("stdin", out var inStream) ? CopyInAsync(inStream, process.Stdin, token) : Task.CompletedTask;
            var resizing = streams.TryGetValue("resize", out var resize) ? ResizeAsync(resize, pty, token) : Task.CompletedTask;
            var exitCode = await process.WaitForExitAsync(token).ConfigureAwait(false);
            await Task.WhenAll(stdout, stderr).ConfigureAwait(false);
            var cmd = "[" + string.Join(' ', request.Command) + "]";
            JsonObject? status = null;
            var text = "";
            if (exitCode == 0)
            {
                status = new JsonObject { ["metadata"] = new JsonObject(), ["status"] = "Success" };
            }
            else
            {
                text = $"command terminated with non-zero exit code: error executing command {cmd}, exit code {exitCode}";
                status = new JsonObject
                {
                    ["metadata"] = new JsonObject(),
                    ["status"] = "Failure",
                    ["message"] = text,
                    ["reason"] = "NonZeroExitCode",
                    ["details"] = new JsonObject
                    {
                        ["causes"] = new JsonArray(new JsonObject { ["reason"] = "ExitCode", ["message"] = exitCode.ToString(CultureInfo.InvariantCulture) }),
                    },
                };
            }
            await FinishAsync(session, errorStream, protocol, status, text, sessionCts, reader).ConfigureAwait(false);
            await Swallow(stdin).ConfigureAwait(false);
            await Swallow(resizing).ConfigureAwait(false);
        }
    }

    public async Task AttachAsync(HttpContext context, JsonObject pod, string ns, string podName, string container, CancellationToken ct)
    {
        if (await NegotiateOrRefuseAsync(context, ct).ConfigureAwait(false) is not { } protocol) return;
        if (await AttachHandler.ReadRequestAsync(context, ns, podName, container, ct).ConfigureAwait(false) is not { } request) return;
        if (await AttachHandler.StartAsync(context, attach, request, pod, ct).ConfigureAwait(false) is not { } attached) return;
        await using (attached)
        {
            await using var session = await UpgradeAsync(context, protocol).ConfigureAwait(false);
            using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var token = sessionCts.Token;
            var reader = session.RunAsync(token);
            var streams = await AcceptStreamsAsync(session, protocol, request.Stdin, request.Stdout, request.Stderr, request.Tty, token).ConfigureAwait(false);
            if (streams is null)
            {
                await sessionCts.CancelAsync().ConfigureAwait(false);
                await Swallow(reader).ConfigureAwait(false);
                return;
            }
            var stdinEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var stdin = streams.TryGetValue("stdin", out var inStream) ? AttachStdinAsync(inStream, attached, stdinEnded, token) : Task.CompletedTask;
            var resizing = streams.TryGetValue("resize", out var resize) ? AttachResizeAsync(resize, attached, token) : Task.CompletedTask;
            var stdout = PumpAsync(attached.Stdout, streams.GetValueOrDefault("stdout"), token);
            var stderr = PumpAsync(attached.Stderr, streams.GetValueOrDefault("stderr"), token);
            // The attach lasts while any requested output flows; with stdin alone, until the client's input ends. The client
            // going away (the connection's reader ends) detaches too.
            var finished = attached.Stdout is null && attached.Stderr is null ? stdinEnded.Task : Task.WhenAll(stdout, stderr);
            await Task.WhenAny(finished, reader).ConfigureAwait(false);
            if (!finished.IsCompleted)
            {
                await sessionCts.CancelAsync().ConfigureAwait(false);
                await Swallow(Task.WhenAll(stdout, stderr, stdin, resizing, reader)).ConfigureAwait(false);
                return;
            }
            var status = new JsonObject { ["metadata"] = new JsonObject(), ["status"] = "Success" };
            await FinishAsync(session, streams["error"], protocol, status, "", sessionCts, reader).ConfigureAwait(false);
            await Swallow(stdin).ConfigureAwait(false);
            await Swallow(resizing).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The client opens its streams first: error, then stdin/stdout/stderr as selected (no stderr with a tty), then resize
    /// for a tty (v3+). Null when they do not all come within 30 s or the connection ends.
    /// </summary>
    private static async Task<Dictionary<string, SpdyStream>?> AcceptStreamsAsync(SpdySession session, string protocol, bool stdin, bool stdout, bool stderr,
        bool tty, CancellationToken token)
    {
        var expected = new List<string> { "error" };
        if (stdin) expected.Add("stdin");
        if (stdout) expected.Add("stdout");
        if (stderr && !tty) expected.Add("stderr");
        if (tty && protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io") expected.Add("resize");
        var streams = new Dictionary<string, SpdyStream>(StringComparer.Ordinal);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(token);
        wait.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            while (!expected.All(streams.ContainsKey))
            {
                var s = await session.Accepted.ReadAsync(wait.Token).ConfigureAwait(false);
                streams[s.Header("streamtype")] = s;
            }
            return streams;
        }
        catch (Exception e) when (e is OperationCanceledException or System.Threading.Channels.ChannelClosedException)
        {
            return null;
        }
    }

    private static async Task PumpAsync(System.Threading.Channels.ChannelReader<byte[]>? from, SpdyStream? to, CancellationToken ct)
    {
        if (from is null) return;
        try
        {
            await foreach (var chunk in from.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (to is not null) await to.WriteAsync(chunk, ct).ConfigureAwait(false);
            }
            if (to is not null) await to.CloseAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The client went away.
        }
    }

    private static async Task AttachStdinAsync(SpdyStream from, IAttachSession to, TaskCompletionSource ended, CancellationToken ct)
    {
        await foreach (var chunk in from.Inbound.ReadAllAsync(ct).ConfigureAwait(false)) await to.WriteStdinAsync(chunk, ct).ConfigureAwait(false);
        // The client's FIN: the attacher's input ended.
        to.EndStdin();
        ended.TrySetResult();
    }

    private static async Task AttachResizeAsync(SpdyStream stream, IAttachSession to, CancellationToken ct)
    {
        await foreach (var chunk in stream.Inbound.ReadAllAsync(ct).ConfigureAwait(false))
        {
            foreach (var (width, height) in Pty.Sizes(chunk)) await to.ResizeAsync(width, height, ct).ConfigureAwait(false);
        }
    }

    public async Task PortForwardAsync(HttpContext context, JsonObject pod, string ns, string podName, CancellationToken ct)
    {
        if (Negotiate(context, ["portforward.k8s.io"]) is null)
        {
            await HttpBodies.WriteTextAsync(context, 403, "unable to upgrade: unable to negotiate protocol", ct).ConfigureAwait(false);
            return;
        }
        await using var session = await UpgradeAsync(context, "portforward.k8s.io").ConfigureAwait(false);
        using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var token = sessionCts.Token;
        var reader = session.RunAsync(token);
        var errors = new Dictionary<string, SpdyStream>(StringComparer.Ordinal);
        var forwards = new List<Task>();
        try
        {
            await foreach (var s in session.Accepted.ReadAllAsync(token).ConfigureAwait(false))
            {
                var requestId = s.Header("requestid");
                if (s.Header("streamtype") == "error")
                {
                    errors[requestId] = s;
                    continue;
                }
                if (s.Header("streamtype") != "data") continue;
                errors.TryGetValue(requestId, out var error);
                forwards.Add(ForwardAsync(s, error, ns, podName, pod, s.Header("port"), token));
            }
        }
        catch (OperationCanceledException)
        {
            // The request ended.
        }
        await sessionCts.CancelAsync().ConfigureAwait(false);
        await Swallow(Task.WhenAll(forwards)).ConfigureAwait(false);
        await Swallow(reader).ConfigureAwait(false);
    }

    private async Task ForwardAsync(SpdyStream data, SpdyStream? error, string ns, string podName, JsonObject pod, string portText, CancellationToken ct)
    {
        if (!int.TryParse(portText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var port) || port is <= 0 or > 65535)
        {
            if (error is not null) await error.WriteAsync(Encoding.UTF8.GetBytes($"invalid port: {portText}"), ct).ConfigureAwait(false);
            await Swallow(data.CloseAsync(ct)).ConfigureAwait(false);
            return;
        }
        Stream target;
        try
        {
            target = await network.ConnectAsync(ns, podName, pod, port, ct).ConfigureAwait(false);
        }
        catch (PodConnectException e)
        {
            if (error is not null)
            {
                await Swallow(error.WriteAsync(Encoding.UTF8.GetBytes(e.Message), ct)).ConfigureAwait(false);
                await Swallow(error.CloseAsync(ct)).ConfigureAwait(false);
            }
            await Swallow(data.CloseAsync(ct)).ConfigureAwait(false);
            return;
        }
        await using (target)
        {
            var toPod = Task.Run(async () =>
            {
                await foreach (var chunk in data.Inbound.ReadAllAsync(ct).ConfigureAwait(false)) await target.WriteAsync(chunk, ct).ConfigureAwait(false);
                if (target is NetworkStream { Socket: { } socket }) socket.Shutdown(SocketShutdown.Send);
            }, ct);
            await PumpAsync(target, data, ct).ConfigureAwait(false);
            if (error is not null) await Swallow(error.CloseAsync(ct)).ConfigureAwait(false);
            await Swallow(toPod).ConfigureAwait(false);
        }
    }

    private static async Task FinishAsync(SpdySession session, SpdyStream errorStream, string protocol, JsonObject status, string text,
        CancellationTokenSource sessionCts, Task reader)
    {
        var token = sessionCts.Token;
        if (protocol == "v4.channel.k8s.io")
        {
            await Swallow(errorStream.WriteAsync(KubeJson.ToBytesWithNewline(status).AsMemory(..^1), token)).ConfigureAwait(false);
        }
        else if (text.Length > 0)
        {
            await Swallow(errorStream.WriteAsync(Encoding.UTF8.GetBytes(text), token)).ConfigureAwait(false);
        }
        await Swallow(errorStream.CloseAsync(token)).ConfigureAwait(false);
        await Swallow(session.GoAwayAsync(token)).ConfigureAwait(false);
        // The client closes the connection once it has read everything; do not wait for ever.
        await Swallow(reader.WaitAsync(TimeSpan.FromSeconds(10), token)).ConfigureAwait(false);
        await sessionCts.CancelAsync().ConfigureAwait(false);
        await Swallow(reader).ConfigureAwait(false);
    }

    private static async Task<SpdySession> UpgradeAsync(HttpContext context, string protocol)
    {
        context.Response.Headers["X-Stream-Protocol-Version"] = protocol;
        context.Response.Headers.Upgrade = "SPDY/3.1";
        context.Response.Headers.Connection = "Upgrade";
        var transport = await context.Features.Get<IHttpUpgradeFeature>()!.UpgradeAsync().ConfigureAwait(false);
        return new SpdySession(transport);
    }

    private static string? Negotiate(HttpContext context, string[] supported)
    {
        var offered = context.Request.Headers["X-Stream-Protocol-Version"]
            .SelectMany(v => (v ?? "").Split(',')).Select(v => v.Trim()).ToHashSet(StringComparer.Ordinal);
        return supported.FirstOrDefault(offered.Contains);
    }

    private static async Task PumpAsync(Stream? from, SpdyStream? to, CancellationToken ct, bool closeWhenDone = true)
    {
        if (from is null) return;
        var buffer = ArrayPool<byte>.Shared.Rent(32 * 1024);
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer.AsMemory(0, 32 * 1024), ct).ConfigureAwait(false);
                if (n == 0) break;
                if (to is not null) await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
            if (to is not null && closeWhenDone) await to.CloseAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The process, the pod or the client went away.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task CopyInAsync(SpdyStream from, Stream? to, CancellationToken ct)
    {
        try
        {
            await foreach (var chunk in from.Inbound.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (to is null) continue;
                await to.WriteAsync(chunk, ct).ConfigureAwait(false);
                await to.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            // SPDY can half-close: the client's FIN is the command's end of input.
            if (to is not null) await Swallow(to.DisposeAsync().AsTask()).ConfigureAwait(false);
        }
    }

    /// <summary>The resize stream: each event resizes the pty (read and dropped without one).</summary>
    private static async Task ResizeAsync(SpdyStream stream, Pty? pty, CancellationToken ct)
    {
        await foreach (var chunk in stream.Inbound.ReadAllAsync(ct).ConfigureAwait(false))
        {
            if (pty is not null) await pty.ResizeAsync(chunk, ct).ConfigureAwait(false);
        }
    }

    private static async Task Swallow(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or TimeoutException
            or InvalidOperationException)
        {
            // Teardown: the other side may already be gone.
        }
    }
}
