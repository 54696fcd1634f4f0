using System.Security.Cryptography;
using System.Text;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// A public key in SSH wire form (RFC 4253 §6.6, RFC 5656 §3.1): host keys to pin and identity public
/// keys for authorized_keys. Supports ecdsa-sha2-nistp256/384/521 and ssh-rsa blobs.
/// </summary>
public sealed class SshPublicKey : IEquatable<SshPublicKey>
{
    private readonly byte[] _blob;

    private SshPublicKey(byte[] blob, string keyType)
    {
        _blob = blob;
        KeyType = keyType;
    }

    /// <summary>The blob's type name: <c>ecdsa-sha2-nistp256</c>, <c>ssh-rsa</c>, ...</summary>
    public string KeyType { get; }

    public ReadOnlyMemory<byte> Blob => _blob;

    /// <summary>OpenSSH-style <c>SHA256:base64-without-padding</c>.</summary>
    public string Fingerprint => FingerprintOf(_blob);

    internal static string FingerprintOf(ReadOnlySpan<byte> blob) =>
        "SHA256:" + Convert.ToBase64String(SHA256.HashData(blob)).TrimEnd('=');

    /// <summary>Parses and validates a key blob (the point must lie on the curve; RSA must be sane).</summary>
    public static SshPublicKey FromBlob(ReadOnlySpan<byte> blob)
    {
        var type = ReadType(blob);
        // Validate eagerly so a bad pinned key fails when configured, not at connect time.
        switch (type)
        {
            case SshAlgorithms.EcdsaNistp256 or SshAlgorithms.EcdsaNistp384 or SshAlgorithms.EcdsaNistp521:
                using (CreateEcdsa(blob)) { }
                break;
            case SshAlgorithms.SshRsa:
                using (CreateRsa(blob)) { }
                break;
            default:
                throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, $"SSH key type '{type}' is not supported.");
        }
        return new SshPublicKey(blob.ToArray(), type);
    }

    private static string ReadType(ReadOnlySpan<byte> blob)
    {
        var r = new SshReader(blob);
        var t = r.ReadString();
        return Encoding.ASCII.GetString(t);
    }

    /// <summary>Parses an authorized_keys / known_hosts style line: <c>[options] type base64 [comment]</c>.</summary>
    public static SshPublicKey ParseAuthorizedKey(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var parts = line.Trim().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i + 1 < parts.Length; i++)
        {
            if (Array.IndexOf(SshAlgorithms.AllHostKey, parts[i]) < 0) continue;
            byte[] blob;
            try
            {
                blob = Convert.FromBase64String(parts[i + 1]);
            }
            catch (FormatException e)
            {
                throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "The key's base64 part is not valid.", e);
            }
            var key = FromBlob(blob);
            if (key.KeyType != parts[i]) throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "The key type does not match the key blob.");
            return key;
        }
        throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "No SSH public key found in the line.");
    }

    /// <summary>The authorized_keys line <c>type base64 comment</c>.</summary>
    public string ToAuthorizedKeysLine(string? comment = null) =>
        KeyType + " " + Convert.ToBase64String(_blob) + (string.IsNullOrEmpty(comment) ? "" : " " + comment);

    public override string ToString() => KeyType + " " + Fingerprint;

    public bool Equals(SshPublicKey? other) => other is not null && _blob.AsSpan().SequenceEqual(other._blob);

    public override bool Equals(object? obj) => Equals(obj as SshPublicKey);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.AddBytes(_blob);
        return h.ToHashCode();
    }

    internal static ECDsa CreateEcdsa(ReadOnlySpan<byte> blob)
    {
        var r = new SshReader(blob);
        var type = Encoding.ASCII.GetString(r.ReadString());
        var curveName = Encoding.ASCII.GetString(r.ReadString());
        var q = r.ReadString();
        var (curve, size) = CurveOf(type);
        if (curveName != type["ecdsa-sha2-".Length..]) throw SshException.Malformed("ECDSA curve name does not match key type");
        if (q.Length != 1 + 2 * size || q[0] != 4) throw SshException.Malformed("ECDSA point is not an uncompressed point");
        var p = new ECParameters
        {
            Curve = curve,
            Q = new ECPoint { X = q.Slice(1, size).ToArray(), Y = q.Slice(1 + size, size).ToArray() },
        };
        try
        {
            return ECDsa.Create(p);
        }
        catch (CryptographicException e)
        {
            throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "ECDSA public key is not a valid curve point.", e);
        }
    }

    internal static (ECCurve Curve, int Size) CurveOf(string type) => type switch
    {
        SshAlgorithms.EcdsaNistp256 => (ECCurve.NamedCurves.nistP256, 32),
        SshAlgorithms.EcdsaNistp384 => (ECCurve.NamedCurves.nistP384, 48),
        SshAlgorithms.EcdsaNistp521 => (ECCurve.NamedCurves.nistP521, 66),
        _ => throw SshException.Malformed("unknown ECDSA key type"),
    };

    internal static HashAlgorithmName EcdsaHash(string type) => type switch
    {
        SshAlgorithms.EcdsaNistp384 => HashAlgorithmName.SHA384,
        SshAlgorithms.EcdsaNistp521 => HashAlgorithmName.SHA512,
        _ => HashAlgorithmName.SHA256,
    };

    internal static RSA CreateRsa(ReadOnlySpan<byte> blob)
    {
        var r = new SshReader(blob);
        r.ReadString();
        var e = r.ReadMpintUnsigned();
        var n = r.ReadMpintUnsigned();
        if (n.Length < 128 || n.Length > 2048 || e.IsEmpty || e.Length > 8)
            throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "RSA public key size is out of range (1024..16384 bits).");
        var rsa = RSA.Create();
        try
        {
            rsa.ImportParameters(new RSAParameters { Exponent = e.ToArray(), Modulus = n.ToArray() });
        }
        catch (CryptographicException ex)
        {
            rsa.Dispose();
            throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "RSA public key is not valid.", ex);
        }
        return rsa;
    }

    /// <summary>
    /// Verifies an SSH signature field (<c>string algo | string blob</c>) made by this key over
    /// <paramref name="data"/>. <paramref name="expectedAlgorithm"/> is the negotiated algorithm.
    /// </summary>
    internal bool Verify(string expectedAlgorithm, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        var r = new SshReader(signature);
        var algo = Encoding.ASCII.GetString(r.ReadString());
        var sig = r.ReadString();
        if (algo != expectedAlgorithm) return false;
        if (SshAlgorithms.HostKeyBlobType(algo) != KeyType) return false;
        switch (algo)
        {
            case SshAlgorithms.EcdsaNistp256 or SshAlgorithms.EcdsaNistp384 or SshAlgorithms.EcdsaNistp521:
            {
                var (_, size) = CurveOf(algo);
                var sr = new SshReader(sig);
                var rr = sr.ReadMpintUnsigned();
                var ss = sr.ReadMpintUnsigned();
                if (rr.Length > size || ss.Length > size) return false;
                Span<byte> p1363 = stackalloc byte[2 * 66];
                p1363 = p1363[..(2 * size)];
                p1363.Clear();
                rr.CopyTo(p1363[(size - rr.Length)..size]);
                ss.CopyTo(p1363[(2 * size - ss.Length)..]);
                using var ec = CreateEcdsa(_blob);
                return ec.VerifyData(data, p1363, EcdsaHash(algo));
            }
            case SshAlgorithms.RsaSha256 or SshAlgorithms.RsaSha512 or SshAlgorithms.SshRsa:
            {
                using var rsa = CreateRsa(_blob);
                var modLen = (rsa.KeySize + 7) / 8;
                if (sig.Length > modLen) return false;
                // OpenSSH accepts signatures shorter than the modulus; left-pad them (Go keys.go).
                var padded = new byte[modLen];
                sig.CopyTo(padded.AsSpan(modLen - sig.Length));
                var hash = algo switch
                {
                    SshAlgorithms.RsaSha512 => HashAlgorithmName.SHA512,
                    SshAlgorithms.RsaSha256 => HashAlgorithmName.SHA256,
                    _ => HashAlgorithmName.SHA1,
                };
                return rsa.VerifyData(data, padded, hash, RSASignaturePadding.Pkcs1);
            }
            default:
                return false;
        }
    }
}
