using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

/// <summary>The retransmission timer after a loss episode (RFC 6298 section 5, Karn), on simulated time.</summary>
public class TcpRtoTests
{
    private const uint S = TcpHarness.Iss + 1;
    private const uint C = TcpHarness.ClientIsn + 1;

    /// <summary>Establishes, sends 1000 bytes, acknowledges them after 50 ms: SRTT 50, RTTVAR 25, RTO 200 (the minimum).</summary>
    private static async Task<TcpHarness> WithOneSampleAsync()
    {
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 1000, MinRtoMs = 200, MaxRtoMs = 60_000, MaxRetransmits = 30 });
        h.Establish();
        await h.Conn.WriteAsync(new byte[1000], CancellationToken.None);
        Assert.Single(h.Take());
        h.Advance(50);
        h.Feed(TcpFlags.Ack, C, S + 1000);
        Assert.Equal(200, h.Conn.RetransmissionTimeoutMs);
        return h;
    }

    /// <summary>Lets <paramref name="timeouts"/> retransmission timeouts pass with nothing acknowledged.</summary>
    private static void LoseEverything(TcpHarness h, int timeouts)
    {
        for (var i = 0; i < timeouts; i++)
        {
            var rto = h.Conn.RetransmissionTimeoutMs;
            h.Advance(rto - 1);
            Assert.Empty(h.Take());
            h.Advance(1);
            Assert.NotEmpty(h.Take());
            Assert.Equal(Math.Min(rto * 2, 60_000), h.Conn.RetransmissionTimeoutMs);
        }
    }

    [Fact]
    public async Task AfterLossEnds_TheNextLossIsRetransmittedAfterTheEstimatorsRto_NotTheBackedOffOne()
    {
        var h = await WithOneSampleAsync();
        await h.Conn.WriteAsync(new byte[1000], CancellationToken.None);
        Assert.Single(h.Take());
        LoseEverything(h, 6); // 200 -> 12800 ms
        Assert.Equal(12_800, h.Conn.RetransmissionTimeoutMs);

        // Loss ends: the retransmission is acknowledged. That ACK is ambiguous (Karn: no sample), but it covers
        // everything outstanding at the last timeout, so the backoff goes.
        h.Feed(TcpFlags.Ack, C, S + 2000);
        Assert.Equal(200, h.Conn.RetransmissionTimeoutMs);

        // The next segment is lost once: it is sent again after 200 ms, not after 12.8 s.
        await h.Conn.WriteAsync(new byte[1000], CancellationToken.None);
        var first = Assert.Single(h.Take());
        h.Advance(199);
        Assert.Empty(h.Take());
        h.Advance(1);
        var again = Assert.Single(h.Take());
        Assert.Equal(first.Seq, again.Seq);
        h.Feed(TcpFlags.Ack, C, S + 3000);
        Assert.Equal(0, h.Conn.BufferedSend);
    }

    [Fact]
    public async Task APartialAckDuringLoss_KeepsTheBackoff_Karn()
    {
        var h = await WithOneSampleAsync();
        await h.Conn.WriteAsync(new byte[3000], CancellationToken.None);
        Assert.Equal(3, h.Take().Count);
        LoseEverything(h, 3); // 200 -> 1600
        // Only the first retransmitted segment got through: the loss episode is not over, no valid sample exists.
        h.Feed(TcpFlags.Ack, C, S + 2000);
        Assert.Equal(1600, h.Conn.RetransmissionTimeoutMs);
        h.Take();
        h.Advance(1599);
        Assert.Empty(h.Take());
        h.Advance(1);
        Assert.Equal(S + 2000, h.Take()[0].Seq);
    }

    [Fact]
    public async Task AfterRepeatedBackoffs_TheNextValidSampleReinitialisesTheEstimator()
    {
        var h = await WithOneSampleAsync();
        await h.Conn.WriteAsync(new byte[1000], CancellationToken.None);
        h.Take();
        LoseEverything(h, 3);
        h.Feed(TcpFlags.Ack, C, S + 2000);

        // A new segment sent once, acknowledged after 150 ms (before the 200 ms timer): a valid sample. With
        // SRTT/RTTVAR cleared it is taken as the first sample (RTO = 150 + 4 * 75 = 450); averaged into the old
        // 50/25 it would give 62.5 + 4 * 43.75 = 237.
        await h.Conn.WriteAsync(new byte[1000], CancellationToken.None);
        Assert.Single(h.Take());
        h.Advance(150);
        Assert.Empty(h.Take());
        h.Feed(TcpFlags.Ack, C, S + 3000);
        Assert.Equal(450, h.Conn.RetransmissionTimeoutMs);
    }

    [Theory]
    [InlineData(0, 1000)]
    [InlineData(1, 3000)]
    [InlineData(3, 3000)]
    public void AHandshakeThatTimedOut_StartsDataWithAnRtoOfThreeSeconds(int synAckTimeouts, int expectedRto)
    {
        var h = new TcpHarness(new TcpOptions { InitialRtoMs = 1000, MinRtoMs = 200, SynAckRetries = 5 });
        h.Conn.Accept();
        Assert.Single(h.Take());
        for (var i = 0; i < synAckTimeouts; i++)
        {
            h.Advance(h.Conn.RetransmissionTimeoutMs);
            Assert.Single(h.Take());
        }
        h.Feed(TcpFlags.Ack, C, S);
        Assert.Equal(TcpState.Established, h.Conn.State);
        Assert.Equal(expectedRto, h.Conn.RetransmissionTimeoutMs); // 5.7, not the handshake's 2000/8000
    }
}
