using KtConnect.Engine.Ssh;
using Microsoft.Extensions.Logging;

namespace KtConnect.Engine.Cluster.Tunnel;

/// <summary>
/// A remote forward (<c>tcpip-forward</c> in the shadow pod) that follows the link: when its SSH connection ends it is
/// requested again, on the same address and port, on a connection that is up. Between the loss and the new request
/// the pod port is closed. Dispose cancels it.
/// </summary>
public sealed class ShadowRemoteForward : IAsyncDisposable
{
    private readonly ShadowLink _link;
    private readonly Func<SshChannelStream, CancellationToken, Task> _handler;
    private readonly CancellationTokenSource _cts = new();
    private readonly ILogger _logger;
    private SshRemoteForward _current;
    private SshClient? _client;
    private Task _loop = Task.CompletedTask;
    private long _reestablished;

    private ShadowRemoteForward(ShadowLink link, SshRemoteForward first, Func<SshChannelStream, CancellationToken, Task> handler, ILogger logger)
    {
        _link = link;
        _current = first;
        _handler = handler;
        _logger = logger;
        BindAddress = first.BindAddress;
        BoundPort = first.BoundPort;
    }

    public string BindAddress { get; }

    /// <summary>The port sshd listens on (the one asked for, or the one it chose for 0; kept across reconnects).</summary>
    public int BoundPort { get; }

    /// <summary>Times the forward was requested again after its connection was lost.</summary>
    public long Reestablished => Interlocked.Read(ref _reestablished);

    /// <summary>The last error of a re-request, if any (the loop keeps trying while the link lives).</summary>
    public Exception? LastError { get; private set; }

    internal static async Task<ShadowRemoteForward> StartAsync(ShadowLink link, string bindAddress, int port,
        Func<SshChannelStream, CancellationToken, Task> handler, ILogger logger, CancellationToken cancellationToken)
    {
        var (client, forward) = await link.RequestForwardAsync(bindAddress, port, handler, cancellationToken).ConfigureAwait(false);
        var f = new ShadowRemoteForward(link, forward, handler, logger) { _client = client };
        f._loop = Task.Run(() => f.FollowAsync(client));
        return f;
    }

    private async Task FollowAsync(SshClient client)
    {
        var ct = _cts.Token;
        try
        {
            while (true)
            {
                await client.Completion.WaitAsync(ct).ConfigureAwait(false);
                for (var failures = 0; ; failures++)
                {
                    try
                    {
                        var (next, forward) = await _link.RequestForwardAsync(BindAddress, BoundPort, _handler, ct).ConfigureAwait(false);
                        var lost = _current;
                        client = next;
                        _client = next;
                        _current = forward;
                        Interlocked.Increment(ref _reestablished);
                        // The lost connection's forward: its handlers are cancelled and awaited, its token source freed.
                        await lost.DisposeAsync().ConfigureAwait(false);
                        break;
                    }
                    catch (ShadowLinkException e) when (e.ErrorId is TunnelErrorIds.LinkFailed or TunnelErrorIds.LinkClosed)
                    {
                        LastError = e;
                        return;
                    }
                    catch (Exception e) when (e is KtException or IOException)
                    {
                        // Unavailable for now, or the port is still held by the old sshd session: retry with backoff.
                        LastError = e;
                        _logger.LogDebug(e, "remote forward {Address}:{Port}: re-request failed", BindAddress, BoundPort);
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(5000, 250 << Math.Min(failures, 5))), ct).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_cts.IsCancellationRequested) return;
        await _cts.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        // A dead connection took the forward with it; asking it to cancel would only wait for a timeout.
        if (_client is { IsConnected: false })
        {
            _cts.Dispose();
            return;
        }
        try
        {
            await _current.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is KtException or OperationCanceledException or ObjectDisposedException)
        {
            // The connection is gone: so is the forward.
        }
        _cts.Dispose();
    }
}
