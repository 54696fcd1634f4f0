using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// pods/{name}/portforward over WebSocket as the v1.20 kubelet serves it (6a-6i): subprotocols
/// v4.channel.k8s.io, v4.base64.channel.k8s.io and "" (none offered); for port k channels 2k (data) and 2k+1
/// (error), each opened with the port as uint16 little-endian; every port dialled at connect time; a refused
/// port is a text message on its error channel; close 1000 when every port is done.
/// </summary>
internal sealed class PortForwardHandler(IPodNetwork network)
{
    private static readonly string[] Supported = ["v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io"];

    public async Task HandleAsync(HttpContext context, JsonObject pod, string ns, string podName, CancellationToken ct)
    {
        if (!context.WebSockets.IsWebSocketRequest) throw KubeApiException.BadRequest("Upgrade request required");
        var protocol = ChannelWebSocket.Negotiate(context.WebSockets.WebSocketRequestedProtocols, Supported);
        if (protocol is null)
        {
            await RefuseHandshakeAsync(context).ConfigureAwait(false);
            return;
        }
        var ports = ParsePorts(context.Request.Query["ports"]);
        if (ports is null)
        {
            await HttpBodies.WriteTextAsync(context, 400, "query parameter \"port\" is required", ct, noSniff: false).ConfigureAwait(false);
            return;
        }
        if (ports.Count > 127)
        {
            await HttpBodies.WriteTextAsync(context, 400, "too many ports", ct, noSniff: false).ConfigureAwait(false);
            return;
        }

        var ws = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = protocol.Length == 0 ? null : protocol,
            KeepAliveInterval = TimeSpan.Zero,
        }).ConfigureAwait(false);
        await using var channels = new ChannelWebSocket(ws, protocol.Contains("base64", StringComparison.Ordinal));
        using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var token = sessionCts.Token;

        var prefix = new byte[2];
        for (var k = 0; k < ports.Count; k++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(prefix, (ushort)ports[k]);
            await channels.SendAsync((byte)(2 * k), prefix, token).ConfigureAwait(false);
            await channels.SendAsync((byte)(2 * k + 1), prefix, token).ConfigureAwait(false);
        }

        var streams = new Stream?[ports.Count];
        var pumps = new List<Task>();
        try
        {
            for (var k = 0; k < ports.Count; k++)
            {
                try
                {
                    streams[k] = await network.ConnectAsync(ns, podName, pod, ports[k], token).ConfigureAwait(false);
                    pumps.Add(PumpFromPodAsync(streams[k]!, channels, (byte)(2 * k), token));
                }
                catch (PodConnectException e)
                {
                    await channels.SendAsync((byte)(2 * k + 1), Encoding.UTF8.GetBytes(e.Message), token).ConfigureAwait(false);
                }
            }

            // Everything the client sends goes to the data stream of its channel's port; the client's close ends it all.
            var fromClient = PumpFromClientAsync(channels, streams, token);
            var allPodsDone = Task.WhenAll(pumps);
            await Task.WhenAny(fromClient, allPodsDone).ConfigureAwait(false);
            // Either the client closed (answer it) or every port is done (close first, then read the client's answer).
            await channels.CloseAsync(CancellationToken.None).ConfigureAwait(false);
            await ChannelWebSocket.DrainAsync(fromClient).ConfigureAwait(false);
            await sessionCts.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(pumps.Append(fromClient)).ConfigureAwait(false);
        }
        finally
        {
            foreach (var s in streams)
            {
                if (s is not null) await s.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The 403 x/net/websocket gives for an unsupported subprotocol: Connection: close, empty body (6c).</summary>
    internal static async Task RefuseHandshakeAsync(HttpContext context)
    {
        context.Response.StatusCode = 403;
        context.Response.Headers.Connection = "close";
        context.Response.ContentLength = 0;
        await context.Response.CompleteAsync().ConfigureAwait(false);
    }

    private static List<int>? ParsePorts(Microsoft.Extensions.Primitives.StringValues values)
    {
        var ports = new List<int>();
        foreach (var v in values)
        {
            foreach (var part in (v ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 1 or > 65535) return null;
                ports.Add(p);
            }
        }
        return ports.Count == 0 ? null : ports;
    }

    private static async Task PumpFromPodAsync(Stream stream, ChannelWebSocket channels, byte channel, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(32 * 1024);
        try
        {
            while (true)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(0, 32 * 1024), ct).ConfigureAwait(false);
                if (n == 0) return;
                await channels.SendAsync(channel, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // Either side went away; the session ends.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task PumpFromClientAsync(ChannelWebSocket channels, Stream?[] streams, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                var message = await channels.ReceiveAsync(ct).ConfigureAwait(false);
                if (message is null) return;
                var (channel, data) = message.Value;
                var k = channel / 2;
                if (channel % 2 != 0 || k >= streams.Length || streams[k] is not { } s || data.Length == 0) continue;
                await s.WriteAsync(data, ct).ConfigureAwait(false);
                await s.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The pod side closed or the session was cancelled.
        }
    }
}
