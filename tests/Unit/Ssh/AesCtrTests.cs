using System.Security.Cryptography;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Ssh;

public sealed class AesCtrTests
{
    private const string Plain = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

    [Theory]
    // NIST SP 800-38A F.5.1, F.5.3 and F.5.5: CTR-AES128, -AES192 and -AES256 with the same counter block and plaintext.
    [InlineData("2b7e151628aed2a6abf7158809cf4f3c", "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee")]
    [InlineData("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "1abc932417521ca24f2b0459fe7e6e0b090339ec0aa6faefd5ccc2c6f4ce8e941e36b26bd1ebc670d1bd1d665620abf74f78a7f6d29809585a97daec58c6b050")]
    [InlineData("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6")]
    public void Both_paths_match_the_NIST_vectors(string key, string cipher)
    {
        foreach (var cpu in new[] { true, false })
        {
            using var ctr = new AesCtr(Convert.FromHexString(key), Convert.FromHexString("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), cpu);
            var data = Convert.FromHexString(Plain)[..(cipher.Length / 2)];
            ctr.Transform(data);
            Assert.Equal(cipher, Convert.ToHexString(data).ToLowerInvariant());
        }
    }

    [Theory]
    [InlineData(16)]
    [InlineData(24)]
    [InlineData(32)]
    public void The_AES_instructions_give_the_ECB_keystream_across_calls_and_a_counter_carry(int keySize)
    {
        var key = RandomNumberGenerator.GetBytes(keySize);
        // The low 64 bits wrap after three blocks, inside the first group of eight: the carry must reach the high half.
        var iv = Convert.FromHexString("0123456789abcdeffffffffffffffffd");
        using var fast = new AesCtr(key, iv);
        using var reference = new AesCtr(key, iv, useCpuInstructions: false);
        Assert.Equal(System.Runtime.Intrinsics.X86.Aes.IsSupported, fast.UsesCpuInstructions);
        Assert.False(reference.UsesCpuInstructions);
        var rng = new Random(keySize);
        // Runs shorter than, equal to and longer than a group of eight, and longer than the ECB path's chunk.
        foreach (var blocks in new[] { 1, 7, 8, 9, 17, 2048 + 5, 3 })
        {
            var data = new byte[blocks * 16];
            rng.NextBytes(data);
            var expected = data.ToArray();
            fast.Transform(data);
            reference.Transform(expected);
            Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(data));
        }
    }

    [Fact]
    public void Partial_blocks_and_bad_keys_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new AesCtr(new byte[20], new byte[16]));
        using var ctr = new AesCtr(new byte[16], new byte[16]);
        Assert.Throws<ArgumentException>(() => ctr.Transform(new byte[24]));
    }
}
