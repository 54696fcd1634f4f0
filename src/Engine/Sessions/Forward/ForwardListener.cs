using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Sessions.Forward;

/// <summary>
/// One local listener of a Forward session: each accepted connection becomes a port-forward to a ready pod behind the
/// Service (the next ready pod when one refuses), relayed both ways. Owns its accept loop and every connection;
/// <see cref="DisposeAsync"/> closes them all.
/// </summary>
public sealed class ForwardListener : IAsyncDisposable
{
    private readonly KubeClient _client;
    private readonly string _namespace;
    private readonly string _service;
    private readonly ServicePort _port;
    private readonly ServiceBackends _backends;
    private readonly TimeSpan _openTimeout;
    private readonly IKtOutput _output;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _cts = new();
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private Task? _acceptLoop;
    private long _nextConnection;
    private int _served;

    private ForwardListener(KubeClient client, string ns, string service, ServicePort port, ServiceBackends backends, TimeSpan openTimeout,
        IKtOutput output, Socket socket)
    {
        _client = client;
        _namespace = ns;
        _service = service;
        _port = port;
        _backends = backends;
        _openTimeout = openTimeout;
        _output = output;
        _socket = socket;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
    }

    /// <summary>Where it listens (the real port when 0 was asked for).</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>How many connections were relayed to a pod.</summary>
    public int Served => Volatile.Read(ref _served);

    /// <summary>Binds 127.0.0.1:<paramref name="localPort"/>; a port in use is <see cref="ForwardErrors.PortInUse"/>.</summary>
    public static ForwardListener Bind(KubeClient client, string ns, string service, ServicePort port, int localPort, ServiceBackends backends,
        TimeSpan openTimeout, IKtOutput output)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, localPort));
            socket.Listen(128);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new KtException(ForwardErrors.PortInUse, KtErrorCategory.ResourceBusy,
                $"Cannot listen on 127.0.0.1:{localPort} for {ns}/{service}:{port.Port}: {e.Message}. Choose another local port (<local>:{port.Port}).",
                e, localPort);
        }
        return new ForwardListener(client, ns, service, port, backends, openTimeout, output, socket);
    }

    /// <summary>Starts accepting. <paramref name="onFailure"/> hears of a listener that died (the session fails).</summary>
    public void Start(Action<Exception> onFailure)
    {
        _acceptLoop ??= AcceptLoopAsync(onFailure);
    }

    private async Task AcceptLoopAsync(Action<Exception> onFailure)
    {
        await Task.Yield();
        try
        {
            while (!_cts.IsCancellationRequested)
            {
                var accepted = await _socket.AcceptAsync(_cts.Token).ConfigureAwait(false);
                accepted.NoDelay = true;
                var id = Interlocked.Increment(ref _nextConnection);
                var connection = HandleAsync(id, accepted);
                _connections[id] = connection;
                // One that ended before it was added here was not removed by its own finally.
                if (connection.IsCompleted) _connections.TryRemove(id, out _);
            }
        }
        catch (OperationCanceledException) when (_cts.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException) when (_cts.IsCancellationRequested)
        {
        }
        catch (SocketException e) when (!_cts.IsCancellationRequested)
        {
            onFailure(new KtException("ForwardListenerFailed", KtErrorCategory.ConnectionError,
                $"The listener on {LocalEndPoint} for {_namespace}/{_service} stopped: {e.Message}", e, LocalEndPoint.Port));
        }
    }

    private async Task HandleAsync(long id, Socket local)
    {
        await Task.Yield();
        try
        {
            using (local)
            {
                var (pod, stream) = await OpenAsync(_cts.Token).ConfigureAwait(false);
                if (stream is null) return;
                await using (stream.ConfigureAwait(false))
                {
                    Interlocked.Increment(ref _served);
                    _output.Debug($"{LocalEndPoint} → pod {_namespace}/{pod}");
                    await PodRelay.RunAsync(local, stream, _cts.Token).ConfigureAwait(false);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or KtException)
        {
            // One connection's end (reset, pod gone mid-stream, session stopping) is not the session's failure.
            if (!_cts.IsCancellationRequested) _output.Debug($"Connection {id} on {LocalEndPoint} ended: {e.Message}");
        }
        finally
        {
            _connections.TryRemove(id, out _);
        }
    }

    /// <summary>A port-forward to the first ready pod that takes one; null (connection refused) when none does.</summary>
    private async Task<(string? Pod, Stream? Stream)> OpenAsync(CancellationToken ct)
    {
        var candidates = _backends.Candidates();
        var errors = new List<string>();
        foreach (var pod in candidates)
        {
            var name = pod.Metadata.Name!;
            if (ServiceBackends.TargetPort(_port, pod) is not { } target)
            {
                errors.Add($"{name}: no container port named '{_port.TargetPort}'");
                continue;
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_openTimeout);
            try
            {
                var stream = await _client.PortForwardAsync(name, target, _namespace, timeout.Token).ConfigureAwait(false);
                _backends.Served(name);
                return (name, stream);
            }
            catch (Exception e) when (e is KtException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
                _backends.Failed(name);
                errors.Add($"{name}: {e.Message}");
            }
        }
        _output.Warning(candidates.Count == 0
            ? $"A connection to {LocalEndPoint} was refused: Service {_namespace}/{_service} has no ready pod."
            : $"A connection to {LocalEndPoint} was refused: no ready pod of {_namespace}/{_service} accepted it ({string.Join("; ", errors)}).");
        return (null, null);
    }

    public async ValueTask DisposeAsync()
    {
        if (_cts.IsCancellationRequested) return;
        await _cts.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
        _cts.Dispose();
    }
}
