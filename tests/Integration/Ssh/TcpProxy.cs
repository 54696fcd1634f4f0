using System.Net;
using System.Net.Sockets;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>
/// A loopback relay between our client and sshd that can misbehave on demand: freeze (a stalled peer), hold back the
/// server's answers, cut the connection, or flip a bit in what the server sends (a bad MAC).
/// </summary>
internal sealed class TcpProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _accept;
    private readonly List<Task> _pumps = [];
    private readonly List<TcpClient> _sockets = [];
    private volatile TaskCompletionSource _thaw = Done();
    private volatile TaskCompletionSource _thawServer = Done();
    private long _serverBytes;

    public TcpProxy(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Close both sides once this many server bytes have been relayed (0 = never).</summary>
    public long CutAfterServerBytes { get; set; }

    /// <summary>When set, the next server chunk is relayed with its last byte flipped.</summary>
    public volatile bool CorruptNextServerChunk;

    public long ServerBytes => Interlocked.Read(ref _serverBytes);

    /// <summary>True once the client side of a relayed connection has closed its socket.</summary>
    public bool ClientClosed { get; private set; }

    private static TaskCompletionSource Done()
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        t.SetResult();
        return t;
    }

    /// <summary>Stops relaying in both directions, keeping the sockets open: the peer looks alive but silent.</summary>
    public void Freeze() => _thaw = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Holds back what the server sends (what the client sends still goes through) until <see cref="ThawServer"/>.</summary>
    public void FreezeServer() => _thawServer = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ThawServer() => _thawServer.TrySetResult();

    public void Cut()
    {
        lock (_sockets)
        {
            foreach (var s in _sockets) s.Dispose();
        }
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_cts.Token).ConfigureAwait(false);
                var server = new TcpClient { NoDelay = true };
                await server.ConnectAsync(IPAddress.Loopback, _target).ConfigureAwait(false);
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _sockets.Add(server);
                }
                lock (_pumps)
                {
                    _pumps.Add(PumpAsync(client, server, fromServer: false));
                    _pumps.Add(PumpAsync(server, client, fromServer: true));
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to, bool fromServer)
    {
        var buf = new byte[64 * 1024];
        try
        {
            var src = from.GetStream();
            var dst = to.GetStream();
            while (true)
            {
                var n = await src.ReadAsync(buf, _cts.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    if (!fromServer) ClientClosed = true;
                    break;
                }
                await _thaw.Task.WaitAsync(_cts.Token).ConfigureAwait(false);
                if (fromServer)
                {
                    await _thawServer.Task.WaitAsync(_cts.Token).ConfigureAwait(false);
                    if (CorruptNextServerChunk)
                    {
                        CorruptNextServerChunk = false;
                        buf[n - 1] ^= 0x40;
                    }
                    var total = Interlocked.Add(ref _serverBytes, n);
                    if (CutAfterServerBytes > 0 && total >= CutAfterServerBytes)
                    {
                        var keep = (int)(n - (total - CutAfterServerBytes));
                        await dst.WriteAsync(buf.AsMemory(0, keep), _cts.Token).ConfigureAwait(false);
                        break;
                    }
                }
                await dst.WriteAsync(buf.AsMemory(0, n), _cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            if (!fromServer) ClientClosed = true;
        }
        from.Dispose();
        to.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        Cut();
        await _accept.ConfigureAwait(false);
        Task[] all;
        lock (_pumps) all = [.. _pumps];
        await Task.WhenAll(all).ConfigureAwait(false);
        _cts.Dispose();
    }
}
