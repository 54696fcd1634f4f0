using System.Numerics;
using System.Security.Cryptography;
using System.Text;

namespace KtConnect.Engine.Ssh;

/// <summary>
/// A user identity key (ECDSA P-256/384/521 or RSA) held in memory. Reads and writes the OpenSSH
/// private key format (unencrypted, PROTOCOL.key) and PEM PKCS#1 RSA, and prints authorized_keys lines.
/// </summary>
public sealed class SshKeyPair : IDisposable
{
    private const string OpenSshMagic = "openssh-key-v1\0";
    private readonly ECDsa? _ecdsa;
    private readonly RSA? _rsa;

    private SshKeyPair(ECDsa? ecdsa, RSA? rsa, string comment)
    {
        _ecdsa = ecdsa;
        _rsa = rsa;
        Comment = comment;
        PublicKey = SshPublicKey.FromBlob(BuildPublicBlob());
    }

    public string Comment { get; }

    public SshPublicKey PublicKey { get; }

    /// <summary><c>ecdsa-sha2-nistp256</c>, ..., or <c>ssh-rsa</c>.</summary>
    public string KeyType => PublicKey.KeyType;

    /// <summary>A fresh ECDSA P-256 key, the default per-session identity.</summary>
    public static SshKeyPair GenerateEcdsa(string comment = "ktconnect") =>
        new(ECDsa.Create(ECCurve.NamedCurves.nistP256), null, comment);

    public static SshKeyPair GenerateRsa(int bits = 3072, string comment = "ktconnect") =>
        new(null, RSA.Create(bits), comment);

    /// <summary>Takes ownership of <paramref name="key"/>.</summary>
    public static SshKeyPair FromEcdsa(ECDsa key, string comment = "") => new(key, null, comment);

    /// <summary>Takes ownership of <paramref name="key"/>.</summary>
    public static SshKeyPair FromRsa(RSA key, string comment = "") => new(null, key, comment);

    private string EcdsaType => _ecdsa!.KeySize switch
    {
        256 => SshAlgorithms.EcdsaNistp256,
        384 => SshAlgorithms.EcdsaNistp384,
        521 => SshAlgorithms.EcdsaNistp521,
        _ => throw new SshException(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, "Only NIST P-256/384/521 ECDSA keys are supported."),
    };

    private byte[] BuildPublicBlob()
    {
        using var w = new SshWriter();
        if (_ecdsa is not null)
        {
            var type = EcdsaType;
            var p = _ecdsa.ExportParameters(false);
            w.String(type).String(type["ecdsa-sha2-".Length..]).String(EncodePoint(p.Q));
        }
        else
        {
            var p = _rsa!.ExportParameters(false);
            w.String(SshAlgorithms.SshRsa).MpintUnsigned(p.Exponent).MpintUnsigned(p.Modulus);
        }
        return w.ToArray();
    }

    private static byte[] EncodePoint(ECPoint q)
    {
        var b = new byte[1 + q.X!.Length + q.Y!.Length];
        b[0] = 4;
        q.X.CopyTo(b, 1);
        q.Y.CopyTo(b, 1 + q.X.Length);
        return b;
    }

    /// <summary>
    /// Signature algorithms to try, best first, given the server's server-sig-algs (null when unknown).
    /// RSA prefers rsa-sha2-512, then rsa-sha2-256; SHA-1 ssh-rsa only when the server lists no SHA-2 form.
    /// </summary>
    internal IReadOnlyList<string> SignatureAlgorithms(IReadOnlyCollection<string>? serverSigAlgs)
    {
        if (_ecdsa is not null) return [EcdsaType];
        if (serverSigAlgs is null) return [SshAlgorithms.RsaSha512, SshAlgorithms.RsaSha256];
        var list = new List<string>();
        if (serverSigAlgs.Contains(SshAlgorithms.RsaSha512)) list.Add(SshAlgorithms.RsaSha512);
        if (serverSigAlgs.Contains(SshAlgorithms.RsaSha256)) list.Add(SshAlgorithms.RsaSha256);
        if (list.Count == 0) list.Add(SshAlgorithms.SshRsa);
        return list;
    }

