namespace KtConnect.Engine.Ssh;

/// <summary>
/// A <c>direct-tcpip</c> or <c>forwarded-tcpip</c> channel as a duplex <see cref="Stream"/>.
/// <see cref="CompleteWritesAsync"/> half-closes (EOF); Dispose closes the channel (CLOSE).
/// Errors of a dead connection surface as the connection's typed <see cref="SshException"/>.
/// </summary>
public sealed class SshChannelStream : Stream
{
    private readonly SshChannel _channel;
    private int _disposed;

    internal SshChannelStream(SshChannel channel, string originatorAddress, int originatorPort)
    {
        _channel = channel;
        OriginatorAddress = originatorAddress;
        OriginatorPort = originatorPort;
    }

    /// <summary>For forwarded connections: the address of the client that connected to the remote port.</summary>
    public string OriginatorAddress { get; }

    public int OriginatorPort { get; }

    /// <summary>Completes when the channel is fully closed (both CLOSEs) or the connection failed.</summary>
    public Task Closed => _channel.Closed;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _channel.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _channel.ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _channel.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _channel.WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) =>
        _channel.ReadAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) =>
        _channel.WriteAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Sends EOF: the far end's socket sees end of stream; this side can still read.</summary>
    public ValueTask CompleteWritesAsync(CancellationToken cancellationToken = default) => _channel.SendEofAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // Best effort and non-blocking: a dead connection has already failed the channel.
            _ = CloseQuietlyAsync();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) await CloseQuietlyAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    private async Task CloseQuietlyAsync()
    {
        try
        {
            await _channel.SendCloseAsync(fromReader: false, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SshException or ObjectDisposedException or InvalidOperationException)
        {
            // The connection is gone; its error was reported to the channel's users already.
        }
    }
}

/// <summary>What <see cref="SshClient.ExecAsync"/> returns.</summary>
public sealed class SshExecResult
{
    internal SshExecResult(int? exitStatus, string? exitSignal, byte[] stdout, byte[] stderr)
    {
        ExitStatus = exitStatus;
        ExitSignal = exitSignal;
        Stdout = stdout;
        Stderr = stderr;
    }

    /// <summary>The command's exit code, or null when it was killed by a signal or sshd sent none.</summary>
    public int? ExitStatus { get; }

    /// <summary>Signal name without "SIG" (for example <c>KILL</c>) when the command died of a signal.</summary>
    public string? ExitSignal { get; }

    public byte[] Stdout { get; }

    public byte[] Stderr { get; }

    public string StdoutText => System.Text.Encoding.UTF8.GetString(Stdout);

    public string StderrText => System.Text.Encoding.UTF8.GetString(Stderr);
}
