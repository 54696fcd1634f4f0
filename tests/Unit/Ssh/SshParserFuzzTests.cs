using System.Buffers.Binary;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Ssh;

/// <summary>
/// Seeded fuzzing of everything that parses peer bytes: a million random and mutated messages through
/// the message parsers, and mutated packet streams through the transport (framing, version exchange,
/// key-exchange messages). The only acceptable failure is a typed <see cref="SshException"/>, and no
/// single input may make the parser allocate more than a small bound.
/// </summary>
public sealed class SshParserFuzzTests
{
    private static byte[][] Seeds()
    {
        using var key = SshKeyPair.GenerateEcdsa();
        using var rsa = SshKeyPair.GenerateRsa(1024);
        var list = new List<byte[]>();
        void Add(Action<SshWriter> build)
        {
            using var w = new SshWriter();
            build(w);
            list.Add(w.ToArray());
        }
        Add(w => w.Byte(20).Raw(new byte[16]).String("ecdh-sha2-nistp256,kex-strict-s-v00@openssh.com").String("ecdsa-sha2-nistp256,rsa-sha2-512")
            .String("aes128-ctr,aes256-gcm@openssh.com").String("aes128-ctr").String("hmac-sha2-256").String("hmac-sha2-256")
            .String("none").String("none").String("").String("").Boolean(false).UInt32(0));
        Add(w => w.Byte(31).String(key.PublicKey.Blob.Span).String(new byte[65]).String(key.Sign("ecdsa-sha2-nistp256", new byte[32])));
        Add(w => w.Byte(31).String(rsa.PublicKey.Blob.Span).String(new byte[65]).String(rsa.Sign("rsa-sha2-256", new byte[32])));
        Add(w => w.Byte(1).UInt32(11).String("bye").String(""));
        Add(w => w.Byte(7).UInt32(2).String("server-sig-algs").String("rsa-sha2-256,ecdsa-sha2-nistp256").String("ping@openssh.com").String("0"));
        Add(w => w.Byte(51).String("publickey,password").Boolean(false));
        Add(w => w.Byte(80).String("hostkeys-00@openssh.com").Boolean(false).String(key.PublicKey.Blob.Span));
        Add(w => w.Byte(90).String("forwarded-tcpip").UInt32(3).UInt32(2097152).UInt32(32768).String("0.0.0.0").UInt32(8080).String("10.0.0.1").UInt32(5555));
        Add(w => w.Byte(90).String("x11").UInt32(3).UInt32(1).UInt32(1));
        Add(w => w.Byte(91).UInt32(0).UInt32(1).UInt32(2097152).UInt32(32768));
        Add(w => w.Byte(92).UInt32(0).UInt32(2).String("connect failed").String(""));
        Add(w => w.Byte(93).UInt32(0).UInt32(65536));
        Add(w => w.Byte(94).UInt32(0).String(new byte[40]));
        Add(w => w.Byte(95).UInt32(0).UInt32(1).String(new byte[40]));
        Add(w => w.Byte(96).UInt32(0));
        Add(w => w.Byte(97).UInt32(0));
        Add(w => w.Byte(98).UInt32(0).String("exit-status").Boolean(false).UInt32(3));
        Add(w => w.Byte(98).UInt32(0).String("exit-signal").Boolean(false).String("KILL").Boolean(false).String("killed").String(""));
        Add(w => w.Byte(99).UInt32(0));
        list.Add(key.PublicKey.Blob.ToArray());
        list.Add(rsa.PublicKey.Blob.ToArray());
        return [.. list];
    }

    private static readonly int[] KeySeeds = [1, 2, 19, 20];
    private static readonly int[] PlainSeeds = [.. Enumerable.Range(0, 21).Except(KeySeeds)];

