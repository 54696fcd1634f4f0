using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Streaming;

/// <summary>
/// Where a port-forward's bytes go: a connection to a port of a pod. KubeSim's node runtime
/// plugs in here (connect inside the pod's network namespace); the default maps pods to local TCP endpoints.
/// A refused connection throws <see cref="PodConnectException"/> whose message goes on the error channel.
/// </summary>
public interface IPodNetwork
{
    /// <summary>Connects to <paramref name="port"/> of the pod; <paramref name="pod"/> is the stored object (read-only).</summary>
    Task<Stream> ConnectAsync(string @namespace, string podName, JsonObject pod, int port, CancellationToken cancellationToken);
}

/// <summary>A port-forward target that cannot be reached; the message is what the error channel carries.</summary>
public sealed class PodConnectException(string message, Exception? inner = null)
    : Engine.KtException("KubeSimPodConnectFailed", Engine.KtErrorCategory.ConnectionError, message, inner);

/// <summary>
/// Default <see cref="IPodNetwork"/>: a pod's port is a local TCP endpoint. Either the test registered one with
/// <see cref="Map"/> (pod port → any IP endpoint), or the pod carries the annotation
/// <c>kubesim.ktconnect.io/host</c> (an IP address, usually 127.0.0.1) meaning "this pod's ports are on that host".
/// </summary>
public sealed class LocalPodNetwork : IPodNetwork
{
    public const string HostAnnotation = "kubesim.ktconnect.io/host";

    private readonly ConcurrentDictionary<(string Ns, string Pod, int Port), IPEndPoint> _map = new();

    /// <summary>Routes connections to <paramref name="port"/> of pod ns/name to <paramref name="target"/>.</summary>
    public void Map(string @namespace, string podName, int port, IPEndPoint target) => _map[(@namespace, podName, port)] = target;

    public void Unmap(string @namespace, string podName, int port) => _map.TryRemove((@namespace, podName, port), out _);

    public async Task<Stream> ConnectAsync(string @namespace, string podName, JsonObject pod, int port, CancellationToken cancellationToken)
    {
        IPEndPoint? target = null;
        if (_map.TryGetValue((@namespace, podName, port), out var mapped)) target = mapped;
        else if (pod["metadata"]?["annotations"]?[HostAnnotation]?.GetValue<string>() is { } host && IPAddress.TryParse(host, out var ip))
        {
            target = new IPEndPoint(ip, port);
        }
        if (target is null)
        {
            throw new PodConnectException(
                $"error forwarding port {port} to pod {podName}, uid : failed to execute portforward in network namespace: failed to connect to localhost:{port} inside namespace: dial tcp 127.0.0.1:{port}: connect: connection refused");
        }
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new PodConnectException(
                $"error forwarding port {port} to pod {podName}, uid : failed to execute portforward in network namespace: failed to connect to localhost:{port} inside namespace: dial tcp {target}: connect: connection refused", e);
        }
        return new NetworkStream(socket, ownsSocket: true);
    }
}
