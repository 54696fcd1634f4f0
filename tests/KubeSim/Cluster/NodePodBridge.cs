using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Streaming;

namespace KtConnect.KubeSim.Cluster;

/// <summary>
/// The API server's port-forward and exec seams, served by a <see cref="SimNode"/>: a forwarded connection is a TCP
/// connection to 127.0.0.1:port inside the pod's namespace, an exec runs the argv there with the pod's environment,
/// an attach joins the pod's main process (<see cref="SimNode.Attach"/>).
/// </summary>
public sealed class NodePodBridge(SimNode node) : IPodNetwork, IPodExec, IPodAttach
{
    public Task<IAttachSession> AttachAsync(AttachRequest request, JsonObject pod, CancellationToken cancellationToken)
    {
        try
        {
            return Task.FromResult<IAttachSession>(new NodeAttach(node.Attach(request.Namespace + "/" + request.Pod, request.Stdin, request.Stdout, request.Stderr)));
        }
        catch (KtException e) when (e.ErrorId is "SimPodNotFound" or "SimContainerNotRunning")
        {
            throw AttachStartException.NotRunning(request, e);
        }
    }

    private sealed class NodeAttach(SimAttachment attachment) : IAttachSession
    {
        public bool Tty => attachment.Tty;

        public System.Threading.Channels.ChannelReader<byte[]>? Stdout => attachment.Stdout;

        public System.Threading.Channels.ChannelReader<byte[]>? Stderr => attachment.Stderr;

        public Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => attachment.WriteStdinAsync(data, cancellationToken);

        public void EndStdin() => attachment.EndStdin();

        public Task ResizeAsync(int width, int height, CancellationToken cancellationToken) => attachment.ResizeAsync(width, height, cancellationToken);

        public ValueTask DisposeAsync() => attachment.DisposeAsync();
    }

    public async Task<Stream> ConnectAsync(string @namespace, string podName, JsonObject pod, int port, CancellationToken cancellationToken)
    {
        try
        {
            return await node.ConnectAsync(@namespace + "/" + podName, port, cancellationToken).ConfigureAwait(false);
        }
        catch (KtException e) when (e.ErrorId is "SimPortForwardFailed" or "SimPodNotFound")
        {
            throw new PodConnectException(
                $"error forwarding port {port} to pod {podName}, uid : failed to execute portforward in network namespace: failed to connect to localhost:{port} inside namespace: dial tcp 127.0.0.1:{port}: connect: connection refused", e);
        }
    }

    public Task<IExecProcess> StartAsync(ExecRequest request, JsonObject pod, CancellationToken cancellationToken)
    {
        if (request.Command.Count == 0) throw new ExecStartException("error executing command in container: command is empty");
        SimExecProcess process;
        try
        {
            process = node.StartExec(request.Namespace + "/" + request.Pod, request.Command);
        }
        catch (KtException e) when (e.ErrorId is "SimExecNotFound" or "SimExecEmpty" or "SimPodNotFound")
        {
            var cmd = request.Command[0];
            throw new ExecStartException(
                $"error executing command in container: failed to exec in container: failed to start exec \"{Guid.NewGuid():N}\": OCI runtime exec failed: exec failed: unable to start container process: exec: \"{cmd}\": executable file not found in $PATH: unknown",
                e);
        }
        if (!request.Stdin) process.Stdin.Close();
        return Task.FromResult<IExecProcess>(new NodeExec(process, request));
    }

    private sealed class NodeExec(SimExecProcess process, ExecRequest request) : IExecProcess
    {
        public Stream? Stdin => request.Stdin ? process.Stdin : null;

        public Stream? Stdout => process.Stdout;

        public Stream? Stderr => process.Stderr;

        public Task<int> WaitForExitAsync(CancellationToken cancellationToken) => process.WaitForExitAsync(cancellationToken);

        public ValueTask DisposeAsync() => process.DisposeAsync();
    }
}
