using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace KtConnect.KubeSim.Cluster;

/// <summary>What an exec through the API server returned: stdout, stderr and the status (channel 3) JSON.</summary>
public sealed record RawExecResult(string Stdout, string Stderr, string Status);

/// <summary>A minimal exec client for tests: v4.channel.k8s.io over a WebSocket to pods/&lt;pod&gt;/exec, no stdin, no TTY.</summary>
public static class RawExec
{
    public static async Task<RawExecResult> RunAsync(string serverUrl, string token, X509Certificate2 ca, string @namespace, string pod,
        IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        using var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("v4.channel.k8s.io");
        socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        socket.Options.RemoteCertificateValidationCallback = RawPortForward.TrustOnly(ca);
        var query = string.Join("&", command.Select(c => "command=" + Uri.EscapeDataString(c))) + "&stdout=true&stderr=true";
        var uri = new Uri(serverUrl.Replace("https://", "wss://", StringComparison.Ordinal).TrimEnd('/')
            + $"/api/v1/namespaces/{@namespace}/pods/{pod}/exec?{query}");
        await socket.ConnectAsync(uri, cancellationToken).ConfigureAwait(false);
        var outputs = new[] { new MemoryStream(), new MemoryStream(), new MemoryStream(), new MemoryStream() };
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        while (true)
        {
            var r = await socket.ReceiveAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (r.MessageType == WebSocketMessageType.Close) break;
            message.Write(buffer, 0, r.Count);
            if (!r.EndOfMessage) continue;
            var frame = message.ToArray();
            message.SetLength(0);
            if (frame.Length > 0 && frame[0] <= 3) outputs[frame[0]].Write(frame, 1, frame.Length - 1);
        }
        return new RawExecResult(Encoding.UTF8.GetString(outputs[1].ToArray()), Encoding.UTF8.GetString(outputs[2].ToArray()),
            Encoding.UTF8.GetString(outputs[3].ToArray()));
    }
}