    private static byte[] Mutate(Random rng, byte[] seed)
    {
        var b = seed.ToList();
        var n = rng.Next(1, 5);
        for (var i = 0; i < n; i++)
        {
            switch (rng.Next(6))
            {
                case 0 when b.Count > 0:
                    b[rng.Next(b.Count)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1 when b.Count > 0:
                    b[rng.Next(b.Count)] = (byte)rng.Next(256);
                    break;
                case 2 when b.Count > 0:
                    b.RemoveRange(rng.Next(b.Count), 1);
                    break;
                case 3 when b.Count > 1:
                {
                    var at = rng.Next(1, b.Count);
                    b.RemoveRange(at, b.Count - at);
                    break;
                }
                case 4 when b.Count >= 4:
                {
                    // A length field overwritten with an extreme value.
                    var at = rng.Next(b.Count - 3);
                    uint v = rng.Next(4) switch { 0 => uint.MaxValue, 1 => 0x7fffffff, 2 => (uint)rng.Next(1000), _ => (uint)b.Count };
                    b[at] = (byte)(v >> 24);
                    b[at + 1] = (byte)(v >> 16);
                    b[at + 2] = (byte)(v >> 8);
                    b[at + 3] = (byte)v;
                    break;
                }
                default:
                    b.Insert(rng.Next(b.Count + 1), (byte)rng.Next(256));
                    break;
            }
        }
        return [.. b];
    }

    [Fact]
    public void MessageParsers_MillionInputs_OnlyTypedErrors_BoundedAllocation()
    {
        var rng = new Random(20261121);
        var seeds = Seeds();
        var typed = 0;
        long worst = 0;
        for (var i = 0; i < 1_000_000; i++)
        {
            byte[] input;
            if (i % 8 == 0)
            {
                input = new byte[rng.Next(0, 96)];
                rng.NextBytes(input);
                if (input.Length > 0 && rng.Next(2) == 0) input[0] = seeds[rng.Next(seeds.Length)][0];
            }
            else
            {
                // Inputs carrying a public key make the parser import a key (tens of microseconds): 1 in 20.
                var seed = rng.Next(20) == 0 ? seeds[KeySeeds[rng.Next(KeySeeds.Length)]] : seeds[PlainSeeds[rng.Next(PlainSeeds.Length)]];
                input = Mutate(rng, seed);
            }
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                SshMessages.ParseAny(input);
            }
            catch (SshException)
            {
                typed++;
            }
            var used = GC.GetAllocatedBytesForCurrentThread() - before;
            if (used > worst) worst = used;
            Assert.True(used < 256 * 1024 + 64L * input.Length, $"input {i} ({Convert.ToHexString(input)}) allocated {used} bytes");
        }
        Assert.InRange(typed, 100_000, 999_999);
    }

    /// <summary>A stream that reads from a fixed byte array and swallows writes.</summary>
    private sealed class ScriptStream(byte[] input) : Stream
    {
        private int _pos;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => input.Length;

        public override long Position { get => _pos; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(count, input.Length - _pos);
            Array.Copy(input, _pos, buffer, offset, n);
            _pos += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = Math.Min(buffer.Length, input.Length - _pos);
            input.AsSpan(_pos, n).CopyTo(buffer.Span);
            _pos += n;
            return ValueTask.FromResult(n);
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static byte[] Frame(byte[] payload)
    {
        var pad = 8 - (5 + payload.Length) % 8;
        if (pad < 4) pad += 8;
        var p = new byte[5 + payload.Length + pad];
        BinaryPrimitives.WriteUInt32BigEndian(p, (uint)(1 + payload.Length + pad));
        p[4] = (byte)pad;
        payload.CopyTo(p, 5);
        return p;
    }

    [Fact]
    public async Task PacketStreams_MutatedServerHandshakes_OnlyTypedErrors()
    {
        var rng = new Random(4253);
        var seeds = Seeds();
        using var hostKey = SshKeyPair.GenerateEcdsa();
        var options = new SshClientOptions { ExpectedHostKeys = [hostKey.PublicKey] };
        var version = "SSH-2.0-Fuzz\r\n"u8.ToArray();
        var good = version.Concat(Frame(seeds[0])).Concat(Frame(seeds[1])).Concat(Frame([21])).Concat(Frame(seeds[4])).ToArray();
        var typed = 0;
        const int Runs = 25_000;
        for (var i = 0; i < Runs; i++)
        {
            byte[] input = rng.Next(10) switch
            {
                0 => version.Concat(Enumerable.Range(0, rng.Next(200)).Select(_ => (byte)rng.Next(256))).ToArray(),
                1 => Enumerable.Range(0, rng.Next(300)).Select(_ => (byte)rng.Next(256)).ToArray(),
                _ => Mutate(rng, good),
            };
            var transport = new SshTransport(new ScriptStream(input), options, CancellationToken.None);
            try
            {
                await transport.ExchangeVersionsAsync(CancellationToken.None);
                await transport.RunInitialKeyExchangeAsync(CancellationToken.None);
                await transport.ReadPacketAsync(CancellationToken.None);
            }
            catch (SshException)
            {
                typed++;
            }
            finally
            {
                transport.Dispose();
            }
        }
        Assert.Equal(Runs, typed);
    }
}
