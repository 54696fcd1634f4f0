using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using KtConnect.Engine.Kube;

namespace KtConnect.Tests.Unit.Kube.Config;

/// <summary>
/// The kubeconfig's certificate-authority replaces the system store. kubectl (Go) takes any certificate in it as a
/// trust anchor, an intermediate CA included (a bundle that names only the issuing CA of a corporate PKI).
/// </summary>
public sealed class ServerCertificateTests
{
    private static X509Certificate2 Issue(string subject, X509Certificate2? issuer, bool ca, out ECDsa key)
    {
        key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(ca, false, 0, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        if (ca) request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        else
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("kube.test");
            request.CertificateExtensions.Add(san.Build());
        }
        var now = DateTimeOffset.UtcNow;
        if (issuer is null) return request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var signed = request.Create(issuer, now.AddMinutes(-4), now.AddHours(23), serial);
        return signed.CopyWithPrivateKey(key);
    }

    private static KubeClientConfiguration Trusting(params X509Certificate2[] authorities) => new()
    {
        Server = new Uri("https://kube.test:6443/"),
        ContextName = "c",
        ClusterName = "k",
        Credentials = AnonymousCredentials.Instance,
        CertificateAuthorities = new X509Certificate2Collection(authorities),
    };

    [Fact]
    public void A_bundle_of_only_the_issuing_intermediate_is_a_trust_anchor_as_in_kubectl()
    {
        using var root = Issue("root", null, true, out var rootKey);
        using var intermediate = Issue("intermediate", root, true, out var intermediateKey);
        using var leaf = Issue("kube.test", intermediate, false, out var leafKey);
        using var other = Issue("other root", null, true, out var otherKey);
        using var publicIntermediate = X509CertificateLoader.LoadCertificate(intermediate.RawData);
        using var publicRoot = X509CertificateLoader.LoadCertificate(root.RawData);

        // The server sends its leaf alone; the platform's own check failed (no chain to a system root).
        const SslPolicyErrors platform = SslPolicyErrors.RemoteCertificateChainErrors;
        Assert.True(Trusting(publicIntermediate).ValidateServerCertificate(this, leaf, null, platform));
        Assert.True(Trusting(publicRoot, publicIntermediate).ValidateServerCertificate(this, leaf, null, platform));
        Assert.False(Trusting(publicRoot).ValidateServerCertificate(this, leaf, null, platform));
        Assert.False(Trusting(other).ValidateServerCertificate(this, leaf, null, platform));
        // A certificate the intermediate did not issue is not trusted through it.
        using var stranger = Issue("kube.test", other, false, out var strangerKey);
        Assert.False(Trusting(publicIntermediate).ValidateServerCertificate(this, stranger, null, platform));
        foreach (var k in new[] { rootKey, intermediateKey, leafKey, otherKey, strangerKey }) k.Dispose();
    }
}
