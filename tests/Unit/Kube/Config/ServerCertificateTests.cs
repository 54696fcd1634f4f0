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
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>
    /// A CA, or a leaf naming kube.test (or <paramref name="addresses"/>) in its subject alternative names; with
    /// <paramref name="san"/> false, its subject's CN alone names it.
    /// </summary>
    private static X509Certificate2 Issue(string subject, X509Certificate2? issuer, bool ca, out ECDsa key, Oid[]? usages = null, bool san = true,
        string[]? addresses = null)
    {
        key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(ca, false, 0, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        if (ca) request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        else if (san)
        {
            var names = new SubjectAlternativeNameBuilder();
            if (addresses is null) names.AddDnsName("kube.test");
            foreach (var address in addresses ?? []) names.AddIpAddress(System.Net.IPAddress.Parse(address));
            request.CertificateExtensions.Add(names.Build());
        }
        if (usages is not null)
        {
            var oids = new OidCollection();
            foreach (var usage in usages) oids.Add(usage);
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(oids, false));
        }
        var now = DateTimeOffset.UtcNow;
        if (issuer is null) return request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7f;
        using var signed = request.Create(issuer, now.AddMinutes(-4), now.AddHours(23), serial);
        return signed.CopyWithPrivateKey(key);
    }

    private static KubeClientConfiguration Trusting(params X509Certificate2[] authorities) => Trusting("https://kube.test:6443/", null, authorities);

    private static KubeClientConfiguration Trusting(string server, string? tlsServerName, params X509Certificate2[] authorities) => new()
    {
        Server = new Uri(server),
        TlsServerName = tlsServerName,
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

    [Fact]
    public void A_certificate_whose_usage_leaves_out_server_authentication_is_refused_as_in_kubectl()
    {
        using var root = Issue("root", null, true, out var rootKey);
        using var publicRoot = X509CertificateLoader.LoadCertificate(root.RawData);
        using var server = Issue("kube.test", root, false, out var serverKey, [ServerAuth, ClientAuth]);
        using var client = Issue("kube.test", root, false, out var clientKey, [ClientAuth]);
        using var clientCa = Issue("client ca", root, true, out var clientCaKey, [ClientAuth]);
        using var underClientCa = Issue("kube.test", clientCa, false, out var underKey, [ServerAuth]);
        const SslPolicyErrors platform = SslPolicyErrors.RemoteCertificateChainErrors;

        Assert.True(Trusting(publicRoot).ValidateServerCertificate(this, server, null, platform));
        Assert.False(Trusting(publicRoot).ValidateServerCertificate(this, client, null, platform));
        // A CA restricted to client certificates cannot vouch for a server, whatever the leaf says.
        using var publicClientCa = X509CertificateLoader.LoadCertificate(clientCa.RawData);
        Assert.False(Trusting(publicRoot, publicClientCa).ValidateServerCertificate(this, underClientCa, null, platform));
        Assert.False(Trusting(publicClientCa).ValidateServerCertificate(this, underClientCa, null, platform));
        foreach (var k in new[] { rootKey, serverKey, clientKey, clientCaKey, underKey }) k.Dispose();
    }

    [Fact]
    public void A_host_named_only_in_the_common_name_is_refused_with_or_without_tls_server_name_as_in_kubectl()
    {
        using var root = Issue("root", null, true, out var rootKey);
        using var publicRoot = X509CertificateLoader.LoadCertificate(root.RawData);
        using var legacy = Issue("kube.test", root, false, out var legacyKey, san: false);
        using var modern = Issue("kube.test", root, false, out var modernKey);
        // The platform's own name check would pass the CN: only its chain check failed.
        const SslPolicyErrors platform = SslPolicyErrors.RemoteCertificateChainErrors;

        Assert.True(Trusting(publicRoot).ValidateServerCertificate(this, modern, null, platform));
        Assert.False(Trusting(publicRoot).ValidateServerCertificate(this, legacy, null, platform));
        var named = Trusting("https://10.0.0.1:6443/", "kube.test", publicRoot);
        Assert.True(named.ValidateServerCertificate(this, modern, null, platform));
        Assert.False(named.ValidateServerCertificate(this, legacy, null, platform));
        // An address names the server only through an IP subject alternative name, IPv6 in brackets in the URL included.
        using var byAddress = Issue("10.0.0.1", root, false, out var byAddressKey, addresses: ["10.0.0.1", "fd00::1"]);
        Assert.True(Trusting("https://10.0.0.1:6443/", null, publicRoot).ValidateServerCertificate(this, byAddress, null, platform));
        Assert.True(Trusting("https://[fd00::1]:6443/", null, publicRoot).ValidateServerCertificate(this, byAddress, null, platform));
        Assert.False(Trusting("https://10.0.0.2:6443/", null, publicRoot).ValidateServerCertificate(this, byAddress, null, platform));
        using var cnAddress = Issue("10.0.0.1", root, false, out var cnAddressKey, san: false);
        Assert.False(Trusting("https://10.0.0.1:6443/", null, publicRoot).ValidateServerCertificate(this, cnAddress, null, platform));
        byAddressKey.Dispose();
        cnAddressKey.Dispose();
        // A name mismatch the platform found still counts.
        Assert.False(Trusting(publicRoot).ValidateServerCertificate(this, modern, null, platform | SslPolicyErrors.RemoteCertificateNameMismatch));
        foreach (var k in new[] { rootKey, legacyKey, modernKey }) k.Dispose();
    }
}

