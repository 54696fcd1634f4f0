using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Dns;

/// <summary>A response from an upstream resolver in a rented buffer; dispose returns the buffer.</summary>
internal sealed class UpstreamResponse(byte[] buffer, int length) : IDisposable
{
    private byte[]? _buffer = buffer;

    public int Length { get; } = length;

    public ReadOnlySpan<byte> Span => (_buffer ?? throw new ObjectDisposedException(nameof(UpstreamResponse))).AsSpan(0, Length);

    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null) ArrayPool<byte>.Shared.Return(b);
    }
}

/// <summary>
/// Relays queries to the machine's original resolvers exactly as the client sent them (only the id is ours):
/// UDP first, one shared socket per server with answers matched by id, the next server on timeout or refusal, and
/// TCP when an answer comes back truncated.
/// </summary>
internal sealed class UpstreamDnsClient : IAsyncDisposable
{
    private readonly Server[] _servers;
    private readonly TimeSpan _attemptTimeout;
    private readonly TimeSpan _totalTimeout;
    private readonly CancellationTokenSource _disposed = new();

    public UpstreamDnsClient(IReadOnlyList<IPEndPoint> servers, TimeSpan attemptTimeout, TimeSpan totalTimeout)
    {
        ArgumentNullException.ThrowIfNull(servers);
        _servers = servers.Select(s => new Server(s, _disposed.Token)).ToArray();
        _attemptTimeout = attemptTimeout;
        _totalTimeout = totalTimeout;
    }

    public bool HasServers => _servers.Length > 0;

