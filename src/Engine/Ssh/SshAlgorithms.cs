using System.Security.Cryptography;

namespace KtConnect.Engine.Ssh;

/// <summary>Algorithm names this client implements, in default preference order.</summary>
public static class SshAlgorithms
{
    public const string EcdhNistp256 = "ecdh-sha2-nistp256";
    public const string EcdhNistp384 = "ecdh-sha2-nistp384";
    public const string EcdhNistp521 = "ecdh-sha2-nistp521";

    public const string EcdsaNistp256 = "ecdsa-sha2-nistp256";
    public const string EcdsaNistp384 = "ecdsa-sha2-nistp384";
    public const string EcdsaNistp521 = "ecdsa-sha2-nistp521";
    public const string RsaSha512 = "rsa-sha2-512";
    public const string RsaSha256 = "rsa-sha2-256";
    public const string SshRsa = "ssh-rsa";

    public const string Aes256Gcm = "aes256-gcm@openssh.com";
    public const string Aes128Gcm = "aes128-gcm@openssh.com";
    public const string Aes256Ctr = "aes256-ctr";
    public const string Aes192Ctr = "aes192-ctr";
    public const string Aes128Ctr = "aes128-ctr";

    public const string HmacSha256Etm = "hmac-sha2-256-etm@openssh.com";
    public const string HmacSha512Etm = "hmac-sha2-512-etm@openssh.com";
    public const string HmacSha256 = "hmac-sha2-256";
    public const string HmacSha512 = "hmac-sha2-512";

    internal const string ExtInfoC = "ext-info-c";
    internal const string StrictKexC = "kex-strict-c-v00@openssh.com";
    internal const string StrictKexS = "kex-strict-s-v00@openssh.com";

    public static IReadOnlyList<string> DefaultKex { get; } = [EcdhNistp256, EcdhNistp384, EcdhNistp521];

    public static IReadOnlyList<string> DefaultHostKey { get; } =
        [EcdsaNistp256, EcdsaNistp384, EcdsaNistp521, RsaSha512, RsaSha256];

    public static IReadOnlyList<string> DefaultCiphers { get; } = [Aes256Gcm, Aes128Gcm, Aes256Ctr, Aes192Ctr, Aes128Ctr];

    public static IReadOnlyList<string> DefaultMacs { get; } = [HmacSha256Etm, HmacSha512Etm, HmacSha256, HmacSha512];

    internal static readonly string[] AllKex = [EcdhNistp256, EcdhNistp384, EcdhNistp521];
    internal static readonly string[] AllHostKey = [EcdsaNistp256, EcdsaNistp384, EcdsaNistp521, RsaSha512, RsaSha256, SshRsa];
    internal static readonly string[] AllCiphers = [Aes256Gcm, Aes128Gcm, Aes256Ctr, Aes192Ctr, Aes128Ctr];
    internal static readonly string[] AllMacs = [HmacSha256Etm, HmacSha512Etm, HmacSha256, HmacSha512];

    internal static bool IsAead(string cipher) => cipher is Aes256Gcm or Aes128Gcm;

    internal static int KeySize(string cipher) => cipher switch
    {
        Aes256Gcm or Aes256Ctr => 32,
        Aes192Ctr => 24,
        _ => 16,
    };

    internal static int IvSize(string cipher) => IsAead(cipher) ? 12 : 16;

    internal static int MacKeySize(string mac) => mac is HmacSha512 or HmacSha512Etm ? 64 : 32;

    internal static HashAlgorithmName KexHash(string kex) => kex switch
    {
        EcdhNistp384 => HashAlgorithmName.SHA384,
        EcdhNistp521 => HashAlgorithmName.SHA512,
        _ => HashAlgorithmName.SHA256,
    };

    internal static ECCurve KexCurve(string kex) => kex switch
    {
        EcdhNistp384 => ECCurve.NamedCurves.nistP384,
        EcdhNistp521 => ECCurve.NamedCurves.nistP521,
        _ => ECCurve.NamedCurves.nistP256,
    };

    /// <summary>The key type (blob type) that a host-key algorithm name signs with.</summary>
    internal static string HostKeyBlobType(string hostKeyAlgorithm) =>
        hostKeyAlgorithm is RsaSha256 or RsaSha512 ? SshRsa : hostKeyAlgorithm;

    internal static PacketCipher CreateCipher(string cipher, string? mac, ReadOnlySpan<byte> key, ReadOnlySpan<byte> iv, ReadOnlySpan<byte> macKey)
    {
        if (IsAead(cipher)) return new GcmCipher(key, iv);
        var hash = mac is HmacSha512 or HmacSha512Etm ? HashAlgorithmName.SHA512 : HashAlgorithmName.SHA256;
        return new CtrHmacCipher(key, iv, hash, macKey, etm: mac is HmacSha256Etm or HmacSha512Etm);
    }

    /// <summary>First client entry that the server also lists (RFC 4253 §7.1; Go findCommon).</summary>
    internal static string? FirstCommon(IReadOnlyList<string> client, IReadOnlyList<string> server)
    {
        foreach (var c in client)
        {
            foreach (var s in server)
            {
                if (c == s) return c;
            }
        }
        return null;
    }
}

/// <summary>Which algorithms the client offers, in preference order. Unknown names are rejected.</summary>
public sealed class SshAlgorithmPreferences
{
    public IReadOnlyList<string> KeyExchange { get; init; } = SshAlgorithms.DefaultKex;

    public IReadOnlyList<string> HostKey { get; init; } = SshAlgorithms.DefaultHostKey;

    public IReadOnlyList<string> Ciphers { get; init; } = SshAlgorithms.DefaultCiphers;

    public IReadOnlyList<string> Macs { get; init; } = SshAlgorithms.DefaultMacs;

    internal void Validate()
    {
        Check(KeyExchange, SshAlgorithms.AllKex, nameof(KeyExchange));
        Check(HostKey, SshAlgorithms.AllHostKey, nameof(HostKey));
        Check(Ciphers, SshAlgorithms.AllCiphers, nameof(Ciphers));
        Check(Macs, SshAlgorithms.AllMacs, nameof(Macs));
    }

    private static void Check(IReadOnlyList<string> names, string[] known, string what)
    {
        if (names.Count == 0) throw new ArgumentException($"SSH {what} list is empty.", what);
        foreach (var n in names)
        {
            if (Array.IndexOf(known, n) < 0) throw new ArgumentException($"SSH {what} algorithm '{n}' is not supported.", what);
        }
    }
}
