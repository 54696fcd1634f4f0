using System.Security.Cryptography;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Unit.Ssh;

public sealed class SshKeyTests
{
    public static TheoryData<string> KeyKinds => new() { "ecdsa256", "ecdsa384", "ecdsa521", "rsa" };

    private static SshKeyPair Make(string kind) => kind switch
    {
        "ecdsa384" => SshKeyPair.FromEcdsa(ECDsa.Create(ECCurve.NamedCurves.nistP384), "c384"),
        "ecdsa521" => SshKeyPair.FromEcdsa(ECDsa.Create(ECCurve.NamedCurves.nistP521), "c521"),
        "rsa" => SshKeyPair.GenerateRsa(2048, "crsa"),
        _ => SshKeyPair.GenerateEcdsa("c256"),
    };

    [Theory]
    [MemberData(nameof(KeyKinds))]
    public void OpenSshFormat_RoundTrips_AndSignaturesVerify(string kind)
    {
        using var key = Make(kind);
        var text = key.ToOpenSshPrivateKey();
        Assert.StartsWith("-----BEGIN OPENSSH PRIVATE KEY-----\n", text);
        using var back = SshKeyPair.Parse(text);
        Assert.Equal(key.PublicKey, back.PublicKey);
        Assert.Equal(key.Comment, back.Comment);
        foreach (var algo in back.SignatureAlgorithms(null))
        {
            var data = RandomNumberGenerator.GetBytes(100);
            var sig = back.Sign(algo, data);
            Assert.True(key.PublicKey.Verify(algo, data, sig));
            data[0] ^= 1;
            Assert.False(key.PublicKey.Verify(algo, data, sig));
        }
    }

    [Fact]
    public void Pkcs1Pem_RoundTrips()
    {
        using var key = SshKeyPair.GenerateRsa(2048);
        var pem = key.ToPkcs1Pem();
        Assert.StartsWith("-----BEGIN RSA PRIVATE KEY-----", pem);
        using var back = SshKeyPair.Parse(pem);
        Assert.Equal(key.PublicKey, back.PublicKey);
    }

    [Theory]
    [MemberData(nameof(KeyKinds))]
    public void AuthorizedKeysLine_RoundTrips(string kind)
    {
        using var key = Make(kind);
        var line = key.ToAuthorizedKeysLine();
        Assert.StartsWith(key.KeyType + " ", line);
        Assert.EndsWith(" " + key.Comment, line);
        Assert.Equal(key.PublicKey, SshPublicKey.ParseAuthorizedKey(line));
        Assert.Equal(key.PublicKey, SshPublicKey.ParseAuthorizedKey("no-pty,command=\"x\" " + line));
        Assert.StartsWith("SHA256:", key.PublicKey.Fingerprint);
        Assert.Equal(50, key.PublicKey.Fingerprint.Length);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2 x")]
    [InlineData("ecdsa-sha2-nistp256 not-base64!")]
    [InlineData("ecdsa-sha2-nistp256 AAAAB3NzaC1yc2EAAAADAQABAAAAgQ==")]
    public void BadPublicKeys_AreTypedErrors(string line)
    {
        var e = Assert.ThrowsAny<SshException>(() => SshPublicKey.ParseAuthorizedKey(line));
        Assert.True(e.ErrorId is SshErrorIds.KeyFormatInvalid or SshErrorIds.MalformedMessage, e.ErrorId);
    }

    [Theory]
    [InlineData("no key here")]
    [InlineData("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----")]
    [InlineData("-----BEGIN OPENSSH PRIVATE KEY-----\n!!\n-----END OPENSSH PRIVATE KEY-----")]
    [InlineData("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----")]
    public void BadPrivateKeys_AreTypedErrors(string text)
    {
        var e = Assert.Throws<SshException>(() => SshKeyPair.Parse(text));
        Assert.Equal(SshErrorIds.KeyFormatInvalid, e.ErrorId);
    }

    [Fact]
    public void EncryptedOpenSshKey_IsRefusedWithAHint()
    {
        // openssh-key-v1 header with cipher aes256-ctr, as ssh-keygen writes for a passphrase.
        using var w = new SshWriter();
        w.Raw("openssh-key-v1\0"u8).String("aes256-ctr").String("bcrypt").String(new byte[24]).UInt32(1).String(new byte[10]).String(new byte[16]);
        var pem = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + Convert.ToBase64String(w.Span) + "\n-----END OPENSSH PRIVATE KEY-----\n";
        var e = Assert.Throws<SshException>(() => SshKeyPair.Parse(pem));
        Assert.Contains("ssh-keygen -p", e.Message);
    }

    [Fact]
    public void Options_RequireExpectedHostKeys()
    {
        Assert.Throws<ArgumentException>(() => new SshClientOptions().Validate());
        using var k = SshKeyPair.GenerateEcdsa();
        new SshClientOptions { ExpectedHostKeys = [k.PublicKey] }.Validate();
        Assert.Throws<ArgumentException>(() => new SshClientOptions
        {
            ExpectedHostKeys = [k.PublicKey],
            Algorithms = new SshAlgorithmPreferences { Ciphers = ["chacha20-poly1305@openssh.com"] },
        }.Validate());
    }
}
