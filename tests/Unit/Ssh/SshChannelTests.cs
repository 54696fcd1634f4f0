using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Ssh;

public sealed class SshChannelTests
{
    [Fact]
    public async Task Received_data_wakes_the_reader_once_per_batch_on_the_waking_thread()
    {
        // Outside xunit's synchronization context, so an inline continuation can run inline.
        await Task.Run(async () =>
        {
            // The client is only used to send window adjustments; a 1 MiB window needs none for 300 bytes.
            var channel = new SshChannel(null!, localId: 0, windowSize: 1 << 20, maxPacket: 32 * 1024, collect: false);
            var buffer = new byte[64 * 1024];
            var readerThread = 0;
            async Task<int> ReadAsync()
            {
                var n = await channel.ReadAsync(buffer, CancellationToken.None);
                readerThread = Environment.CurrentManagedThreadId;
                return n;
            }
            var read = ReadAsync();
            Assert.False(read.IsCompleted);

            channel.OnData(new byte[100], extended: false);
            Assert.True(channel.TakeWakeSlot());
            channel.OnData(new byte[200], extended: false);
            Assert.False(channel.TakeWakeSlot());
            Assert.False(read.IsCompleted);

            channel.WakeReader();
            Assert.True(read.IsCompleted);
            Assert.Equal(300, await read);
            Assert.Equal(Environment.CurrentManagedThreadId, readerThread);
            Assert.True(channel.TakeWakeSlot());
        });
    }

    [Fact]
    public void The_window_is_topped_up_after_three_packets_not_after_half_the_window()
    {
        // OpenSSH's rule: a server that waits for half of a 2 MiB window to drain stalls while the reader works
        // through what is buffered; three packets keep it sending.
        var channel = new SshChannel(null!, localId: 0, windowSize: 2 << 20, maxPacket: 32 * 1024, collect: true);
        var packet = new byte[32 * 1024];
        Assert.Equal(0u, channel.OnData(packet, extended: false));
        Assert.Equal(0u, channel.OnData(packet, extended: false));
        Assert.Equal(96u * 1024, channel.OnData(packet, extended: false));
        Assert.Equal(0u, channel.OnData(packet, extended: false));

        // A small window still waits for half of it.
        var small = new SshChannel(null!, localId: 1, windowSize: 64 * 1024, maxPacket: 32 * 1024, collect: true);
        Assert.Equal(0u, small.OnData(new byte[31 * 1024], extended: false));
        Assert.Equal(32u * 1024, small.OnData(new byte[1024], extended: false));
    }

    [Fact]
    public void After_our_close_a_request_reply_is_dropped_while_data_is_refused()
    {
        // sshd sends keepalive@openssh.com (want-reply) on any open channel; one may cross our CLOSE.
        var channel = new SshChannel(null!, localId: 0, windowSize: 1 << 20, maxPacket: 32 * 1024, collect: false);
        Assert.True(channel.OnSending(SshMsg.ChannelFailure));
        Assert.True(channel.OnSending(SshMsg.ChannelClose));
        Assert.False(channel.OnSending(SshMsg.ChannelFailure));
        Assert.False(channel.OnSending(SshMsg.ChannelSuccess));
        Assert.False(channel.OnSending(SshMsg.ChannelWindowAdjust));
        Assert.False(channel.OnSending(SshMsg.ChannelClose));
        Assert.Throws<SshException>(() => channel.OnSending(SshMsg.ChannelData));
    }

    [Fact]
    public async Task Data_and_EOF_that_arrived_before_the_connection_failed_end_the_read_side_cleanly()
    {
        var channel = new SshChannel(null!, localId: 0, windowSize: 1 << 20, maxPacket: 32 * 1024, collect: false);
        channel.OnData("last words"u8, extended: false);
        channel.OnEof();
        channel.Fail(new SshException(SshErrorIds.ConnectionLost, KtConnect.Engine.KtErrorCategory.ConnectionError, "gone"));
        var buffer = new byte[64];
        Assert.Equal(10, await channel.ReadAsync(buffer, CancellationToken.None));
        Assert.Equal(0, await channel.ReadAsync(buffer, CancellationToken.None));

        // Without the EOF the same failure is the reader's error once the data is read.
        var cut = new SshChannel(null!, localId: 1, windowSize: 1 << 20, maxPacket: 32 * 1024, collect: false);
        cut.OnData("half"u8, extended: false);
        cut.Fail(new SshException(SshErrorIds.ConnectionLost, KtConnect.Engine.KtErrorCategory.ConnectionError, "gone"));
        Assert.Equal(4, await cut.ReadAsync(buffer, CancellationToken.None));
        Assert.Equal(SshErrorIds.ConnectionLost, (await Assert.ThrowsAsync<SshException>(() => cut.ReadAsync(buffer, CancellationToken.None).AsTask())).ErrorId);
    }
}
