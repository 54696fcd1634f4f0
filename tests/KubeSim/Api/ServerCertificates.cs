using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace KtConnect.KubeSim.Api;

/// <summary>A throwaway CA and a server certificate it signed (SAN 127.0.0.1, ::1, localhost and extras), ECDSA P-256.</summary>
public sealed class ServerCertificates : IDisposable
{
    private readonly X509Certificate2 _caWithKey;

    private ServerCertificates(X509Certificate2 ca, X509Certificate2 caWithKey, X509Certificate2 server)
    {
        CaCertificate = ca;
        _caWithKey = caWithKey;
        ServerCertificate = server;
    }

    /// <summary>The CA (public part only).</summary>
    public X509Certificate2 CaCertificate { get; }

    /// <summary>The server certificate with its private key.</summary>
    public X509Certificate2 ServerCertificate { get; }

    /// <summary>PEM of the CA certificate: what certificate-authority-data holds (base64 of this text).</summary>
    public string CaPem => CaCertificate.ExportCertificatePem();

    public static ServerCertificates Create(IEnumerable<string> extraNames, TimeProvider time)
    {
        var now = time.GetUtcNow();
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=kubesim-ca", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        var caWithKey = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));

        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kube-apiserver", serverKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        san.AddDnsName("localhost");
        san.AddDnsName("kubernetes");
        san.AddDnsName("kubernetes.default.svc");
        foreach (var name in extraNames)
        {
            if (IPAddress.TryParse(name, out var ip)) san.AddIpAddress(ip);
            else san.AddDnsName(name);
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(caWithKey, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        using var signed = request.Create(caWithKey, now.AddMinutes(-5), now.AddDays(30), serial);
        using var withKey = signed.CopyWithPrivateKey(serverKey);
        // Round-trip through PKCS#12 so the key is usable by SslStream on every platform.
        var server = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        var ca = X509CertificateLoader.LoadCertificate(caWithKey.Export(X509ContentType.Cert));
        return new ServerCertificates(ca, caWithKey, server);
    }

    /// <summary>
    /// A client certificate signed by the CA: CN is the user name, O the groups (system:masters = admin), as the
    /// API server's x509 authenticator reads them. Returns PEM texts for kubeconfig's client-certificate/key data.
    /// </summary>
    public (string CertificatePem, string KeyPem) IssueClientCertificate(string commonName, IEnumerable<string> organizations, bool rsa, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var subject = new X500DistinguishedNameBuilder();
        foreach (var o in organizations) subject.AddOrganizationName(o);
        subject.AddCommonName(commonName);
        using AsymmetricAlgorithm key = rsa ? RSA.Create(2048) : ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = key is RSA r
            ? new CertificateRequest(subject.Build(), r, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest(subject.Build(), (ECDsa)key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        // Signed by the CA's ECDSA key whatever the subject key is (the generator overload allows RSA subjects).
        using var caKey = _caWithKey.GetECDsaPrivateKey()!;
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_caWithKey, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        using var cert = request.Create(_caWithKey.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), now.AddMinutes(-5), now.AddDays(30), serial);
        var keyPem = key is RSA rsaKey ? rsaKey.ExportRSAPrivateKeyPem() : ((ECDsa)key).ExportECPrivateKeyPem();
        return (cert.ExportCertificatePem(), keyPem);
    }

    /// <summary>True when <paramref name="certificate"/> chains to our CA and is valid now.</summary>
    public bool Verifies(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(CaCertificate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        return chain.Build(certificate);
    }

    public void Dispose()
    {
        CaCertificate.Dispose();
        _caWithKey.Dispose();
        ServerCertificate.Dispose();
    }
}
