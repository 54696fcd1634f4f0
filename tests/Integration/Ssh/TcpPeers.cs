using System.Net;
using System.Net.Sockets;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>A loopback TCP server that echoes every connection until EOF, then half-closes.</summary>
internal sealed class EchoServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _accept;
    private readonly List<Task> _conns = [];

    public EchoServer()
    {
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var c = await _listener.AcceptTcpClientAsync(_cts.Token).ConfigureAwait(false);
                lock (_conns) _conns.Add(EchoAsync(c));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    private async Task EchoAsync(TcpClient c)
    {
        using (c)
        {
            try
            {
                var s = c.GetStream();
                var buf = new byte[64 * 1024];
                int n;
                while ((n = await s.ReadAsync(buf, _cts.Token).ConfigureAwait(false)) > 0)
                    await s.WriteAsync(buf.AsMemory(0, n), _cts.Token).ConfigureAwait(false);
                c.Client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _accept.ConfigureAwait(false);
        Task[] all;
        lock (_conns) all = [.. _conns];
        await Task.WhenAll(all).ConfigureAwait(false);
        _cts.Dispose();
    }
}
