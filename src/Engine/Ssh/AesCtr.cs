using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;
using X86Aes = System.Runtime.Intrinsics.X86.Aes;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// AES in counter mode (NIST SP 800-38A §6.5) as SSH's aes*-ctr uses it (RFC 4344 §4): a 128-bit big-endian
/// counter that goes on from one call to the next. .NET has no CTR mode, so it is built here in one of two ways.
/// <list type="bullet">
/// <item>With AES-NI: eight counter blocks at a time go through the AES round instructions and are XORed straight
/// into the data. One pass over the data, no keystream buffer, no native call.</item>
/// <item>Elsewhere: a run of counter blocks is written out, encrypted in one call of a reused ECB transform into a
/// keystream buffer, and XORed in.</item>
/// </list>
/// </summary>
internal sealed class AesCtr : IDisposable
{
    private const int ChunkBlocks = 1024;

    /// <summary>Round keys for the AES-NI path (FIPS 197 §5.2), or null on the ECB path.</summary>
    private readonly Vector128<byte>[]? _roundKeys;
    private readonly Aes? _aes;
    private readonly ICryptoTransform? _ecb;
    private readonly byte[]? _counters;
    private readonly byte[]? _keystream;
    private ulong _hi;
    private ulong _lo;

    /// <param name="key">16, 24 or 32 bytes.</param>
    /// <param name="iv">The initial counter block, 16 bytes.</param>
    /// <param name="useCpuInstructions">False forces the ECB path (tests compare the two).</param>
    public AesCtr(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, bool useCpuInstructions = true)
    {
        if (key.Length is not (16 or 24 or 32)) throw new ArgumentException("An AES key is 16, 24 or 32 bytes.", nameof(key));
        _hi = BinaryPrimitives.ReadUInt64BigEndian(iv);
        _lo = BinaryPrimitives.ReadUInt64BigEndian(iv[8..]);
        if (useCpuInstructions && X86Aes.IsSupported)
        {
            _roundKeys = ExpandKey(key);
            return;
        }
        _aes = Aes.Create();
        _aes.Key = key.ToArray();
        _aes.Mode = CipherMode.ECB;
        _aes.Padding = PaddingMode.None;
        // One native context for the connection's life; the one-shot EncryptEcb would create one per call.
        _ecb = _aes.CreateEncryptor();
        _counters = new byte[ChunkBlocks * 16];
        _keystream = new byte[ChunkBlocks * 16];
    }

    /// <summary>Whether this instance uses the AES instructions rather than the ECB transform.</summary>
    public bool UsesCpuInstructions => _roundKeys is not null;

    /// <summary>XORs the next <c>data.Length / 16</c> keystream blocks into <paramref name="data"/>, whose length is a multiple of 16.</summary>
    public void Transform(Span<byte> data)
    {
        if (data.Length % 16 != 0) throw new ArgumentException("CTR data here is whole blocks.", nameof(data));
        if (_roundKeys is not null) TransformWithAesNi(data, _roundKeys);
        else TransformWithEcb(data);
    }

    /// <summary>The current counter block as a vector (bytes in big-endian order), then steps the counter.</summary>
    private Vector128<byte> NextCounter()
    {
        var block = Vector128.Create(BinaryPrimitives.ReverseEndianness(_hi), BinaryPrimitives.ReverseEndianness(_lo)).AsByte();
        if (++_lo == 0) _hi++;
        return block;
    }

