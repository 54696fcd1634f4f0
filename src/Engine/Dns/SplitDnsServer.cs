using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KtConnect.Engine.Dns;

/// <summary>
/// The local split-DNS server: UDP and TCP on one loopback address and port. Cluster names are answered by the
/// cluster resolver over the caller's stream, everything else by the machine's original resolvers (see
/// <see cref="DnsRouter"/>). Owns its loops; <see cref="DisposeAsync"/> stops them and waits for them.
/// </summary>
public sealed class SplitDnsServer : IAsyncDisposable
{
    private readonly SplitDnsResolver _resolver;
    private readonly Socket _udp;
    private readonly Socket _tcp;
    private readonly ILogger _logger;
    private readonly SplitDnsOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;

    private SplitDnsServer(SplitDnsOptions options, SplitDnsResolver resolver, Socket udp, Socket tcp, ILogger logger)
    {
        _options = options;
        _resolver = resolver;
        _udp = udp;
        _tcp = tcp;
        _logger = logger;
        EndPoint = (IPEndPoint)udp.LocalEndPoint!;
    }

    /// <summary>Where the server listens (the same port for UDP and TCP).</summary>
    public IPEndPoint EndPoint { get; }

    public DnsServerStatistics Statistics => _resolver.Statistics;

    /// <summary>Streams opened to the cluster resolver so far (1 + reconnects).</summary>
    public int ClusterConnectionsOpened => _resolver.Cluster.ConnectionsOpened;

    /// <summary>Drops every cached answer.</summary>
    public void ClearCache() => _resolver.Cache.Clear();

