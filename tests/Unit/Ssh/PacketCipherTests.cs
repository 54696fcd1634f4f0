using System.Security.Cryptography;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Ssh;

public sealed class PacketCipherTests
{
    [Fact]
    public void Ctr_MatchesNistSp80038aVector_AcrossPackets()
    {
        // SP 800-38A F.5.1 CTR-AES128: the counter must carry over from one packet to the next.
        var key = Convert.FromHexString("2b7e151628aed2a6abf7158809cf4f3c");
        var iv = Convert.FromHexString("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        using var c = new CtrHmacCipher(key, iv, HashAlgorithmName.SHA256, new byte[32], etm: true);
        // ETM leaves the 4 length bytes in clear and encrypts the rest, so feed 4 + 16 bytes twice.
        var p1 = new byte[20];
        Convert.FromHexString("6bc1bee22e409f96e93d7e117393172a").CopyTo(p1, 4);
        var p2 = new byte[20];
        Convert.FromHexString("ae2d8a571e03ac9c9eb76fac45af8e51").CopyTo(p2, 4);
        var mac = new byte[32];
        c.Encrypt(0, p1, mac);
        c.Encrypt(1, p2, mac);
        Assert.Equal("874d6191b620e3261bef6864990db6ce", Convert.ToHexString(p1.AsSpan(4)).ToLowerInvariant());
        Assert.Equal("9806f66b7970fdff8617187bb9fffdff", Convert.ToHexString(p2.AsSpan(4)).ToLowerInvariant());
    }

    public static TheoryData<string, string?> Suites => new()
    {
        { SshAlgorithms.Aes256Gcm, null },
        { SshAlgorithms.Aes128Gcm, null },
        { SshAlgorithms.Aes128Ctr, SshAlgorithms.HmacSha256 },
        { SshAlgorithms.Aes192Ctr, SshAlgorithms.HmacSha512 },
        { SshAlgorithms.Aes256Ctr, SshAlgorithms.HmacSha256Etm },
        { SshAlgorithms.Aes256Ctr, SshAlgorithms.HmacSha512Etm },
    };

    private static (PacketCipher, PacketCipher) Pair(string cipher, string? mac)
    {
        var key = RandomNumberGenerator.GetBytes(SshAlgorithms.KeySize(cipher));
        var iv = RandomNumberGenerator.GetBytes(SshAlgorithms.IvSize(cipher));
        var mk = mac is null ? [] : RandomNumberGenerator.GetBytes(SshAlgorithms.MacKeySize(mac));
        return (SshAlgorithms.CreateCipher(cipher, mac, key, iv, mk), SshAlgorithms.CreateCipher(cipher, mac, key, iv, mk));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void RoundTrip_ManyPackets_AndTamperDetected(string cipher, string? mac)
    {
        var (enc, dec) = Pair(cipher, mac);
        using (enc)
        using (dec)
        {
            var rng = new Random(5);
            for (uint seq = 0; seq < 50; seq++)
            {
                var bodyLen = 16 * rng.Next(1, 200) - (enc.LengthInClear ? 0 : 4);
                var packet = new byte[4 + bodyLen];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)bodyLen);
                rng.NextBytes(packet.AsSpan(4));
                var plain = packet.ToArray();
                var tag = new byte[enc.MacSize];
                enc.Encrypt(seq, packet, tag);
                Assert.NotEqual(plain.AsSpan(4).ToArray(), packet.AsSpan(4).ToArray());
                var first = packet.AsSpan(0, dec.FirstBlockSize);
                Assert.Equal((uint)bodyLen, dec.DecryptLength(seq, first));
                if (seq == 49)
                {
                    packet[^1] ^= 1;
                    Assert.False(dec.DecryptRest(seq, packet, tag));
                    return;
                }
                Assert.True(dec.DecryptRest(seq, packet, tag));
                Assert.Equal(plain, packet);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void WrongSequenceNumberOrNonce_Fails(string cipher, string? mac)
    {
        var (enc, dec) = Pair(cipher, mac);
        using (enc)
        using (dec)
        {
            var len = enc.LengthInClear ? 64 : 60;
            byte[] Packet()
            {
                var p = new byte[4 + len];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(p, (uint)len);
                return p;
            }
            var tag = new byte[enc.MacSize];
            enc.Encrypt(0, Packet(), tag);
            enc.Encrypt(1, Packet(), tag);
            // The sender is two packets ahead of the receiver: GCM's nonce, CTR's counter and HMAC's seq all differ.
            var second = Packet();
            var tag2 = new byte[enc.MacSize];
            enc.Encrypt(2, second, tag2);
            dec.DecryptLength(0, second.AsSpan(0, dec.FirstBlockSize));
            Assert.False(dec.DecryptRest(0, second, tag2));
        }
    }
}