    private void TransformWithAesNi(Span<byte> data, Vector128<byte>[] rk)
    {
        var blocks = MemoryMarshal.Cast<byte, Vector128<byte>>(data);
        var rounds = rk.Length - 1;
        var i = 0;
        for (; i + 8 <= blocks.Length; i += 8)
        {
            var k0 = rk[0];
            var b0 = NextCounter() ^ k0;
            var b1 = NextCounter() ^ k0;
            var b2 = NextCounter() ^ k0;
            var b3 = NextCounter() ^ k0;
            var b4 = NextCounter() ^ k0;
            var b5 = NextCounter() ^ k0;
            var b6 = NextCounter() ^ k0;
            var b7 = NextCounter() ^ k0;
            for (var r = 1; r < rounds; r++)
            {
                var k = rk[r];
                b0 = X86Aes.Encrypt(b0, k);
                b1 = X86Aes.Encrypt(b1, k);
                b2 = X86Aes.Encrypt(b2, k);
                b3 = X86Aes.Encrypt(b3, k);
                b4 = X86Aes.Encrypt(b4, k);
                b5 = X86Aes.Encrypt(b5, k);
                b6 = X86Aes.Encrypt(b6, k);
                b7 = X86Aes.Encrypt(b7, k);
            }
            var kl = rk[rounds];
            blocks[i] ^= X86Aes.EncryptLast(b0, kl);
            blocks[i + 1] ^= X86Aes.EncryptLast(b1, kl);
            blocks[i + 2] ^= X86Aes.EncryptLast(b2, kl);
            blocks[i + 3] ^= X86Aes.EncryptLast(b3, kl);
            blocks[i + 4] ^= X86Aes.EncryptLast(b4, kl);
            blocks[i + 5] ^= X86Aes.EncryptLast(b5, kl);
            blocks[i + 6] ^= X86Aes.EncryptLast(b6, kl);
            blocks[i + 7] ^= X86Aes.EncryptLast(b7, kl);
        }
        for (; i < blocks.Length; i++)
        {
            var b = NextCounter() ^ rk[0];
            for (var r = 1; r < rounds; r++) b = X86Aes.Encrypt(b, rk[r]);
            blocks[i] ^= X86Aes.EncryptLast(b, rk[rounds]);
        }
    }

    private void TransformWithEcb(Span<byte> data)
    {
        while (!data.IsEmpty)
        {
            var n = Math.Min(data.Length, _counters!.Length);
            var ctr = _counters.AsSpan(0, n);
            for (var i = 0; i < n; i += 16)
            {
                BinaryPrimitives.WriteUInt64BigEndian(ctr[i..], _hi);
                BinaryPrimitives.WriteUInt64BigEndian(ctr[(i + 8)..], _lo);
                if (++_lo == 0) _hi++;
            }
            _ecb!.TransformBlock(_counters, 0, n, _keystream!, 0);
            XorInPlace(data[..n], _keystream.AsSpan(0, n));
            data = data[n..];
        }
    }

    private static void XorInPlace(Span<byte> data, ReadOnlySpan<byte> ks)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && data.Length >= Vector<byte>.Count)
        {
            var dv = MemoryMarshal.Cast<byte, Vector<byte>>(data);
            var kv = MemoryMarshal.Cast<byte, Vector<byte>>(ks);
            for (var j = 0; j < dv.Length; j++) dv[j] ^= kv[j];
            i = dv.Length * Vector<byte>.Count;
        }
        for (; i < data.Length; i++) data[i] ^= ks[i];
    }

    /// <summary>
    /// The FIPS 197 §5.2 key schedule, words little-endian so a round key's vector holds its bytes in order. SubWord
    /// comes from AESKEYGENASSIST, which substitutes the word in lane 1 into lane 0.
    /// </summary>
    private static Vector128<byte>[] ExpandKey(ReadOnlySpan<byte> key)
    {
        var nk = key.Length / 4;
        var rounds = nk + 6;
        var w = new uint[4 * (rounds + 1)];
        for (var i = 0; i < nk; i++) w[i] = BinaryPrimitives.ReadUInt32LittleEndian(key[(4 * i)..]);
        uint rcon = 1;
        for (var i = nk; i < w.Length; i++)
        {
            var t = w[i - 1];
            if (i % nk == 0)
            {
                // RotWord moves byte 0 to the end: in a little-endian word, a right rotation by 8.
                t = SubWord(BitOperations.RotateRight(t, 8)) ^ rcon;
                rcon = (rcon << 1) ^ ((rcon & 0x80) != 0 ? 0x11bu : 0u);
            }
            else if (nk > 6 && i % nk == 4)
            {
                t = SubWord(t);
            }
            w[i] = w[i - nk] ^ t;
        }
        var keys = new Vector128<byte>[rounds + 1];
        for (var r = 0; r <= rounds; r++) keys[r] = Vector128.Create(w[4 * r], w[4 * r + 1], w[4 * r + 2], w[4 * r + 3]).AsByte();
        Array.Clear(w);
        return keys;
    }

    private static uint SubWord(uint word) => X86Aes.KeygenAssist(Vector128.Create(0u, word, 0u, 0u).AsByte(), 0).AsUInt32().ToScalar();

    public void Dispose()
    {
        if (_roundKeys is not null) Array.Clear(_roundKeys);
        _ecb?.Dispose();
        _aes?.Dispose();
    }
}