    /// <summary>Binds UDP and TCP on <see cref="SplitDnsOptions.ListenEndPoint"/> and starts serving.</summary>
    public static SplitDnsServer Start(SplitDnsOptions options, IClusterDnsTransport cluster, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cluster);
        if (options.Upstreams.Any(u => u.Equals(options.ListenEndPoint)))
            throw new KtException("DnsUpstreamIsSelf", KtErrorCategory.InvalidArgument,
                $"The upstream resolver list contains the server's own address {options.ListenEndPoint}; that would loop.");
        var (udp, tcp) = Bind(options.ListenEndPoint);
        var resolver = new SplitDnsResolver(options, cluster);
        var server = new SplitDnsServer(options, resolver, udp, tcp, logger ?? NullLogger.Instance);
        // Two receivers on the one socket: a cached answer is computed inline, so a second loop uses a second core.
        server._loops.Add(Task.Run(server.UdpLoopAsync));
        server._loops.Add(Task.Run(server.UdpLoopAsync));
        server._loops.Add(Task.Run(server.TcpAcceptLoopAsync));
        return server;
    }

    private static (Socket Udp, Socket Tcp) Bind(IPEndPoint requested)
    {
        // Port 0: the UDP socket picks the port and TCP must get the same one; retry when TCP finds it taken.
        for (var attempt = 0; ; attempt++)
        {
            var udp = new Socket(requested.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            var tcp = new Socket(requested.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                udp.Bind(requested);
                var port = ((IPEndPoint)udp.LocalEndPoint!).Port;
                tcp.Bind(new IPEndPoint(requested.Address, port));
                tcp.Listen(128);
                return (udp, tcp);
            }
            catch (SocketException e)
            {
                udp.Dispose();
                tcp.Dispose();
                if (requested.Port != 0 || attempt >= 20)
                {
                    throw new KtException(e.SocketErrorCode == SocketError.AccessDenied ? "DnsServerAccessDenied" : "DnsServerAddressInUse",
                        e.SocketErrorCode == SocketError.AccessDenied ? KtErrorCategory.PermissionDenied : KtErrorCategory.ResourceBusy,
                        $"Cannot listen for DNS on {requested}: {e.Message}", e, requested);
                }
            }
        }
    }

    private async Task UdpLoopAsync()
    {
        var receive = GC.AllocateUninitializedArray<byte>(DnsFlags.MaxMessageLength, pinned: true);
        var send = GC.AllocateUninitializedArray<byte>(DnsFlags.MaxMessageLength, pinned: true);
        var from = new SocketAddress(_udp.AddressFamily);
        while (!_stop.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await _udp.ReceiveFromAsync(receive, SocketFlags.None, from, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionRefused or SocketError.MessageSize)
            {
                continue; // a client's ICMP error or an oversized datagram: not ours to fail on
            }
            try
            {
                if (_resolver.TryAnswerNow(receive.AsSpan(0, n), udp: true, send, out var length))
                {
                    // A datagram to a local client does not block: the synchronous send saves a task per cached answer.
                    if (length > 0) _udp.SendTo(send.AsSpan(0, length), SocketFlags.None, from);
                    continue;
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                continue;
            }
            var query = ArrayPool<byte>.Shared.Rent(n);
            receive.AsSpan(0, n).CopyTo(query);
            var client = new SocketAddress(from.Family, from.Size);
            from.Buffer.CopyTo(client.Buffer);
            Interlocked.Increment(ref _inFlight);
            _ = ResolveUdpAsync(query, n, client);
        }
    }

    /// <summary>Resolves one UDP query in the background; never throws (the server is the owner and logs failures).</summary>
    private async Task ResolveUdpAsync(byte[] query, int length, SocketAddress client)
    {
        var answer = SplitDnsResolver.RentAnswerBuffer();
        try
        {
            var n = await _resolver.ResolveAsync(query.AsMemory(0, length), udp: true, answer, _stop.Token).ConfigureAwait(false);
            if (n > 0) await _udp.SendToAsync(answer.AsMemory(0, n), SocketFlags.None, client, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _logger.LogWarning(e, "DNS query failed unexpectedly");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(query);
            ArrayPool<byte>.Shared.Return(answer);
            Done();
        }
    }

    /// <summary>One background answer or TCP client finished; the last one after stop releases <see cref="DisposeAsync"/>.</summary>
    private void Done()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && _stop.IsCancellationRequested) _drained.TrySetResult();
    }

    private async Task TcpAcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _tcp.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                break;
            }
            catch (SocketException)
            {
                continue;
            }
            Interlocked.Increment(ref _inFlight);
            _ = ServeTcpAsync(client);
        }
    }

    /// <summary>
    /// One TCP client (RFC 7766): length-prefixed queries, answered concurrently and possibly out of order, up to
    /// <see cref="SplitDnsOptions.MaxTcpPipeline"/> at once; an idle connection is closed after 30 seconds.
    /// </summary>
    private async Task ServeTcpAsync(Socket socket)
    {
        var writeLock = new SemaphoreSlim(1, 1);
        var window = new SemaphoreSlim(_options.MaxTcpPipeline, _options.MaxTcpPipeline);
        var running = new List<Task>();
        var stream = new NetworkStream(socket, ownsSocket: true);
        var header = new byte[2];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                using (var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
                {
                    idle.CancelAfter(TimeSpan.FromSeconds(30));
                    var got = await stream.ReadAtLeastAsync(header, 2, throwOnEndOfStream: false, idle.Token).ConfigureAwait(false);
                    if (got < 2) break;
                }
                var length = BinaryPrimitives.ReadUInt16BigEndian(header);
                var query = ArrayPool<byte>.Shared.Rent(Math.Max(1, (int)length));
                await stream.ReadExactlyAsync(query.AsMemory(0, length), _stop.Token).ConfigureAwait(false);
                await window.WaitAsync(_stop.Token).ConfigureAwait(false);
                running.RemoveAll(t => t.IsCompleted);
                running.Add(AnswerTcpAsync(stream, writeLock, window, query, length));
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException or EndOfStreamException)
        {
        }
        finally
        {
            try
            {
                await Task.WhenAll(running).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _logger.LogDebug(e, "DNS TCP answer failed");
            }
            await stream.DisposeAsync().ConfigureAwait(false);
            writeLock.Dispose();
            window.Dispose();
            Done();
        }
    }

    private async Task AnswerTcpAsync(NetworkStream stream, SemaphoreSlim writeLock, SemaphoreSlim window, byte[] query, int length)
    {
        var answer = SplitDnsResolver.RentAnswerBuffer();
        try
        {
            int n;
            if (!_resolver.TryAnswerNow(query.AsSpan(0, length), udp: false, answer.AsSpan(2), out n))
                n = await _resolver.ResolveAsync(query.AsMemory(0, length), udp: false, answer.AsMemory(2), _stop.Token).ConfigureAwait(false);
            if (n == 0) return;
            BinaryPrimitives.WriteUInt16BigEndian(answer, (ushort)n);
            await writeLock.WaitAsync(_stop.Token).ConfigureAwait(false);
            try
            {
                await stream.WriteAsync(answer.AsMemory(0, n + 2), _stop.Token).ConfigureAwait(false);
            }
            finally
            {
                writeLock.Release();
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(query);
            ArrayPool<byte>.Shared.Return(answer);
            window.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        _udp.Dispose();
        _tcp.Dispose();
        await Task.WhenAll(_loops).ConfigureAwait(false);
        // Background answers end promptly once the stop token fires; wait for them, with a bound.
        if (Volatile.Read(ref _inFlight) == 0) _drained.TrySetResult();
        try
        {
            await _drained.Task.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _logger.LogWarning("DNS server stopped with answers still in flight");
        }
        await _resolver.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
