using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// What exec and attach over WebSocket share (the kubelet's remotecommand protocol): the channel numbers, the
/// subprotocols offered, the upgrade, and the protocol's flavour (v1 sends no status, v5 lets the client close stdin).
/// </summary>
internal static class RemoteCommandWebSocket
{
    public const byte StdinChannel = 0;
    public const byte StdoutChannel = 1;
    public const byte StderrChannel = 2;
    public const byte StatusChannel = 3;
    public const byte ResizeChannel = 4;
    public const byte CloseChannel = 255;

    /// <summary>The negotiated subprotocol ("" for none), or null after refusing the handshake as the kubelet does.</summary>
    public static async Task<string?> NegotiateAsync(HttpContext context, bool enableV5)
    {
        string[] supported = enableV5
            ? ["v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io"]
            : ["v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io"];
        var protocol = ChannelWebSocket.Negotiate(context.WebSockets.WebSocketRequestedProtocols, supported);
        if (protocol is null) await PortForwardHandler.RefuseHandshakeAsync(context).ConfigureAwait(false);
        return protocol;
    }

    /// <summary>Completes the upgrade with <paramref name="protocol"/> from <see cref="NegotiateAsync"/>.</summary>
    public static async Task<ChannelWebSocket> AcceptAsync(HttpContext context, string protocol)
    {
        var ws = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = protocol.Length == 0 ? null : protocol,
            KeepAliveInterval = TimeSpan.Zero,
        }).ConfigureAwait(false);
        return new ChannelWebSocket(ws, protocol.Contains("base64", StringComparison.Ordinal));
    }

    /// <summary>channel.k8s.io (v1) and its base64 form: no status on channel 3.</summary>
    public static bool IsV1(string protocol) => protocol is "" or "channel.k8s.io" or "base64.channel.k8s.io";

    /// <summary>v5.channel.k8s.io: the client may close stdin with [255, 0].</summary>
    public static bool IsV5(string protocol) => protocol == "v5.channel.k8s.io";
}
