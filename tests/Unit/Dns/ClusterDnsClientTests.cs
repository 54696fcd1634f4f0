using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Dns;
using KtConnect.Tests.Unit.Common;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Dns;

/// <summary>The pipelined DNS-over-TCP client against an in-process resolver on loopback that misbehaves on purpose.</summary>
public sealed class ClusterDnsClientTests : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _server;
    private int _accepted;

    /// <summary>Answers are held until this many questions are waiting, then sent in reverse order.</summary>
    public int Batch { get; set; } = 1;

    /// <summary>The server closes a stream after this many answers (dnsmasq does after 100).</summary>
    public int CloseAfter { get; set; } = int.MaxValue;

    /// <summary>Names the server never answers.</summary>
    public string Silent { get; set; } = "silent.dev.svc.cluster.local";

    public ClusterDnsClientTests()
    {
        _listener.Start();
        _server = Task.Run(AcceptAsync);
    }

    private IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    private async Task AcceptAsync()
    {
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                var c = await _listener.AcceptTcpClientAsync(_stop.Token);
                Interlocked.Increment(ref _accepted);
                connections.Add(ServeAsync(c));
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException or ObjectDisposedException)
        {
        }
        await Task.WhenAll(connections);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var held = new List<DnsMessage>();
        var answered = 0;
        var header = new byte[2];
        try
        {
            while (answered < CloseAfter)
            {
                await stream.ReadExactlyAsync(header, _stop.Token);
                var body = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
                await stream.ReadExactlyAsync(body, _stop.Token);
                var q = DnsMessage.Parse(body);
                if (q.Questions[0].Name == DnsName.Parse(Silent)) continue;
                var r = DnsMessage.CreateResponse(q, DnsRcode.NoError);
                r.Answers.Add(DnsRecord.Address(q.Questions[0].Name, IPAddress.Parse("10.96.0." + (q.Questions[0].Name.WireLength % 200)), 30));
                held.Add(r);
                if (held.Count < Batch) continue;
                held.Reverse();
                foreach (var m in held)
                {
                    if (answered++ >= CloseAfter) break;
                    var bytes = m.ToArray();
                    var frame = new byte[bytes.Length + 2];
                    BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)bytes.Length);
                    bytes.CopyTo(frame, 2);
                    await stream.WriteAsync(frame, _stop.Token);
                }
                held.Clear();
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or EndOfStreamException)
        {
        }
    }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _stop.CancelAsync();
        _listener.Stop();
        await _server;
        _stop.Dispose();
    }

    private static string Name(int i) => $"svc{i}.dev.svc.cluster.local";

    /// <summary>Asks for <see cref="Name"/> 0..count-1 all at once; the answers in question order.</summary>
    private static Task<DnsMessage[]> AskAsync(ClusterDnsClient client, int count) =>
        Task.WhenAll(Enumerable.Range(0, count).Select(i => client.QueryAsync(DnsName.Parse(Name(i)), DnsType.A, DnsClass.IN, default)));

    [Fact]
    public async Task Answers_out_of_order_are_matched_to_their_questions()
    {
        Batch = 8;
        await using var client = new ClusterDnsClient(new TcpClusterDnsTransport(EndPoint), TimeSpan.FromSeconds(10));
        var answers = await AskAsync(client, 8);
        for (var i = 0; i < 8; i++) Assert.Equal(Name(i), answers[i].Answers.Single().Name.ToString());
        Assert.Equal(1, client.ConnectionsOpened);
    }

    [Fact]
    public async Task Questions_left_unanswered_by_a_closed_stream_are_asked_again_on_a_new_one()
    {
        CloseAfter = 5;
        await using var client = new ClusterDnsClient(new TcpClusterDnsTransport(EndPoint), TimeSpan.FromSeconds(10));
        var answers = await AskAsync(client, 12);
        Assert.All(answers, a => Assert.Single(a.Answers));
        Assert.True(client.ConnectionsOpened >= 3, $"{client.ConnectionsOpened} streams");
    }

    [Fact]
    public async Task A_question_is_asked_on_as_many_streams_as_it_takes_while_they_answer_others()
    {
        // 40 questions in flight, 5 answers per stream: the last ones need 8 streams, each closing after answering
        // others (dnsmasq closes after 100, so 400 queries in flight against it are the same case).
        CloseAfter = 5;
        await using var client = new ClusterDnsClient(new TcpClusterDnsTransport(EndPoint), TimeSpan.FromSeconds(20));
        var answers = await AskAsync(client, 40);
        Assert.All(answers, a => Assert.Single(a.Answers));
        Assert.True(client.ConnectionsOpened >= 8, $"{client.ConnectionsOpened} streams");
    }

    /// <summary>
    /// A question whose write meets the server's close must not throw away the answers the server sent to others before
    /// it closed: they are read first. (Throwing them away made whole streams look as if they answered nothing, so 40
    /// questions over 5-answer streams ran out of retries now and then.)
    /// </summary>
    [Fact]
    public async Task Answers_sent_before_the_server_closed_are_read_although_a_later_write_failed_first()
    {
        var transport = new ScriptedTransport();
        await using var client = new ClusterDnsClient(transport, TimeSpan.FromSeconds(20));
        var early = client.QueryAsync(DnsName.Parse(Name(1)), DnsType.A, DnsClass.IN, default);
        await Wait.UntilAsync(() => transport.Asked(Name(1)) == 1, "the first question to be sent");
        // The server has answered the first question and closed: the second question's write fails before that answer is read.
        transport.FailNextWrite = true;
        var late = await client.QueryAsync(DnsName.Parse(Name(2)), DnsType.A, DnsClass.IN, default);
        Assert.Single(late.Answers);
        Assert.Single((await early).Answers);
        Assert.Equal(1, transport.Asked(Name(1)));
        Assert.Equal(2, transport.Opened);
    }

    /// <summary>
    /// Streams that answer each question when told: the first holds its answers until a write fails (the server closed),
    /// then gives them, a moment later, and ends, unless the client closes it first.
    /// </summary>
    private sealed class ScriptedTransport : IClusterDnsTransport
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _asked = new();
        private int _opened;

        public volatile bool FailNextWrite;

        public int Opened => Volatile.Read(ref _opened);

        public int Asked(string name) => _asked.GetValueOrDefault(name);

        public ValueTask<Stream> OpenAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult<Stream>(new ScriptedStream(this, Interlocked.Increment(ref _opened) == 1));

        private sealed class ScriptedStream(ScriptedTransport owner, bool holdsAnswers) : TestStream
        {
            private readonly System.Threading.Channels.Channel<byte[]> _answers = System.Threading.Channels.Channel.CreateUnbounded<byte[]>();
            private readonly TaskCompletionSource _closedByServer = new(TaskCreationOptions.RunContinuationsAsynchronously);
            private readonly CancellationTokenSource _disposed = new();
            private byte[] _current = [];
            private int _offset;

            public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            {
                if (owner.FailNextWrite && holdsAnswers)
                {
                    _closedByServer.TrySetResult();
                    throw new IOException("Broken pipe");
                }
                var query = DnsMessage.Parse(buffer.Span[2..]);
                owner._asked.AddOrUpdate(query.Questions[0].Name.ToString(), 1, (_, n) => n + 1);
                var answer = DnsMessage.CreateResponse(query, DnsRcode.NoError);
                answer.Answers.Add(DnsRecord.Address(query.Questions[0].Name, IPAddress.Parse("10.96.0.1"), 30));
                var bytes = answer.ToArray();
                var frame = new byte[bytes.Length + 2];
                BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)bytes.Length);
                bytes.CopyTo(frame, 2);
                await _answers.Writer.WriteAsync(frame, cancellationToken);
            }

            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                if (_offset == _current.Length)
                {
                    if (holdsAnswers)
                    {
                        // Nothing until the server's close is seen by a write, and then only after a moment, as a reader
                        // on another thread would: a client that gives up on the stream at once closes it before that.
                        await _closedByServer.Task.WaitAsync(cancellationToken);
                        await Task.Delay(200, _disposed.Token);
                        if (!_answers.Reader.TryRead(out var held)) return 0;
                        _current = held;
                    }
                    else
                    {
                        _current = await _answers.Reader.ReadAsync(cancellationToken);
                    }
                    _offset = 0;
                }
                var n = Math.Min(buffer.Length, _current.Length - _offset);
                _current.AsMemory(_offset, n).CopyTo(buffer);
                _offset += n;
                return n;
            }

            protected override void Dispose(bool disposing)
            {
                _disposed.Cancel();
                base.Dispose(disposing);
            }
        }
    }

    [Fact]
    public async Task Streams_that_close_without_answering_end_the_retries_with_a_typed_error()
    {
        CloseAfter = 0;
        await using var client = new ClusterDnsClient(new TcpClusterDnsTransport(EndPoint), TimeSpan.FromSeconds(20));
        var e = await Assert.ThrowsAsync<DnsUpstreamException>(() => client.QueryAsync(DnsName.Parse(Name(1)), DnsType.A, DnsClass.IN, default));
        Assert.Equal("DnsClusterUnreachable", e.ErrorId);
        Assert.Equal(4, client.ConnectionsOpened);
    }

    [Fact]
    public async Task A_question_without_an_answer_fails_at_its_deadline_with_a_typed_error()
    {
        await using var client = new ClusterDnsClient(new TcpClusterDnsTransport(EndPoint), TimeSpan.FromMilliseconds(300));
        var e = await Assert.ThrowsAsync<DnsUpstreamException>(() => client.QueryAsync(DnsName.Parse(Silent), DnsType.A, DnsClass.IN, default));
        Assert.Equal("DnsClusterTimeout", e.ErrorId);
        // Others on the same client still work.
        var ok = await client.QueryAsync(DnsName.Parse(Name(1)), DnsType.A, DnsClass.IN, default);
        Assert.Single(ok.Answers);
    }

    [Fact]
    public async Task An_unreachable_resolver_is_a_typed_error()
    {
        var port = EndPoint.Port;
        await DisposeAsync();
        await using var client = new ClusterDnsClient(new TcpClusterDnsTransport(new IPEndPoint(IPAddress.Loopback, port)), TimeSpan.FromSeconds(5));
        var e = await Assert.ThrowsAsync<DnsUpstreamException>(() => client.QueryAsync(DnsName.Parse(Name(1)), DnsType.A, DnsClass.IN, default));
        Assert.Equal("DnsClusterUnreachable", e.ErrorId);
    }
}
