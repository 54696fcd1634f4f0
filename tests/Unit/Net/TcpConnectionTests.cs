using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

public class TcpConnectionTests
{
    private const uint C = TcpHarness.ClientIsn + 1; // client's first data sequence number
    private const uint S = TcpHarness.Iss + 1; // ours

    [Fact]
    public void SynAck_CarriesMssWindowScaleAndAcksTheSyn()
    {
        var h = new TcpHarness();
        Assert.Equal(TcpState.Dialing, h.Conn.State);
        Assert.Empty(h.Take());
        h.Conn.Accept();
        var s = Assert.Single(h.Take());
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, s.Flags);
        Assert.Equal(TcpHarness.Iss, s.Seq);
        Assert.Equal(C, s.Ack);
        Assert.Equal(1460, s.Segment.Mss);
        Assert.Equal(7, s.Segment.WindowScale);
        Assert.Equal(TcpState.SynReceived, h.Conn.State);
        Assert.Equal(1000, h.Conn.SendMss); // min(client MSS, ours)
    }

    [Fact]
    public void ToASinkThatFinishesChecksums_SegmentsCarryOnlyThePseudoHeaderSum()
    {
        var h = new TcpHarness(sink: new ListSink(partialTcpChecksums: true));
        h.Conn.Accept();
        var raw = Assert.Single(h.Sink.Take());
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(raw, out var ip));
        Assert.Equal(ParseStatus.Malformed, TcpSegment.TryParse(raw, ip, out _));
        var t = raw.AsSpan(ip.PayloadOffset, ip.PayloadLength);
        Assert.Equal(Checksum.Fold(Checksum.PseudoHeader(false, ip.Source, ip.Destination, IpProtocol.Tcp, t.Length)),
            System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(t[16..]));
    }

    [Fact]
    public async Task ToASinkThatFinishesChecksums_PayloadsAreSentFromTheSendQueueInPieces_AcrossItsWrap()
    {
        var h = new TcpHarness(sink: new ListSink(partialTcpChecksums: true));
        h.Establish();
        var data = Enumerable.Range(0, 5500).Select(i => (byte)(i * 7)).ToArray();
        await h.Conn.WriteAsync(data[..3000], CancellationToken.None);
        Assert.Equal(3, h.Take().Count);
        // 1,000 bytes left from offset 2,000 of the 4 KiB queue: the next 2,500 wrap past its end.
        h.Feed(TcpFlags.Ack, C, S + 2000);
        await h.Conn.WriteAsync(data[3000..], CancellationToken.None);
        h.Feed(TcpFlags.Ack, C, S + 3000);
        var segs = h.Take();
        Assert.Equal([S + 3000, S + 4000, S + 5000], segs.Select(x => x.Seq));
        Assert.Equal(data[3000..], segs.SelectMany(x => x.Data).ToArray());
        Assert.Equal((6, 1), h.Sink.Pieces);
    }

    [Fact]
    public Task DataFromTheDevice_RunsTheWaitingReaderOnTheDevicesThread() =>
        // On a thread without a synchronization context, like the device's reader (xunit's own context would defer it).
        Task.Run(async () =>
        {
            var h = new TcpHarness();
            h.Establish();
            var feeder = Environment.CurrentManagedThreadId;
            int? continuedOn = null;
            var read = 0;
            async Task ReaderAsync()
            {
                await h.Conn.WaitReadableAsync(CancellationToken.None).ConfigureAwait(false);
                continuedOn = Environment.CurrentManagedThreadId;
                // The connection's state is whole (the lock was released first): the reader reads at once.
                read = await h.Conn.ReadAsync(new byte[16], CancellationToken.None).ConfigureAwait(false);
            }
            var reader = ReaderAsync(); // runs up to its wait: nothing to read yet
            Assert.False(reader.IsCompleted);
            h.Feed(TcpFlags.Ack | TcpFlags.Psh, C, S, "ping"u8);
            Assert.True(reader.IsCompleted, "the reader ran inline, before OnSegment returned");
            await reader;
            Assert.Equal(feeder, continuedOn);
            Assert.Equal(4, read);
        });

    [Fact]
    public void NoWindowScale_WhenClientDidNotOfferIt()
    {
        var h = new TcpHarness(clientWindowScale: -1);
        h.Conn.Accept();
        Assert.Equal(-1, Assert.Single(h.Take()).Segment.WindowScale);
    }

    [Fact]
    public void WindowScaleZero_IsStillAnswered_SoTheClientKnowsScalingIsOn()
    {
        var h = new TcpHarness(new TcpOptions { WindowScale = 0 });
        h.Conn.Accept();
        Assert.Equal(0, Assert.Single(h.Take()).Segment.WindowScale);
    }

    [Fact]
    public void Refuse_SendsRstAckingTheSyn()
    {
        var h = new TcpHarness();
        h.Conn.Refuse();
        var s = Assert.Single(h.Take());
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, s.Flags);
        Assert.Equal(C, s.Ack);
        Assert.True(h.Conn.IsClosed);
    }

    [Fact]
    public void SynAck_IsRetransmittedWithBackoff_AndGivesUp()
    {
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 1000, SynAckRetries = 2 });
        h.Conn.Accept();
        h.Take();
        h.Advance(999);
        Assert.Empty(h.Take());
        h.Advance(1);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, Assert.Single(h.Take()).Flags);
        h.Advance(1999);
        Assert.Empty(h.Take());
        h.Advance(1);
        Assert.Single(h.Take());
        h.Advance(4000);
        Assert.True(h.Conn.IsClosed);
    }

    [Fact]
    public void DuplicateSyn_InSynReceived_ResendsSynAck()
    {
        var h = new TcpHarness();
        h.Conn.Accept();
        h.Take();
        h.Feed(TcpFlags.Syn, TcpHarness.ClientIsn, 0);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, Assert.Single(h.Take()).Flags);
    }

    [Fact]
    public async Task InOrderData_IsReadable_AndAckedEverySecondSegmentOrByTimer()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack | TcpFlags.Psh, C, S, "abc"u8);
        Assert.Empty(h.Take()); // delayed
        h.Advance(h.Options.DelayedAckMs);
        var ack = Assert.Single(h.Take());
        Assert.Equal(C + 3, ack.Ack);
        h.Feed(TcpFlags.Ack, C + 3, S, "de"u8);
        h.Feed(TcpFlags.Ack, C + 5, S, "f"u8);
        Assert.Equal(C + 6, Assert.Single(h.Take()).Ack);
        var buf = new byte[10];
        var n = await h.Conn.ReadAsync(buf, CancellationToken.None);
        Assert.Equal("abcdef", System.Text.Encoding.ASCII.GetString(buf, 0, n));
    }

    [Fact]
    public async Task TimerList_AFlowWithNothingToTimeLeavesIt_AndComesBackForEveryTimerItArms()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Advance(0);
        Assert.Equal([false], h.TimerList);

        // Data for the client arms the retransmission timer: back on the list, and the timer retransmits.
        await h.Conn.WriteAsync("hello"u8.ToArray(), CancellationToken.None);
        Assert.Equal([false, true], h.TimerList);
        h.Take();
        h.Advance(h.Options.InitialRtoMs);
        var again = Assert.Single(h.Take());
        Assert.Equal((S, 5), (again.Seq, again.Data.Length));
        // Acknowledged: the next tick gives the empty send buffer back and leaves.
        h.Feed(TcpFlags.Ack, C, S + 5);
        h.Advance(0);
        Assert.Equal([false, true, false], h.TimerList);

        // Data from the client arms the delayed ACK; once it is sent, bytes waiting for the reader need no timer.
        h.Feed(TcpFlags.Ack | TcpFlags.Psh, C, S + 5, "abc"u8);
        h.Advance(h.Options.DelayedAckMs);
        Assert.Equal(C + 3, Assert.Single(h.Take()).Ack);
        Assert.Equal([false, true, false, true, false], h.TimerList);
        // Read out, the receive buffer is empty but held: back on the list until a tick gives it back.
        Assert.Equal(3, await h.Conn.ReadAsync(new byte[10], CancellationToken.None));
        Assert.Equal([false, true, false, true, false, true], h.TimerList);
        h.Advance(0);
        Assert.Equal([false, true, false, true, false, true, false], h.TimerList);

        // A reset closes it: back on the list, so the stack's next tick forgets it.
        h.Feed(TcpFlags.Rst, C + 3, 0);
        Assert.Equal(TcpState.Closed, h.Conn.State);
        Assert.True(h.TimerList[^1]);
        Assert.True(h.Conn.Tick());
    }

    [Fact]
    public void BeginRead_LendsTheReceivedBytes_UntilEndReadConsumesThem()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack | TcpFlags.Psh, C, S, "abc"u8);
        var lent = h.Conn.BeginRead();
        Assert.Equal("abc", System.Text.Encoding.ASCII.GetString(lent.Span));
        // Data arriving during the loan is kept after it; the lent bytes do not change.
        h.Feed(TcpFlags.Ack | TcpFlags.Psh, C + 3, S, "de"u8);
        Assert.Equal("abc", System.Text.Encoding.ASCII.GetString(lent.Span));
        h.Conn.EndRead(2);
        Assert.Equal("cde", System.Text.Encoding.ASCII.GetString(h.Conn.BeginRead().Span));
        h.Conn.EndRead(3);
        h.Feed(TcpFlags.Ack | TcpFlags.Fin, C + 5, S);
        Assert.True(h.Conn.BeginRead().IsEmpty);
        h.Conn.EndRead(0);
    }

    [Fact]
    public async Task BeginWrite_LendsSendSpace_AndEndWriteSendsWhatWasWrittenThere_EvenWhenAllElseIsAckedMeanwhile()
    {
        var h = new TcpHarness();
        h.Establish();
        await h.Conn.WriteAsync("abc"u8.ToArray(), CancellationToken.None);
        Assert.Equal("abc", System.Text.Encoding.ASCII.GetString(Assert.Single(h.Take()).Data));
        var space = await h.Conn.BeginWriteAsync(5, CancellationToken.None);
        Assert.Equal(5, space.Length);
        "hello"u8.CopyTo(space.Span);
        // Nothing is sent before the loan ends; the ACK of everything queued before it empties the buffer meanwhile.
        Assert.Empty(h.Take());
        h.Feed(TcpFlags.Ack, C, S + 3);
        Assert.Equal(0, h.Conn.BufferedSend);
        h.Conn.EndWrite(space, 4);
        var sent = Assert.Single(h.Take());
        Assert.Equal(S + 3, sent.Seq);
        Assert.Equal("hell", System.Text.Encoding.ASCII.GetString(sent.Data));
        Assert.Equal(4, h.Conn.BufferedSend);

        // Ended with nothing written, a loan queues nothing; after a reset, a new one throws.
        h.Conn.EndWrite(await h.Conn.BeginWriteAsync(100, CancellationToken.None), 0);
        Assert.Empty(h.Take());
        Assert.Equal(4, h.Conn.BufferedSend);
        h.Feed(TcpFlags.Rst, C, 0);
        await Assert.ThrowsAnyAsync<Exception>(() => h.Conn.BeginWriteAsync(100, CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task OutOfOrder_IsBufferedWithDupAcks_ThenDeliveredWhenTheHoleFills()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack, C + 3, S, "def"u8);
        h.Feed(TcpFlags.Ack, C + 6, S, "ghi"u8);
        var dup = h.Take();
        Assert.Equal(2, dup.Count);
        Assert.All(dup, d => Assert.Equal(C, d.Ack));
        h.Feed(TcpFlags.Ack, C, S, "abc"u8);
        Assert.Equal(C + 9, Assert.Single(h.Take()).Ack);
        var buf = new byte[20];
        var n = await h.Conn.ReadAsync(buf, CancellationToken.None);
        Assert.Equal("abcdefghi", System.Text.Encoding.ASCII.GetString(buf, 0, n));
    }

    [Fact]
    public void DupAcks_ForAHole_CarryTheSameWindow_SoASenderCountsThemAndRetransmitsFast()
    {
        // RFC 5681 §2: an ACK is a duplicate only if its window is unchanged (BSD and macOS check it). Storing the segments
        // past the hole must not shrink the window each dup ACK advertises.
        var h = new TcpHarness();
        h.Establish();
        var data = new byte[1000];
        for (var i = 1; i <= 4; i++) h.Feed(TcpFlags.Ack, C + (uint)(i * 1000), S, data);
        var dups = h.Take();
        Assert.Equal(4, dups.Count);
        Assert.All(dups, d => Assert.Equal(C, d.Ack));
        Assert.Single(dups.Select(d => d.Segment.Window).Distinct());
        h.Feed(TcpFlags.Ack, C, S, data);
        Assert.Equal(C + 5000, Assert.Single(h.Take()).Ack);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_flow_that_closes_while_its_relay_still_holds_received_bytes_gives_its_buffer_back_to_the_budget(bool relayFails)
    {
        var h = new TcpHarness();
        h.Establish();
        var data = new byte[1000];
        for (var i = 0; i < 20; i++) h.Feed(TcpFlags.Ack, C + (uint)(i * 1000), S, data);
        Assert.True(h.Budget.Used > 0);
        // The relay lends the bytes to a far end that does not read them yet; meanwhile both sides close.
        var lent = h.Conn.BeginRead();
        h.Conn.ShutdownWrite();
        h.Feed(TcpFlags.Ack, C + 20000, S + 1);
        h.Feed(TcpFlags.Fin | TcpFlags.Ack, C + 20000, S + 1);
        Assert.Equal(TcpState.TimeWait, h.Conn.State);
        if (relayFails)
        {
            h.Conn.EndRead(0);
            h.Conn.Abort();
        }
        else
        {
            while (!lent.IsEmpty)
            {
                h.Conn.EndRead(lent.Length);
                lent = h.Conn.BeginRead();
            }
            h.Conn.EndRead(0);
        }
        // Given back at once, in TIME-WAIT: no timer trims a flow there.
        Assert.Equal(TcpState.TimeWait, h.Conn.State);
        Assert.Equal(0, h.Budget.Used);
        h.Advance(h.Options.TimeWaitMs + 1);
        Assert.Equal(TcpState.Closed, h.Conn.State);
        Assert.Equal(0, h.Budget.Used);
    }

    [Fact]
    public async Task OverlappingRetransmission_IsTrimmed()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack, C, S, "abcd"u8);
        h.Feed(TcpFlags.Ack, C + 2, S, "cdef"u8);
        var buf = new byte[20];
        var n = await h.Conn.ReadAsync(buf, CancellationToken.None);
        Assert.Equal("abcdef", System.Text.Encoding.ASCII.GetString(buf, 0, n));
    }

    [Fact]
    public async Task Data_IsSegmentedByMss_AndRetransmittedOnTimeout_WithBackoff()
    {
        // MinRto = 1 s so the zero-RTT sample of the first ACK keeps the RTO at 1 s.
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 1000, MinRtoMs = 1000 });
        h.Establish();
        await h.Conn.WriteAsync(new byte[2500], CancellationToken.None);
        var segs = h.Take();
        Assert.Equal([1000, 1000, 500], segs.Select(s => s.Data.Length));
        Assert.Equal([S, S + 1000, S + 2000], segs.Select(s => s.Seq));
        h.Feed(TcpFlags.Ack, C, S + 1000);
        h.Advance(999);
        Assert.Empty(h.Take());
        h.Advance(1);
        var re = Assert.Single(h.Take());
        Assert.Equal(S + 1000, re.Seq);
        Assert.Equal(1000, re.Data.Length);
        Assert.Equal(2000, h.Conn.RetransmissionTimeoutMs);
        Assert.Equal(1000, h.Conn.CongestionWindow);
        h.Feed(TcpFlags.Ack, C, S + 2000);
        var rest = Assert.Single(h.Take());
        Assert.Equal(S + 2000, rest.Seq);
        h.Feed(TcpFlags.Ack, C, S + 2500);
        Assert.Equal(0, h.Conn.BufferedSend);
        Assert.Equal(1, h.Counters.TcpRetransmits);
    }

    [Fact]
    public async Task An_abort_after_a_retransmission_resets_at_the_highest_sequence_sent_and_answers_the_clients_challenge_ack()
    {
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 1000, MinRtoMs = 1000 });
        h.Establish();
        await h.Conn.WriteAsync(new byte[2500], CancellationToken.None);
        Assert.Equal(3, h.Take().Count);
        // The client got it all but its ACKs were lost: we go back to S and resend the first segment.
        h.Advance(1000);
        Assert.Equal(S, Assert.Single(h.Take()).Seq);
        // The far end fails. A reset below the client's rcv_nxt (S + 2500) would be ignored.
        h.Conn.Abort();
        var rst = Assert.Single(h.Take());
        Assert.Equal((TcpFlags.Rst | TcpFlags.Ack, S + 2500), (rst.Flags, rst.Seq));
        // A reset that is in the window but not exact gets a challenge ACK (RFC 5961 §3.2): the closed flow answers it
        // with a reset at the sequence the client asks for, as the stack does for a flow it does not know.
        h.Feed(TcpFlags.Ack, C, S + 2000);
        var answer = Assert.Single(h.Take());
        Assert.Equal((TcpFlags.Rst, S + 2000), (answer.Flags, answer.Seq));
        // A reset is never answered.
        h.Feed(TcpFlags.Rst, C, 0);
        Assert.Empty(h.Take());
    }

    [Fact]
    public async Task ThreeDuplicateAcks_TriggerFastRetransmit()
    {
        var h = new TcpHarness();
        h.Establish();
        await h.Conn.WriteAsync(new byte[5000], CancellationToken.None);
        Assert.Equal(5, h.Take().Count);
        h.Feed(TcpFlags.Ack, C, S + 1000);
        h.Feed(TcpFlags.Ack, C, S + 1000);
        h.Feed(TcpFlags.Ack, C, S + 1000);
        Assert.Empty(h.Take());
        h.Feed(TcpFlags.Ack, C, S + 1000);
        var re = Assert.Single(h.Take());
        Assert.Equal(S + 1000, re.Seq);
        Assert.Equal(1, h.Counters.TcpFastRetransmits);
        // Partial ACK (NewReno): the next hole goes out at once.
        h.Feed(TcpFlags.Ack, C, S + 3000);
        Assert.Equal(S + 3000, Assert.Single(h.Take()).Seq);
        h.Feed(TcpFlags.Ack, C, S + 5000);
        Assert.Equal(0, h.Conn.BufferedSend);
    }

    [Fact]
    public async Task FastRetransmit_ResendsOnlyBytesAlreadySent_NotQueuedOnes()
    {
        // The client's window (125 << 2 = 500 bytes) lets only part of the queue out. A retransmission must not
        // carry queued bytes past SND.MAX: the client would acknowledge them, and an ACK above SND.MAX is
        // dropped with the segment carrying it, so the flow stalled (the loss simulation's truncated transfers).
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack, C, S, default, window: 125);
        await h.Conn.WriteAsync(new byte[5000], CancellationToken.None);
        var first = Assert.Single(h.Take());
        Assert.Equal(500, first.Data.Length);
        for (var i = 0; i < 3; i++) h.Feed(TcpFlags.Ack, C, S, default, window: 125);
        var re = Assert.Single(h.Take());
        Assert.Equal(1, h.Counters.TcpFastRetransmits);
        Assert.Equal(S, re.Seq);
        Assert.Equal(500, re.Data.Length);
        // The client acknowledges everything it got: accepted, and the next bytes go out.
        h.Feed(TcpFlags.Ack, C, S + (uint)re.Data.Length, default, window: 125);
        Assert.Equal(4500, h.Conn.BufferedSend);
        Assert.Equal(S + 500, Assert.Single(h.Take()).Seq);
    }

    [Fact]
    public async Task RttSample_SetsRto_PerRfc6298()
    {
        var h = new TcpHarness(new TcpOptions { MinRtoMs = 10 });
        h.Establish();
        await h.Conn.WriteAsync(new byte[100], CancellationToken.None);
        h.Take();
        h.Clock.NowMilliseconds += 100;
        h.Feed(TcpFlags.Ack, C, S + 100);
        // First sample R: SRTT=R, RTTVAR=R/2, RTO = SRTT + 4*RTTVAR = 3R.
        Assert.Equal(300, h.Conn.RetransmissionTimeoutMs);
    }

    [Fact]
    public async Task ZeroWindow_StopsSending_ProbesWithBackoff_AndResumesOnUpdate()
    {
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 1000 });
        h.Establish();
        h.Feed(TcpFlags.Ack, C, S, default, window: 0);
        await h.Conn.WriteAsync(new byte[100], CancellationToken.None);
        Assert.Empty(h.Take());
        h.Advance(1000);
        var probe = Assert.Single(h.Take());
        Assert.Equal(S - 1, probe.Seq);
        Assert.Empty(probe.Data);
        h.Advance(1000);
        Assert.Empty(h.Take()); // backed off to 2 s
        h.Advance(1000);
        Assert.Single(h.Take());
        h.Feed(TcpFlags.Ack, C, S, default, window: 100);
        var data = Assert.Single(h.Take());
        Assert.Equal(100, data.Data.Length);
    }

    [Fact]
    public void ReceiveWindow_ClosesWhenTheApplicationDoesNotRead_AndReopensAfterRead()
    {
        var h = new TcpHarness(new TcpOptions { ReceiveBuffer = 8192, MinReceiveSegments = 0, WindowScale = 0 });
        h.Establish();
        for (uint i = 0; i < 8; i++) h.Feed(TcpFlags.Ack, C + i * 1024, S, new byte[1024]);
        var last = h.Take().Last();
        Assert.Equal(C + 8192, last.Ack);
        Assert.Equal(0, last.Segment.Window);
        // A segment beyond the closed window is not accepted: the answer is an ACK for what we have.
        h.Feed(TcpFlags.Ack, C + 8192, S, new byte[10]);
        var resp = Assert.Single(h.Take());
        Assert.Equal(C + 8192, resp.Ack);
        Assert.Equal(8192, h.Conn.BufferedReceive);
        var buf = new byte[8192];
        var read = h.Conn.ReadAsync(buf, CancellationToken.None);
        Assert.True(read.IsCompletedSuccessfully);
        var update = Assert.Single(h.Take());
        Assert.Equal(8192, update.Segment.Window);
    }

    [Theory]
    [InlineData(1460, 256 * 1024)]
    [InlineData(65480, 16 * 65480)]
    public void ReceiveWindow_HoldsAtLeastSixteenOfOurSegments(int ourMss, int expectedWindow)
    {
        // The tun's 64 KiB segments would get a four-segment window from the 256 KiB byte default alone.
        var h = new TcpHarness(ourMss: ourMss);
        h.Establish();
        h.Feed(TcpFlags.Ack | TcpFlags.Psh, C, S, new byte[10]);
        h.Feed(TcpFlags.Ack | TcpFlags.Psh, C + 10, S, new byte[10]);
        var ack = h.Take().Last();
        Assert.Equal(C + 20, ack.Ack);
        var window = ack.Segment.Window << h.Options.WindowScale;
        Assert.InRange(window, expectedWindow - 20 - (1 << h.Options.WindowScale), expectedWindow);
    }

    [Fact]
    public async Task ClientFin_EndsReads_WeCanStillWrite_ThenOurFinClosesAfterAck()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack | TcpFlags.Fin, C, S, "bye"u8);
        Assert.Equal(TcpState.CloseWait, h.Conn.State);
        Assert.Equal(C + 4, Assert.Single(h.Take()).Ack);
        var buf = new byte[10];
        Assert.Equal(3, await h.Conn.ReadAsync(buf, CancellationToken.None));
        Assert.Equal(0, await h.Conn.ReadAsync(buf, CancellationToken.None));
        await h.Conn.WriteAsync("reply"u8.ToArray(), CancellationToken.None);
        h.Conn.ShutdownWrite();
        var segs = h.Take();
        Assert.Equal(2, segs.Count);
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, segs[1].Flags);
        Assert.Equal(S + 5, segs[1].Seq);
        Assert.Equal(TcpState.LastAck, h.Conn.State);
        h.Feed(TcpFlags.Ack, C + 4, S + 6);
        Assert.True(h.Conn.IsClosed);
    }

    [Fact]
    public async Task OurFinFirst_FinWait_ThenTimeWaitIsBounded_AndReAcksRetransmittedFin()
    {
        var h = new TcpHarness(new TcpOptions { TimeWaitMs = 500 });
        h.Establish();
        h.Conn.ShutdownWrite();
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, Assert.Single(h.Take()).Flags);
        Assert.Equal(TcpState.FinWait1, h.Conn.State);
        h.Feed(TcpFlags.Ack, C, S + 1);
        Assert.Equal(TcpState.FinWait2, h.Conn.State);
        // Half-close: the client can still send data.
        h.Feed(TcpFlags.Ack, C, S + 1, "late"u8);
        h.Feed(TcpFlags.Ack | TcpFlags.Fin, C + 4, S + 1);
        Assert.Equal(TcpState.TimeWait, h.Conn.State);
        Assert.Equal(C + 5, h.Take().Last().Ack);
        var buf = new byte[10];
        Assert.Equal(4, await h.Conn.ReadAsync(buf, CancellationToken.None));
        h.Feed(TcpFlags.Ack | TcpFlags.Fin, C + 4, S + 1);
        Assert.Equal(C + 5, Assert.Single(h.Take()).Ack);
        h.Advance(499);
        Assert.Equal(TcpState.TimeWait, h.Conn.State);
        h.Advance(1);
        Assert.True(h.Conn.IsClosed);
    }

    [Fact]
    public async Task SimultaneousClose_GoesThroughClosing()
    {
        var h = new TcpHarness(new TcpOptions { TimeWaitMs = 100 });
        h.Establish();
        h.Conn.ShutdownWrite();
        h.Take();
        h.Feed(TcpFlags.Ack | TcpFlags.Fin, C, S);
        Assert.Equal(TcpState.Closing, h.Conn.State);
        h.Feed(TcpFlags.Ack, C + 1, S + 1);
        Assert.Equal(TcpState.TimeWait, h.Conn.State);
        Assert.Equal(0, await h.Conn.ReadAsync(new byte[1], CancellationToken.None));
    }

    [Fact]
    public async Task ExactRst_ResetsReadsAndWrites_InWindowRstGetsChallengeAck_OutOfWindowIgnored()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Rst, C + 100_000_000, 0);
        Assert.Empty(h.Take());
        h.Feed(TcpFlags.Rst, C + 10, 0);
        Assert.Equal(TcpFlags.Ack, Assert.Single(h.Take()).Flags);
        Assert.Equal(TcpState.Established, h.Conn.State);
        h.Feed(TcpFlags.Rst, C, 0);
        Assert.True(h.Conn.IsClosed);
        await Assert.ThrowsAsync<IOException>(async () => await h.Conn.ReadAsync(new byte[1], CancellationToken.None));
        await Assert.ThrowsAsync<IOException>(async () => await h.Conn.WriteAsync(new byte[1], CancellationToken.None));
    }

    [Fact]
    public void Abort_SendsRst()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Conn.Abort();
        var rst = Assert.Single(h.Take());
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal(S, rst.Seq);
        Assert.True(h.Conn.IsClosed);
    }

    [Fact]
    public async Task TooManyTimeouts_ResetTheFlow()
    {
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 200, MaxRetransmits = 3 });
        h.Establish();
        await h.Conn.WriteAsync(new byte[10], CancellationToken.None);
        for (var i = 0; i < 10 && !h.Conn.IsClosed; i++) h.Advance(60_000);
        Assert.True(h.Conn.IsClosed);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, h.Take().Last().Flags);
    }

    [Fact]
    public void AckForUnsentData_IsAnsweredWithAck_AndIgnored()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Ack, C, S + 500);
        Assert.Equal(S, Assert.Single(h.Take()).Seq);
    }

    [Fact]
    public void SynOnEstablishedFlow_GetsChallengeAck()
    {
        var h = new TcpHarness();
        h.Establish();
        h.Feed(TcpFlags.Syn, C + 5, 0);
        Assert.Equal(TcpFlags.Ack, Assert.Single(h.Take()).Flags);
        Assert.Equal(TcpState.Established, h.Conn.State);
    }

    [Fact]
    public void OutOfOrderQueue_IsBoundedBySegmentCountAndBudget()
    {
        var h = new TcpHarness(new TcpOptions { MaxOutOfOrderSegments = 4 });
        h.Establish();
        for (uint i = 1; i <= 10; i++) h.Feed(TcpFlags.Ack, C + i * 100, S, new byte[50]);
        Assert.Equal(6, h.Counters.TcpOutOfOrderDropped);
        Assert.True(h.Budget.Used <= 4 * 50);
    }
}
