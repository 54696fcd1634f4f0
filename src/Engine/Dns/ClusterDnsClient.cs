using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Dns;

/// <summary>
/// Opens a byte stream to the cluster's DNS Service. In the product this is an SSH <c>direct-tcpip</c> channel to
/// <c>kube-dns:53</c> through the shadow pod; tests use a plain TCP connection.
/// </summary>
public interface IClusterDnsTransport
{
    ValueTask<Stream> OpenAsync(CancellationToken cancellationToken);
}

/// <summary>A TCP connection to a DNS server: the test and benchmark transport, and a direct one for pod-network setups.</summary>
public sealed class TcpClusterDnsTransport(IPEndPoint server) : IClusterDnsTransport
{
    public IPEndPoint Server { get; } = server;

    public async ValueTask<Stream> OpenAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(Server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(Server, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>The cluster resolver failed to answer in time or its stream broke; the server turns it into SERVFAIL.</summary>
public sealed class DnsUpstreamException(string errorId, string message, Exception? inner = null)
    : KtException(errorId, KtErrorCategory.ConnectionError, message, inner);

/// <summary>
/// DNS-over-TCP to the cluster resolver over one long-lived stream (RFC 7766): queries are pipelined with ids of
/// our own and answers matched by id in any order; every query has a deadline; a broken stream fails the queries
/// in flight and the next query opens a new one.
/// </summary>
public sealed class ClusterDnsClient : IAsyncDisposable
{
    private readonly IClusterDnsTransport _transport;
    private readonly TimeSpan _timeout;
    private readonly SemaphoreSlim[] _connectLocks;
    private readonly CancellationTokenSource _disposed = new();
    private readonly Connection?[] _slots;
    private int _next;
    private int _opened;

    /// <summary>How long a failed stream's reader is given to read what the server sent before it closed.</summary>
    private static readonly TimeSpan ReaderGrace = TimeSpan.FromSeconds(1);

    /// <param name="transport">Opens one stream to the cluster resolver.</param>
    /// <param name="timeout">Deadline of each question, reconnects included.</param>
    /// <param name="streams">
    /// Streams used side by side (queries are spread over them): while one is being reopened (servers close streams
    /// after a number of queries; dnsmasq after 100) the others keep answering.
    /// </param>
    public ClusterDnsClient(IClusterDnsTransport transport, TimeSpan timeout, int streams = 1)
    {
        _transport = transport ?? throw new ArgumentNullException(nameof(transport));
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        _timeout = timeout;
        _slots = new Connection?[streams];
        _connectLocks = Enumerable.Range(0, streams).Select(_ => new SemaphoreSlim(1, 1)).ToArray();
    }

    /// <summary>How many streams were opened (reconnects + 1); for tests and diagnostics.</summary>
    public int ConnectionsOpened => Volatile.Read(ref _opened);

    /// <summary>Sends one question and returns the parsed answer, or throws <see cref="DnsUpstreamException"/>.</summary>
    public async Task<DnsMessage> QueryAsync(DnsName name, DnsType type, DnsClass cls, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        deadline.CancelAfter(_timeout);
        Connection? connection = null;
        var slot = (int)((uint)Interlocked.Increment(ref _next) % (uint)_slots.Length);
        try
        {
            // A server may close a stream at any time (RFC 7766 §6.2.3; dnsmasq does after 100 questions): questions it
            // left unanswered are asked again on a fresh stream, within the same deadline. A stream that answered
            // others is a server taking turns, not failing, so only streams that answered nothing count against the
            // retries (with more questions in flight than a stream answers, one question may need many streams).
            // A refused connect is final.
            for (var fruitless = 0; ;)
            {
                connection = await GetConnectionAsync(slot, deadline.Token).ConfigureAwait(false);
                try
                {
                    return await connection.QueryAsync(name, type, cls, deadline.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
                {
                    // Judged once its reader has read what the server sent before it closed: our write may have met the
                    // close first, with the answers to others still to be read. A reader that does not end soon (a
                    // transport whose writes broke while its reads wait) is not waited for longer.
                    using (var grace = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token))
                    {
                        grace.CancelAfter(ReaderGrace);
                        await connection.Ended.WaitAsync(grace.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    }
                    deadline.Token.ThrowIfCancellationRequested();
                    if (!connection.AnsweredAny && ++fruitless >= 4) throw;
                    DropConnection(slot, connection);
                    slot = (slot + 1) % _slots.Length;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // A stream that answers nothing within a whole deadline is presumed dead.
            if (connection is not null && connection.SilentSince(_timeout)) DropConnection(slot, connection);
            throw new DnsUpstreamException("DnsClusterTimeout", $"The cluster DNS did not answer {name} {type} within {_timeout.TotalSeconds:0.#}s.");
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            if (connection is not null) DropConnection(slot, connection);
            throw new DnsUpstreamException("DnsClusterUnreachable", $"The cluster DNS is unreachable: {e.Message}", e);
        }
        catch (KtException e) when (e is not DnsUpstreamException and not DnsFormatException)
        {
            throw new DnsUpstreamException("DnsClusterUnreachable", $"The cluster DNS is unreachable: {e.Message}", e);
        }
    }

    private async Task<Connection> GetConnectionAsync(int slot, CancellationToken cancellationToken)
    {
        var c = Volatile.Read(ref _slots[slot]);
        if (c is { IsAlive: true }) return c;
        await _connectLocks[slot].WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            c = Volatile.Read(ref _slots[slot]);
            if (c is { IsAlive: true }) return c;
            var stream = await _transport.OpenAsync(cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _opened);
            c = new Connection(stream);
            Volatile.Write(ref _slots[slot], c);
            return c;
        }
        finally
        {
            _connectLocks[slot].Release();
        }
    }

    private void DropConnection(int slot, Connection c)
    {
        Interlocked.CompareExchange(ref _slots[slot], null, c);
        c.Fail(new IOException("cluster DNS stream closed"));
    }

    public async ValueTask DisposeAsync()
    {
        await _disposed.CancelAsync().ConfigureAwait(false);
        for (var i = 0; i < _slots.Length; i++)
        {
            var c = Interlocked.Exchange(ref _slots[i], null);
            if (c is not null) await c.DisposeAsync().ConfigureAwait(false);
        }
        foreach (var l in _connectLocks) l.Dispose();
        _disposed.Dispose();
    }

    /// <summary>One stream: a writer lock, a reader loop, and the table of queries in flight.</summary>
    private sealed class Connection : IAsyncDisposable
    {
        private readonly Stream _stream;
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private readonly ConcurrentDictionary<ushort, Pending> _pending = new();
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _reader;
        private long _lastReceive = Environment.TickCount64;
        private volatile bool _dead;
        private volatile bool _answeredAny;

        public Connection(Stream stream)
        {
            _stream = stream;
            _reader = Task.Run(ReadLoopAsync);
        }

        public bool IsAlive => !_dead;

        /// <summary>Completes when the reader has stopped: the stream ended, failed, or was closed by us.</summary>
        public Task Ended => _reader;

        /// <summary>The stream answered at least one question.</summary>
        public bool AnsweredAny => _answeredAny;

        public bool SilentSince(TimeSpan span) => Environment.TickCount64 - Interlocked.Read(ref _lastReceive) >= (long)span.TotalMilliseconds;

        public async Task<DnsMessage> QueryAsync(DnsName name, DnsType type, DnsClass cls, CancellationToken cancellationToken)
        {
            var pending = new Pending(name, type, cls);
            ushort id;
            do id = (ushort)Random.Shared.Next(0, 65536);
            while (!_pending.TryAdd(id, pending));
            if (_dead)
            {
                _pending.TryRemove(id, out _);
                throw new IOException("cluster DNS stream closed");
            }
            var buffer = ArrayPool<byte>.Shared.Rent(2 + DnsFlags.HeaderLength + DnsFlags.MaxNameLength + 4);
            try
            {
                var query = DnsMessage.CreateQuery(id, name, type);
                query.Questions[0] = new DnsQuestion(name, type, cls);
                var n = query.Write(buffer.AsSpan(2));
                BinaryPrimitives.WriteUInt16BigEndian(buffer, (ushort)n);
                await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await _stream.WriteAsync(buffer.AsMemory(0, 2 + n), cancellationToken).ConfigureAwait(false);
                    await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    _writeLock.Release();
                }
                using var reg = cancellationToken.Register(static p => ((Pending)p!).Completion.TrySetCanceled(), pending);
                return await pending.Completion.Task.ConfigureAwait(false);
            }
            finally
            {
                _pending.TryRemove(id, out _);
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private async Task ReadLoopAsync()
        {
            var buffer = ArrayPool<byte>.Shared.Rent(DnsFlags.MaxMessageLength + 2);
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    await _stream.ReadExactlyAsync(buffer.AsMemory(0, 2), _stop.Token).ConfigureAwait(false);
                    var length = BinaryPrimitives.ReadUInt16BigEndian(buffer);
                    await _stream.ReadExactlyAsync(buffer.AsMemory(0, length), _stop.Token).ConfigureAwait(false);
                    Interlocked.Exchange(ref _lastReceive, Environment.TickCount64);
                    if (length < DnsFlags.HeaderLength) continue;
                    var id = BinaryPrimitives.ReadUInt16BigEndian(buffer);
                    if (!_pending.TryGetValue(id, out var pending)) continue; // late answer to a query that timed out
                    DnsMessage answer;
                    try
                    {
                        answer = DnsMessage.Parse(buffer.AsSpan(0, length));
                    }
                    catch (DnsFormatException e)
                    {
                        pending.Completion.TrySetException(new DnsUpstreamException("DnsClusterMalformedAnswer",
                            "The cluster DNS sent a malformed answer: " + e.Message, e));
                        continue;
                    }
                    if (!answer.IsResponse || answer.Questions.Count != 1 || answer.Questions[0].Name != pending.Name
                        || answer.Questions[0].Type != pending.Type || answer.Questions[0].Class != pending.Class)
                        continue; // not the answer to our question: keep waiting until the deadline
                    _answeredAny = true;
                    pending.Completion.TrySetResult(answer);
                }
            }
            catch (Exception e) when (e is IOException or EndOfStreamException or OperationCanceledException or ObjectDisposedException or SocketException)
            {
                Fail(e is OperationCanceledException ? new IOException("cluster DNS stream closed") : e);
            }
            finally
            {
                _dead = true;
                ArrayPool<byte>.Shared.Return(buffer);
                Fail(new IOException("cluster DNS stream closed"));
            }
        }

        public void Fail(Exception e)
        {
            _dead = true;
            foreach (var p in _pending.Values)
            {
                p.Completion.TrySetException(e is IOException ? e : new IOException(e.Message, e));
            }
            if (!_stop.IsCancellationRequested)
            {
                try
                {
                    _stop.Cancel();
                }
                catch (ObjectDisposedException)
                {
                }
                _stream.Dispose();
            }
        }

        public async ValueTask DisposeAsync()
        {
            Fail(new ObjectDisposedException(nameof(ClusterDnsClient)));
            try
            {
                await _reader.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The reader records its own failure in Fail; nothing more to observe here.
            }
            _writeLock.Dispose();
            _stop.Dispose();
        }
    }

    private sealed class Pending(DnsName name, DnsType type, DnsClass cls)
    {
        public DnsName Name { get; } = name;

        public DnsType Type { get; } = type;

        public DnsClass Class { get; } = cls;

        public TaskCompletionSource<DnsMessage> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
