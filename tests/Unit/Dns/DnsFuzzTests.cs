using KtConnect.Engine.Dns;

namespace KtConnect.Tests.Unit.Dns;

/// <summary>
/// Random and mutated messages through every parser, with a fixed seed so a failure reproduces. The only exception
/// allowed is <see cref="DnsFormatException"/>; anything else (index out of range, overflow) fails the test.
/// </summary>
public sealed class DnsFuzzTests
{
    private const int Iterations = 1_000_000;

    [Fact]
    public void A_million_random_and_mutated_messages_only_ever_raise_the_typed_error()
    {
        var random = new Random(20261121);
        var seeds = Seeds();
        var buffer = new byte[4096];
        var ttls = new List<int>();
        var parsed = 0;
        for (var i = 0; i < Iterations; i++)
        {
            int length;
            if (i % 4 == 0)
            {
                length = random.Next(0, 128);
                random.NextBytes(buffer.AsSpan(0, length));
            }
            else
            {
                var seed = seeds[random.Next(seeds.Length)];
                seed.CopyTo(buffer, 0);
                length = seed.Length;
                var mutations = random.Next(1, 5);
                for (var m = 0; m < mutations; m++)
                {
                    switch (random.Next(5))
                    {
                        case 0: buffer[random.Next(length)] = (byte)random.Next(256); break;
                        case 1: buffer[random.Next(length)] ^= (byte)(1 << random.Next(8)); break;
                        case 2: length = random.Next(length + 1); break;
                        case 3: buffer[random.Next(length)] = (byte)(0xC0 | random.Next(4)); break;
                        default:
                            var extra = random.Next(1, 16);
                            if (length + extra < buffer.Length)
                            {
                                random.NextBytes(buffer.AsSpan(length, extra));
                                length += extra;
                            }
                            break;
                    }
                    if (length == 0) break;
                }
            }
            var span = buffer.AsSpan(0, length);
            // Each input goes through one of the three parsers in turn: the full parser, the server's query reader and
            // its response scanner.
            try
            {
                switch (i % 3)
                {
                    case 0:
                        var msg = DnsMessage.Parse(span);
                        parsed++;
                        msg.ToArray(); // whatever parses must also write
                        break;
                    case 1:
                        DnsPacket.ReadQuery(span);
                        parsed++;
                        break;
                    default:
                        DnsPacket.TryScanResponse(span, ttls, out _);
                        parsed++;
                        break;
                }
            }
            catch (DnsFormatException)
            {
            }
        }
        // The mutations must leave some inputs valid, or the fuzzer only tests the first check.
        Assert.True(parsed > Iterations / 50, $"only {parsed} inputs parsed");
    }

    private static byte[][] Seeds()
    {
        var name = DnsName.Parse("orders.dev.svc.cluster.local");
        var q = DnsMessage.CreateQuery(1, name, DnsType.A, new DnsEdns { Options = [new DnsEdnsOption(10, new byte[8])] });
        var r = DnsMessage.CreateResponse(q, DnsRcode.NoError);
        r.Answers.Add(DnsRecord.Address(name, System.Net.IPAddress.Parse("10.0.0.1"), 5));
        r.Answers.Add(DnsRecord.NameTarget(DnsName.Parse("x.dev.svc.cluster.local"), DnsType.CNAME, name, 5));
        r.Answers.Add(new DnsRecord(name, DnsType.SRV, DnsClass.IN, 5, (byte[])[0, 1, 0, 1, 0, 80, .. name.Wire.ToArray()]));
        r.Answers.Add(new DnsRecord(name, DnsType.MX, DnsClass.IN, 5, (byte[])[0, 1, .. name.Wire.ToArray()]));
        r.Answers.Add(DnsRecord.Txt(name, 5, "a", "bc"));
        r.Authorities.Add(DnsRecord.Soa(DnsName.Parse("cluster.local"), new DnsSoaData(name, name, 1, 2, 3, 4, 5), 5));
        r.Edns = new DnsEdns();
        return [q.ToArray(), r.ToArray(), DnsMessage.CreateQuery(2, DnsName.Parse("a"), DnsType.AAAA).ToArray()];
    }
}
