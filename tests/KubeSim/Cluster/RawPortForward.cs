using System.Buffers.Binary;
using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace KtConnect.KubeSim.Cluster;

/// <summary>
/// A minimal port-forward client for tests (one port, v4.channel.k8s.io over a WebSocket to
/// pods/&lt;pod&gt;/portforward): what `kubectl port-forward` does, without any engine code. The server first sends
/// the port number on the data and the error channel; then channel 0 carries the bytes, channel 1 error text.
/// </summary>
public sealed class RawPortForward : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _prefixesSeen;

    private RawPortForward(ClientWebSocket socket) => _socket = socket;

    public static async Task<RawPortForward> OpenAsync(string serverUrl, string token, X509Certificate2 ca, string @namespace, string pod, int port,
        CancellationToken cancellationToken = default)
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("v4.channel.k8s.io");
        socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        socket.Options.RemoteCertificateValidationCallback = TrustOnly(ca);
        var uri = new Uri(serverUrl.Replace("https://", "wss://", StringComparison.Ordinal).TrimEnd('/')
            + $"/api/v1/namespaces/{@namespace}/pods/{pod}/portforward?ports={port}");
        try
        {
            await socket.ConnectAsync(uri, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new RawPortForward(socket);
    }

    /// <summary>Certificate validation that trusts exactly the cluster CA (and checks the name).</summary>
    public static RemoteCertificateValidationCallback TrustOnly(X509Certificate2 ca) => (_, certificate, _, errors) =>
    {
        if (certificate is null) return false;
        if (errors == SslPolicyErrors.None) return true;
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var cert = new X509Certificate2(certificate);
        return chain.Build(cert);
    };

    /// <summary>The next bytes from the pod's port; empty when the stream ended. Error-channel text throws.</summary>
    public async Task<byte[]> ReadAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var ms = new MemoryStream();
            WebSocketReceiveResult r;
            do
            {
                r = await _socket.ReceiveAsync(_buffer, cancellationToken).ConfigureAwait(false);
                if (r.MessageType == WebSocketMessageType.Close) return [];
                ms.Write(_buffer, 0, r.Count);
            }
            while (!r.EndOfMessage);
            var frame = ms.ToArray();
            if (frame.Length == 0) continue;
            var data = frame.AsSpan(1);
            // The first frame on each channel is the 2-byte little-endian port number.
            if (_prefixesSeen < 2 && data.Length == 2 && frame[0] <= 1)
            {
                _ = BinaryPrimitives.ReadUInt16LittleEndian(data);
                _prefixesSeen++;
                continue;
            }
            if (frame[0] == 1) throw new IOException("port-forward error: " + Encoding.UTF8.GetString(data));
            if (frame[0] == 0) return data.ToArray();
        }
    }

    /// <summary>Reads until <paramref name="predicate"/> holds for everything read so far (or the stream ends).</summary>
    public async Task<string> ReadUntilAsync(Func<string, bool> predicate, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        while (!predicate(text.ToString()))
        {
            var chunk = await ReadAsync(cancellationToken).ConfigureAwait(false);
            if (chunk.Length == 0) break;
            text.Append(Encoding.UTF8.GetString(chunk));
        }
        return text.ToString();
    }

    public Task SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        var frame = new byte[data.Length + 1];
        data.CopyTo(frame.AsMemory(1));
        return _socket.SendAsync(frame, WebSocketMessageType.Binary, true, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            if (_socket.State == WebSocketState.Open)
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            // The server may have gone first.
        }
        _socket.Dispose();
    }
}
