using System.Buffers.Binary;
using System.Security.Cryptography;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// One direction's packet protection (RFC 4253 §6, OpenSSH PROTOCOL §1.5/§1.6). The transport owns the
/// framing; a cipher only encrypts, decrypts and authenticates a framed packet in place.
/// Layout handled here: <c>uint32 packet_length | byte padding_length | payload | padding | mac</c>.
/// </summary>
internal abstract class PacketCipher : IDisposable
{
    /// <summary>Padding multiple (RFC 4253: max(8, cipher block size)).</summary>
    public abstract int BlockSize { get; }

    /// <summary>Bytes of MAC or AEAD tag after the packet.</summary>
    public abstract int MacSize { get; }

    /// <summary>True when packet_length travels in clear and is not counted in the padding multiple (ETM, GCM).</summary>
    public abstract bool LengthInClear { get; }

    /// <summary>Bytes that must be present before <see cref="DecryptLength"/> can read the length.</summary>
    public int FirstBlockSize => LengthInClear ? 4 : BlockSize;

    /// <summary>Encrypts <paramref name="packet"/> (length field included) in place and writes the MAC or tag.</summary>
    public abstract void Encrypt(uint seq, Span<byte> packet, Span<byte> mac);

    /// <summary>Returns packet_length; may decrypt <paramref name="firstBlock"/> in place (CTR without ETM).</summary>
    public abstract uint DecryptLength(uint seq, Span<byte> firstBlock);

    /// <summary>Authenticates and decrypts the rest of the packet in place; false when the MAC or tag is wrong.</summary>
    public abstract bool DecryptRest(uint seq, Span<byte> packet, ReadOnlySpan<byte> mac);

    public virtual void Dispose()
    {
    }
}

/// <summary>The "none" cipher in force until the first NEWKEYS.</summary>
internal sealed class NoneCipher : PacketCipher
{
    public static readonly NoneCipher Instance = new();

    public override int BlockSize => 8;

    public override int MacSize => 0;

    public override bool LengthInClear => false;

    public override void Encrypt(uint seq, Span<byte> packet, Span<byte> mac)
    {
    }

    public override uint DecryptLength(uint seq, Span<byte> firstBlock) => BinaryPrimitives.ReadUInt32BigEndian(firstBlock);

    public override bool DecryptRest(uint seq, Span<byte> packet, ReadOnlySpan<byte> mac) => true;
}

/// <summary>
/// aes128-gcm@openssh.com / aes256-gcm@openssh.com: AAD is the clear length, the 12-byte nonce is
/// fixed(4) ‖ counter(8) and only the counter increments per packet. One AesGcm instance per direction.
/// </summary>
internal sealed class GcmCipher : PacketCipher
{
    private readonly AesGcm _gcm;
    private readonly byte[] _nonce = new byte[12];

    public GcmCipher(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv)
    {
        _gcm = new AesGcm(key, 16);
        iv[..12].CopyTo(_nonce);
    }

    public override int BlockSize => 16;

    public override int MacSize => 16;

    public override bool LengthInClear => true;

    private void IncrementNonce()
    {
        var span = _nonce.AsSpan(4, 8);
        BinaryPrimitives.WriteUInt64BigEndian(span, BinaryPrimitives.ReadUInt64BigEndian(span) + 1);
    }

    public override void Encrypt(uint seq, Span<byte> packet, Span<byte> mac)
    {
        var body = packet[4..];
        _gcm.Encrypt(_nonce, body, body, mac[..16], packet[..4]);
        IncrementNonce();
    }

    public override uint DecryptLength(uint seq, Span<byte> firstBlock) => BinaryPrimitives.ReadUInt32BigEndian(firstBlock);

    public override bool DecryptRest(uint seq, Span<byte> packet, ReadOnlySpan<byte> mac)
    {
        var body = packet[4..];
        try
        {
            _gcm.Decrypt(_nonce, body, mac[..16], body, packet[..4]);
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
        IncrementNonce();
        return true;
    }

    public override void Dispose() => _gcm.Dispose();
}

/// <summary>
/// aes*-ctr with hmac-sha2-256/512, plain (MAC over the plaintext packet) or -etm@openssh.com (length in
/// clear, MAC over the ciphertext, checked before decrypting). The CTR keystream comes from <see cref="AesCtr"/>;
/// its 128-bit counter persists across packets.
/// </summary>
internal sealed class CtrHmacCipher : PacketCipher
{
    private readonly AesCtr _ctr;
    private readonly IncrementalHash _hmac;
    private readonly int _macSize;
    private readonly bool _etm;
    private readonly byte[] _seqBuf = new byte[4];
    private readonly byte[] _macBuf = new byte[64];

    public CtrHmacCipher(ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, HashAlgorithmName macHash, ReadOnlySpan<byte> macKey, bool etm)
    {
        _ctr = new AesCtr(key, iv);
        _hmac = IncrementalHash.CreateHMAC(macHash, macKey);
        _macSize = macHash == HashAlgorithmName.SHA512 ? 64 : 32;
        _etm = etm;
    }

    public override int BlockSize => 16;

    public override int MacSize => _macSize;

    public override bool LengthInClear => _etm;

    private void Mac(uint seq, ReadOnlySpan<byte> packet, Span<byte> dest)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_seqBuf, seq);
        _hmac.AppendData(_seqBuf);
        _hmac.AppendData(packet);
        _hmac.TryGetHashAndReset(dest, out _);
    }

    public override void Encrypt(uint seq, Span<byte> packet, Span<byte> mac)
    {
        if (_etm)
        {
            _ctr.Transform(packet[4..]);
            Mac(seq, packet, mac[.._macSize]);
        }
        else
        {
            Mac(seq, packet, mac[.._macSize]);
            _ctr.Transform(packet);
        }
    }

    public override uint DecryptLength(uint seq, Span<byte> firstBlock)
    {
        if (_etm) return BinaryPrimitives.ReadUInt32BigEndian(firstBlock);
        _ctr.Transform(firstBlock[..16]);
        return BinaryPrimitives.ReadUInt32BigEndian(firstBlock);
    }

    public override bool DecryptRest(uint seq, Span<byte> packet, ReadOnlySpan<byte> mac)
    {
        var computed = _macBuf.AsSpan(0, _macSize);
        if (_etm)
        {
            Mac(seq, packet, computed);
            if (!CryptographicOperations.FixedTimeEquals(computed, mac[.._macSize])) return false;
            _ctr.Transform(packet[4..]);
            return true;
        }
        _ctr.Transform(packet[16..]);
        Mac(seq, packet, computed);
        return CryptographicOperations.FixedTimeEquals(computed, mac[.._macSize]);
    }

    public override void Dispose()
    {
        _ctr.Dispose();
        _hmac.Dispose();
    }
}
