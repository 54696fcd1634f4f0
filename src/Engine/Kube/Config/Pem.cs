using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace KtConnect.Engine.Kube.Config;

/// <summary>PEM helpers: CA bundles and client certificate + key pairs (RSA or EC; PKCS#1, PKCS#8 or SEC1 keys).</summary>
internal static class Pem
{
    /// <summary>Every certificate in a PEM bundle. Throws <see cref="CryptographicException"/> when there is none.</summary>
    public static X509Certificate2Collection LoadBundle(ReadOnlySpan<char> pem)
    {
        var collection = new X509Certificate2Collection();
        collection.ImportFromPem(pem);
        if (collection.Count == 0) throw new CryptographicException("no PEM CERTIFICATE block found");
        return collection;
    }

    /// <summary>
    /// A certificate with its private key. X509Certificate2.CreateFromPem picks the key type from the certificate and
    /// accepts "RSA PRIVATE KEY" (PKCS#1), "EC PRIVATE KEY" (SEC1) and "PRIVATE KEY" (PKCS#8).
    /// </summary>
    public static X509Certificate2 LoadClientCertificate(string certificatePem, string keyPem)
    {
        if (keyPem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
            throw new CryptographicException("the private key is encrypted; kubeconfig keys must be unencrypted");
        var cert = X509Certificate2.CreateFromPem(certificatePem, keyPem);
        if (!OperatingSystem.IsWindows()) return cert;
        // SChannel cannot use an ephemeral key for client authentication: give it a PFX-backed one.
        using (cert)
        {
            return new X509Certificate2(cert.Export(X509ContentType.Pkcs12), (string?)null, X509KeyStorageFlags.Exportable);
        }
    }

    public static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