    /// <summary>The SSH signature field <c>string algo | string blob</c> over <paramref name="data"/>.</summary>
    internal byte[] Sign(string algorithm, ReadOnlySpan<byte> data)
    {
        using var w = new SshWriter();
        w.String(algorithm);
        if (_ecdsa is not null)
        {
            var sig = _ecdsa.SignData(data, SshPublicKey.EcdsaHash(algorithm), DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            var half = sig.Length / 2;
            using var inner = new SshWriter();
            inner.MpintUnsigned(sig.AsSpan(0, half)).MpintUnsigned(sig.AsSpan(half));
            w.String(inner.Span);
        }
        else
        {
            var hash = algorithm switch
            {
                SshAlgorithms.RsaSha512 => HashAlgorithmName.SHA512,
                SshAlgorithms.RsaSha256 => HashAlgorithmName.SHA256,
                _ => HashAlgorithmName.SHA1,
            };
            w.String(_rsa!.SignData(data.ToArray(), hash, RSASignaturePadding.Pkcs1));
        }
        return w.ToArray();
    }

    /// <summary>The authorized_keys line for this key.</summary>
    public string ToAuthorizedKeysLine() => PublicKey.ToAuthorizedKeysLine(Comment);

    /// <summary>Writes the key as an unencrypted <c>-----BEGIN OPENSSH PRIVATE KEY-----</c> file.</summary>
    public string ToOpenSshPrivateKey()
    {
        using var priv = new SshWriter();
        var check = (uint)RandomNumberGenerator.GetInt32(int.MaxValue);
        priv.UInt32(check).UInt32(check).String(KeyType);
        if (_ecdsa is not null)
        {
            var p = _ecdsa.ExportParameters(true);
            priv.String(KeyType["ecdsa-sha2-".Length..]).String(EncodePoint(p.Q)).MpintUnsigned(p.D);
        }
        else
        {
            var p = _rsa!.ExportParameters(true);
            priv.MpintUnsigned(p.Modulus).MpintUnsigned(p.Exponent).MpintUnsigned(p.D).MpintUnsigned(p.InverseQ)
                .MpintUnsigned(p.P).MpintUnsigned(p.Q);
        }
        priv.String(Comment);
        for (byte i = 1; priv.Length % 8 != 0; i++) priv.Byte(i);

        using var w = new SshWriter(1024);
        w.Raw(Encoding.ASCII.GetBytes(OpenSshMagic)).String("none").String("none").String(ReadOnlySpan<byte>.Empty)
            .UInt32(1).String(PublicKey.Blob.Span).String(priv.Span);
        return Pem("OPENSSH PRIVATE KEY", w.Span, 70);
    }

    /// <summary>RSA keys only: <c>-----BEGIN RSA PRIVATE KEY-----</c> (PKCS#1), as kt-connect stores them.</summary>
    public string ToPkcs1Pem()
    {
        if (_rsa is null) throw new InvalidOperationException("PKCS#1 PEM holds RSA keys only.");
        return Pem("RSA PRIVATE KEY", _rsa.ExportRSAPrivateKey(), 64);
    }

    private static string Pem(string label, ReadOnlySpan<byte> der, int width)
    {
        var b64 = Convert.ToBase64String(der);
        var sb = new StringBuilder();
        sb.Append("-----BEGIN ").Append(label).Append("-----\n");
        for (var i = 0; i < b64.Length; i += width) sb.Append(b64, i, Math.Min(width, b64.Length - i)).Append('\n');
        sb.Append("-----END ").Append(label).Append("-----\n");
        return sb.ToString();
    }

    /// <summary>Reads an unencrypted OpenSSH private key or a PEM PKCS#1 RSA key.</summary>
    public static SshKeyPair Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Contains("-----BEGIN RSA PRIVATE KEY-----", StringComparison.Ordinal))
        {
            var rsa = RSA.Create();
            try
            {
                rsa.ImportFromPem(text);
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException)
            {
                rsa.Dispose();
                throw Invalid("The PKCS#1 RSA key could not be read", e);
            }
            return new SshKeyPair(null, rsa, "");
        }
        const string begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
        const string end = "-----END OPENSSH PRIVATE KEY-----";
        var s = text.IndexOf(begin, StringComparison.Ordinal);
        var e2 = text.IndexOf(end, StringComparison.Ordinal);
        if (s < 0 || e2 < s) throw Invalid("No OpenSSH or PKCS#1 RSA private key found");
        byte[] data;
        try
        {
            data = Convert.FromBase64String(text[(s + begin.Length)..e2].Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Trim());
        }
        catch (FormatException e)
        {
            throw Invalid("The key's base64 body is not valid", e);
        }
        try
        {
            return ParseOpenSsh(data);
        }
        catch (SshException e) when (e.ErrorId == SshErrorIds.MalformedMessage)
        {
            throw Invalid("The OpenSSH private key is truncated or malformed", e);
        }
    }

    private static SshException Invalid(string msg, Exception? inner = null) =>
        new(SshErrorIds.KeyFormatInvalid, KtErrorCategory.InvalidData, msg + ".", inner);

    private static SshKeyPair ParseOpenSsh(byte[] data)
    {
        var magic = Encoding.ASCII.GetBytes(OpenSshMagic);
        if (!data.AsSpan().StartsWith(magic)) throw Invalid("Missing openssh-key-v1 magic");
        var r = new SshReader(data.AsSpan(magic.Length));
        var cipher = Encoding.ASCII.GetString(r.ReadString());
        var kdf = Encoding.ASCII.GetString(r.ReadString());
        r.ReadString();
        if (cipher != "none" || kdf != "none") throw Invalid("Encrypted OpenSSH private keys are not supported; decrypt it with ssh-keygen -p");
        if (r.ReadUInt32() != 1) throw Invalid("Only files holding exactly one key are supported");
        r.ReadString();
        var pr = new SshReader(r.ReadString());
        if (pr.ReadUInt32() != pr.ReadUInt32()) throw Invalid("Check words differ (wrong passphrase or corrupt file)");
        var type = Encoding.ASCII.GetString(pr.ReadString());
        switch (type)
        {
            case SshAlgorithms.EcdsaNistp256 or SshAlgorithms.EcdsaNistp384 or SshAlgorithms.EcdsaNistp521:
            {
                var (curve, size) = SshPublicKey.CurveOf(type);
                pr.ReadString();
                var q = pr.ReadString();
                var d = pr.ReadMpintUnsigned();
                if (q.Length != 1 + 2 * size || q[0] != 4 || d.Length > size) throw Invalid("ECDSA key fields are malformed");
                var dd = new byte[size];
                d.CopyTo(dd.AsSpan(size - d.Length));
                var comment = Encoding.UTF8.GetString(pr.ReadString());
                var ec = ECDsa.Create();
                try
                {
                    ec.ImportParameters(new ECParameters
                    {
                        Curve = curve,
                        D = dd,
                        Q = new ECPoint { X = q.Slice(1, size).ToArray(), Y = q.Slice(1 + size, size).ToArray() },
                    });
                }
                catch (CryptographicException e)
                {
                    ec.Dispose();
                    throw Invalid("ECDSA key is not valid", e);
                }
                return new SshKeyPair(ec, null, comment);
            }
            case SshAlgorithms.SshRsa:
            {
                var n = pr.ReadMpintUnsigned().ToArray();
                var e = pr.ReadMpintUnsigned().ToArray();
                var d = pr.ReadMpintUnsigned().ToArray();
                var iqmp = pr.ReadMpintUnsigned().ToArray();
                var p = pr.ReadMpintUnsigned().ToArray();
                var q = pr.ReadMpintUnsigned().ToArray();
                var comment = Encoding.UTF8.GetString(pr.ReadString());
                var rsa = RSA.Create();
                try
                {
                    rsa.ImportParameters(RsaParameters(n, e, d, iqmp, p, q));
                }
                catch (CryptographicException ex)
                {
                    rsa.Dispose();
                    throw Invalid("RSA key is not valid", ex);
                }
                return new SshKeyPair(null, rsa, comment);
            }
            default:
                throw Invalid($"Key type '{type}' is not supported (ECDSA and RSA are)");
        }
    }

    /// <summary>.NET wants DP/DQ and fixed field lengths; the OpenSSH file has neither.</summary>
    private static RSAParameters RsaParameters(byte[] n, byte[] e, byte[] d, byte[] iqmp, byte[] p, byte[] q)
    {
        var bd = new BigInteger(d, isUnsigned: true, isBigEndian: true);
        var bp = new BigInteger(p, isUnsigned: true, isBigEndian: true);
        var bq = new BigInteger(q, isUnsigned: true, isBigEndian: true);
        var half = (n.Length + 1) / 2;
        return new RSAParameters
        {
            Modulus = n,
            Exponent = e,
            D = Pad(d, n.Length),
            P = Pad(p, half),
            Q = Pad(q, half),
            DP = Pad((bd % (bp - 1)).ToByteArray(isUnsigned: true, isBigEndian: true), half),
            DQ = Pad((bd % (bq - 1)).ToByteArray(isUnsigned: true, isBigEndian: true), half),
            InverseQ = Pad(iqmp, half),
        };
    }

    private static byte[] Pad(byte[] v, int len)
    {
        if (v.Length == len) return v;
        if (v.Length > len) throw Invalid("RSA key field is longer than expected");
        var r = new byte[len];
        v.CopyTo(r, len - v.Length);
        return r;
    }

    public void Dispose()
    {
        _ecdsa?.Dispose();
        _rsa?.Dispose();
    }
}
