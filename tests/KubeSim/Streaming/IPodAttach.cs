using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace KtConnect.KubeSim.Streaming;

/// <summary>An attach request as the kubelet receives it (<see cref="Container"/> already defaulted by the API server).</summary>
public sealed record AttachRequest(string Namespace, string Pod, string Container, bool Stdin, bool Stdout, bool Stderr, bool Tty);

/// <summary>
/// Where pods/attach joins a container's main process. The simulated node plugs in here (<c>NodePodBridge</c>); the bare
/// API server has no main processes, so without <c>KubeSimOptions.PodAttach</c> every attach gets the kubelet's
/// "container ... not found" answer. Throw <see cref="AttachStartException"/> when the container does not run.
/// </summary>
public interface IPodAttach
{
    Task<IAttachSession> AttachAsync(AttachRequest request, JsonObject pod, CancellationToken cancellationToken);
}

/// <summary>
/// One attacher. Output channels carry what the main process writes from now on and complete when it ends or this
/// attacher is detached; null when not requested (stderr also with a tty). Dispose detaches.
/// </summary>
public interface IAttachSession : IAsyncDisposable
{
    /// <summary>The container runs on a terminal (its spec's tty, whatever the request said).</summary>
    bool Tty { get; }

    ChannelReader<byte[]>? Stdout { get; }

    ChannelReader<byte[]>? Stderr { get; }

    /// <summary>Input for the main process (dropped unless the container has stdin: true).</summary>
    Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>The client's input ended (SPDY FIN of the stdin stream, v5 close of channel 0).</summary>
    void EndStdin();

    Task ResizeAsync(int width, int height, CancellationToken cancellationToken);
}

/// <summary>
/// The container is not running: the kubelet answers the upgrade with a 500 and this text
/// (<c>container &lt;c&gt; not found in pod &lt;pod&gt;_&lt;namespace&gt;</c>, from Kubelet.GetAttach).
/// </summary>
public sealed class AttachStartException(string message, Exception? inner = null)
    : Engine.KtException("KubeSimAttachFailed", Engine.KtErrorCategory.InvalidOperation, message, inner)
{
    /// <summary>The kubelet's text for a container that is not among the running ones.</summary>
    public static AttachStartException NotRunning(AttachRequest request, Exception? inner = null) =>
        new($"container {request.Container} not found in pod {request.Pod}_{request.Namespace}", inner);
}

/// <summary>The bare server's attach: there is no main process to join.</summary>
internal sealed class NoMainProcessAttach : IPodAttach
{
    public Task<IAttachSession> AttachAsync(AttachRequest request, JsonObject pod, CancellationToken cancellationToken) =>
        throw AttachStartException.NotRunning(request);
}
