using System.Security.Cryptography;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Unit.Net;

/// <summary>
/// Both directions at once through a channel that drops, reorders and duplicates packets (fixed seeds),
/// against a small model of a client TCP (go-back-N sender, in-order receiver). Every byte must arrive
/// exactly once and in order, and both sides must close.
/// </summary>
public class TcpLossSimulationTests
{
    [Theory]
    [InlineData(1, 0.0, 0.0)]
    [InlineData(2, 0.05, 0.2)]
    [InlineData(3, 0.10, 0.3)]
    [InlineData(4, 0.02, 0.5)]
    public async Task BulkBothWays_UnderLossAndReordering_ArrivesIntact(int seed, double loss, double reorder)
    {
        var rng = new Random(seed);
        var h = new TcpHarness(new TcpOptions { MinRtoMs = 50, InitialRtoMs = 200, TimeWaitMs = 100, MaxRetransmits = 30 });
        var up = RandomNumberGenerator.GetBytes(300_000);   // client -> us
        var down = RandomNumberGenerator.GetBytes(300_000); // us -> client
        h.Conn.Accept();
        var toClient = new List<(long At, byte[] P)>();
        var toServer = new List<(long At, byte[] P)>();

        void Channel(List<(long, byte[])> q, byte[] p)
        {
            if (rng.NextDouble() < loss) return;
            var delay = rng.NextDouble() < reorder ? rng.Next(1, 30) : 1;
            q.Add((h.Clock.NowMilliseconds + delay, p));
            if (rng.NextDouble() < 0.01) q.Add((h.Clock.NowMilliseconds + delay + 3, p));
        }

        // Client model state.
        var cSndUna = TcpHarness.ClientIsn + 1;
        var cSndNxt = cSndUna;
        uint cRcvNxt = 0;
        var established = false;
        var received = new MemoryStream();
        var cFinSent = false;
        var cFinAcked = false;
        var peerFin = false;
        long lastProgress = h.Clock.NowMilliseconds;
        var serverWindow = 65535L;
        var synAckSeen = false;

        var reader = Task.Run(async () =>
        {
            var ms = new MemoryStream();
            var buf = new byte[8192];
            int n;
            while ((n = await h.Conn.ReadAsync(buf, CancellationToken.None)) > 0) ms.Write(buf, 0, n);
            return ms.ToArray();
        });
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < down.Length; i += 7000)
                await h.Conn.WriteAsync(down.AsMemory(i, Math.Min(7000, down.Length - i)), CancellationToken.None);
            h.Conn.ShutdownWrite();
        });

        // Simulated milliseconds. Generous on purpose: after several losses the retransmission timer backs off to its
        // 60 s maximum, and the test asserts that every byte arrives, not how fast.
        for (var step = 0; step < 3_000_000; step++)
        {
            h.Clock.NowMilliseconds += 1;
            h.Conn.Tick();
            foreach (var p in h.Sink.Take()) Channel(toClient, p);

            // Deliver to the client model.
            foreach (var (_, p) in Due(toClient, h.Clock.NowMilliseconds))
            {
                var s = Sent.Parse(p);
                if ((s.Flags & TcpFlags.Rst) != 0) throw new InvalidOperationException("unexpected RST");
                if ((s.Flags & TcpFlags.Syn) != 0)
                {
                    synAckSeen = true;
                    cRcvNxt = s.Seq + 1;
                    Channel(toServer, TcpHarness.Build(TcpFlags.Ack, cSndNxt, cRcvNxt, [], 16384));
                    continue;
                }
                if (!synAckSeen) continue;
                established = true;
                serverWindow = (long)s.Segment.Window << 7;
                if (Gt(s.Ack, cSndUna))
                {
                    cSndUna = s.Ack;
                    lastProgress = h.Clock.NowMilliseconds;
                    if (cFinSent && cSndUna == TcpHarness.ClientIsn + 1 + (uint)up.Length + 1) cFinAcked = true;
                }
                var fin = (s.Flags & TcpFlags.Fin) != 0;
                if (s.Seq == cRcvNxt && (s.Data.Length > 0 || fin))
                {
                    received.Write(s.Data);
                    cRcvNxt += (uint)s.Data.Length;
                    if (fin)
                    {
                        cRcvNxt++;
                        peerFin = true;
                    }
                }
                if (s.Data.Length > 0 || fin) Channel(toServer, TcpHarness.Build(TcpFlags.Ack, cSndNxt, cRcvNxt, [], 16384));
            }

            // Client sender: go-back-N with a 100 ms timer, 1000-byte segments, within our window.
            if (established)
            {
                if (h.Clock.NowMilliseconds - lastProgress > 100 && cSndNxt != cSndUna)
                {
                    cSndNxt = cSndUna;
                    lastProgress = h.Clock.NowMilliseconds;
                }
                var sentThisStep = 0;
                while (sentThisStep < 4)
                {
                    var off = (int)(cSndNxt - (TcpHarness.ClientIsn + 1));
                    if (off < up.Length)
                    {
                        if (cSndNxt - cSndUna >= serverWindow) break;
                        var n = Math.Min(1000, up.Length - off);
                        Channel(toServer, TcpHarness.Build(TcpFlags.Ack, cSndNxt, cRcvNxt, up.AsSpan(off, n), 16384));
                        cSndNxt += (uint)n;
                        sentThisStep++;
                    }
                    else if (off == up.Length && !cFinAcked)
                    {
                        Channel(toServer, TcpHarness.Build(TcpFlags.Ack | TcpFlags.Fin, cSndNxt, cRcvNxt, [], 16384));
                        cSndNxt++;
                        cFinSent = true;
                        break;
                    }
                    else break;
                }
            }

            foreach (var (_, p) in Due(toServer, h.Clock.NowMilliseconds))
            {
                IpPacket.TryParse(p, out var ip);
                TcpSegment.TryParse(p, ip, out var seg);
                h.Conn.OnSegment(p, seg);
            }

            if (cFinAcked && peerFin && reader.IsCompleted && writer.IsCompleted && h.Conn.State is TcpState.Closed or TcpState.TimeWait)
                break;
            if (step % 64 == 0) await Task.Yield();
        }

        Assert.True(writer.IsCompleted, "the writer did not finish");
        Assert.True(reader.IsCompleted, "the reader did not finish");
        // On a mismatch, say where: a bare hash difference (as this test used to report) cannot tell a
        // short transfer from a corrupted or duplicated range, nor which side produced it.
        var context = $"seed {seed}, simulated {h.Clock.NowMilliseconds - TcpHarness.StartMilliseconds} ms, server {h.Conn.State}, "
            + $"client FIN acked {cFinAcked}, server FIN seen {peerFin}, retransmits {h.Counters.TcpRetransmits}";
        AssertSameBytes("client -> server (read by the application)", up, await reader, context);
        AssertSameBytes("server -> client (received by the client model)", down, received.ToArray(), context);
        Assert.True(cFinAcked && peerFin);
        Assert.True(h.Conn.State is TcpState.Closed or TcpState.TimeWait, h.Conn.State.ToString());
        if (loss > 0) Assert.True(h.Counters.TcpRetransmits > 0);
    }

    private static void AssertSameBytes(string direction, byte[] expected, byte[] actual, string context)
    {
        if (expected.AsSpan().SequenceEqual(actual)) return;
        var common = Math.Min(expected.Length, actual.Length);
        var first = expected.AsSpan(0, common).CommonPrefixLength(actual.AsSpan(0, common));
        Assert.Fail($"{direction}: sent {expected.Length} bytes, got {actual.Length}; first difference at offset {first}; {context}");
    }

    private static List<(long, byte[])> Due(List<(long At, byte[] P)> q, long now)
    {
        var due = q.Where(x => x.At <= now).ToList();
        q.RemoveAll(x => x.At <= now);
        return due;
    }

    private static bool Gt(uint a, uint b) => (int)(a - b) > 0;
}