    /// <summary>Returns the full answer (TCP retried when truncated) with the query's own id, or throws <see cref="DnsUpstreamException"/>.</summary>
    public async Task<UpstreamResponse> QueryAsync(ReadOnlyMemory<byte> query, int questionEnd, CancellationToken cancellationToken)
    {
        if (_servers.Length == 0) throw new DnsUpstreamException("DnsNoUpstream", "No upstream resolver is configured.");
        using var total = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        total.CancelAfter(_totalTimeout);
        Exception? last = null;
        foreach (var server in _servers)
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(total.Token);
            attempt.CancelAfter(_attemptTimeout);
            try
            {
                var response = await server.QueryUdpAsync(query, questionEnd, attempt.Token).ConfigureAwait(false);
                if ((response.Span[2] & 0x02) == 0) return response;
                response.Dispose();
                return await QueryTcpAsync(server.EndPoint, query, questionEnd, total.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                last = new TimeoutException($"{server.EndPoint} did not answer in time");
                if (total.IsCancellationRequested) break;
            }
            catch (Exception e) when (e is SocketException or IOException or DnsFormatException)
            {
                last = e;
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        throw new DnsUpstreamException("DnsUpstreamUnreachable", "No upstream resolver answered: " + last?.Message, last);
    }

    private static async Task<UpstreamResponse> QueryTcpAsync(IPEndPoint server, ReadOnlyMemory<byte> query, int questionEnd, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        var frame = ArrayPool<byte>.Shared.Rent(query.Length + 2);
        try
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)query.Length);
            query.Span.CopyTo(frame.AsSpan(2));
            await socket.SendAsync(frame.AsMemory(0, query.Length + 2), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var header = new byte[2];
        while (true)
        {
            await stream.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
            var length = BinaryPrimitives.ReadUInt16BigEndian(header);
            var buffer = ArrayPool<byte>.Shared.Rent(Math.Max((int)length, 1));
            var ok = false;
            try
            {
                await stream.ReadExactlyAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                ok = Matches(query.Span, questionEnd, buffer.AsSpan(0, length));
                if (ok) return new UpstreamResponse(buffer, length);
            }
            finally
            {
                if (!ok) ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>Same id, a response, and the same question bytes (case-insensitively): otherwise it is not ours.</summary>
    internal static bool Matches(ReadOnlySpan<byte> query, int questionEnd, ReadOnlySpan<byte> response)
    {
        if (response.Length < questionEnd || (response[2] & 0x80) == 0) return false;
        if (response[0] != query[0] || response[1] != query[1]) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(response[4..]) != 1) return false;
        return DnsNameCodec.EqualsIgnoreCase(response[DnsFlags.HeaderLength..questionEnd], query[DnsFlags.HeaderLength..questionEnd]);
    }

    public async ValueTask DisposeAsync()
    {
        await _disposed.CancelAsync().ConfigureAwait(false);
        foreach (var s in _servers) await s.DisposeAsync().ConfigureAwait(false);
        _disposed.Dispose();
    }

    /// <summary>One upstream server: a connected UDP socket, its receive loop and the queries waiting on it.</summary>
    private sealed class Server : IAsyncDisposable
    {
        private readonly ConcurrentDictionary<ushort, Pending> _pending = new();
        private readonly Socket _socket;
        private readonly Task _receiver;
        private readonly CancellationToken _stop;

        public Server(IPEndPoint endPoint, CancellationToken stop)
        {
            EndPoint = endPoint;
            _stop = stop;
            _socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _socket.Connect(endPoint);
            _receiver = Task.Run(ReceiveLoopAsync);
        }

        public IPEndPoint EndPoint { get; }

        public async Task<UpstreamResponse> QueryUdpAsync(ReadOnlyMemory<byte> query, int questionEnd, CancellationToken cancellationToken)
        {
            var pending = new Pending(questionEnd);
            ushort id;
            do id = (ushort)Random.Shared.Next(0, 65536);
            while (!_pending.TryAdd(id, pending));
            var packet = ArrayPool<byte>.Shared.Rent(query.Length);
            try
            {
                query.Span.CopyTo(packet);
                BinaryPrimitives.WriteUInt16BigEndian(packet, id);
                pending.Query = packet;
                await _socket.SendAsync(packet.AsMemory(0, query.Length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                using var reg = cancellationToken.Register(static p => ((Pending)p!).Completion.TrySetCanceled(), pending);
                var response = await pending.Completion.Task.ConfigureAwait(false);
                // Give the client's id back.
                BinaryPrimitives.WriteUInt16BigEndian(response.Buffer, BinaryPrimitives.ReadUInt16BigEndian(query.Span));
                return new UpstreamResponse(response.Buffer, response.Length);
            }
            finally
            {
                _pending.TryRemove(id, out _);
                pending.Query = null;
                ArrayPool<byte>.Shared.Return(packet);
            }
        }

        private async Task ReceiveLoopAsync()
        {
            var buffer = ArrayPool<byte>.Shared.Rent(DnsFlags.MaxMessageLength);
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    int n;
                    try
                    {
                        n = await _socket.ReceiveAsync(buffer, SocketFlags.None, _stop).ConfigureAwait(false);
                    }
                    catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset
                                                        or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
                    {
                        // ICMP unreachable: every query waiting on this server fails now instead of at its deadline.
                        foreach (var p in _pending.Values) p.Completion.TrySetException(e);
                        continue;
                    }
                    if (n < DnsFlags.HeaderLength) continue;
                    var id = BinaryPrimitives.ReadUInt16BigEndian(buffer);
                    if (!_pending.TryGetValue(id, out var pending)) continue;
                    var query = pending.Query;
                    if (query is null || !Matches(query, pending.QuestionEnd, buffer.AsSpan(0, n))) continue;
                    var copy = ArrayPool<byte>.Shared.Rent(n);
                    buffer.AsSpan(0, n).CopyTo(copy);
                    if (!pending.Completion.TrySetResult(new RawResponse(copy, n))) ArrayPool<byte>.Shared.Return(copy);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                foreach (var p in _pending.Values) p.Completion.TrySetException(e is SocketException ? e : new IOException("upstream socket closed", e));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _socket.Dispose();
            try
            {
                await _receiver.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The loop reports failures to the queries waiting on it; nothing else to observe.
            }
        }
    }

    private readonly record struct RawResponse(byte[] Buffer, int Length);

    private sealed class Pending(int questionEnd)
    {
        public int QuestionEnd { get; } = questionEnd;

        public byte[]? Query { get; set; }

        public TaskCompletionSource<RawResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
