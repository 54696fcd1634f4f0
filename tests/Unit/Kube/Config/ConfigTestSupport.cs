using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using KtConnect.Engine.Kube.Config;

namespace KtConnect.Tests.Unit.Kube.Config;

/// <summary>A real temporary directory, removed on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ktcfg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string relative, string content)
    {
        var full = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllText(full, content);
        return full;
    }

    /// <summary>A script with the executable bit set (the exec plugin tests run bash scripts).</summary>
    public string Executable(string relative, string content)
    {
        var full = File(relative, content);
        if (!OperatingSystem.IsWindows()) System.IO.File.SetUnixFileMode(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return full;
    }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>A clock that only moves when told to.</summary>
internal sealed class FakeTime : TimeProvider
{
    private DateTimeOffset _now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>Options for tests: no process environment, a fake home, a fake clock, no terminal.</summary>
internal static class TestOptions
{
    public static KubeConfigLoaderOptions Create(string home, IDictionary<string, string>? env = null, TimeProvider? time = null,
        bool terminal = false, string? serviceAccountDirectory = null) => new()
    {
        GetEnvironmentVariable = name => env is not null && env.TryGetValue(name, out var v) ? v : null,
        HomeDirectory = home,
        TimeProvider = time ?? TimeProvider.System,
        IsStdinTerminal = () => terminal,
        ServiceAccountDirectory = serviceAccountDirectory ?? System.IO.Path.Combine(home, "no-sa"),
        ExecTimeout = TimeSpan.FromSeconds(30),
    };

    public static async Task<Dictionary<string, List<string>>> HeadersAsync(Engine.Kube.IKubeCredentials credentials)
    {
        var headers = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        await credentials.ApplyAsync((k, v) =>
        {
            if (!headers.TryGetValue(k, out var list)) headers[k] = list = [];
            list.Add(v);
        }, CancellationToken.None);
        return headers;
    }

    public static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));
}

/// <summary>A test PKI made with CertificateRequest: a CA, and leaf certificates it signs.</summary>
internal sealed class TestPki : IDisposable
{
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public TestPki(string name = "kt-test-ca")
    {
        var req = new CertificateRequest("CN=" + name, _caKey, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        Ca = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(60));
    }

    public X509Certificate2 Ca { get; }

    public string CaPem => Ca.ExportCertificatePem();

    /// <summary>A server certificate for the given DNS names and IPs, loaded with its key from PKCS#12 so SslStream can use it anywhere.</summary>
    public X509Certificate2 Server(string[] dnsNames, IPAddress[] ips)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=" + (dnsNames.FirstOrDefault() ?? "server"), key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var d in dnsNames) san.AddDnsName(d);
        foreach (var ip in ips) san.AddIpAddress(ip);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        return Sign(req, key);
    }

    /// <summary>A client certificate and its key PEM in the requested format.</summary>
    public (string CertPem, string KeyPem) Client(string commonName, KeyFormat format)
    {
        AsymmetricAlgorithm key = format is KeyFormat.RsaPkcs1 or KeyFormat.RsaPkcs8 ? RSA.Create(2048) : ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using (key)
        {
            var req = key is RSA rsa
                ? new CertificateRequest("CN=" + commonName, rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
                : new CertificateRequest("CN=" + commonName, (ECDsa)key, HashAlgorithmName.SHA256);
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
            req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
            // The CA key is EC; an RSA leaf needs an explicit ECDSA signature generator.
            using var cert = req.Create(Ca.SubjectName, X509SignatureGenerator.CreateForECDsa(_caKey),
                DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(12));
            var keyPem = format switch
            {
                KeyFormat.RsaPkcs1 => ((RSA)key).ExportRSAPrivateKeyPem(),
                KeyFormat.EcSec1 => ((ECDsa)key).ExportECPrivateKeyPem(),
                _ => key.ExportPkcs8PrivateKeyPem(),
            };
            return (cert.ExportCertificatePem(), keyPem);
        }
    }

    /// <summary>An intermediate CA signed by <see cref="Ca"/> and a server certificate it signs (for chain tests).</summary>
    public (X509Certificate2 Intermediate, X509Certificate2 Server) ServerViaIntermediate(string dnsName)
    {
        using var interKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var ireq = new CertificateRequest("CN=kt-test-intermediate", interKey, HashAlgorithmName.SHA256);
        ireq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        ireq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        ireq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(ireq.PublicKey, false));
        ireq.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
        using var inter = ireq.Create(Ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(45), RandomNumberGenerator.GetBytes(12));
        using var interWithKey = inter.CopyWithPrivateKey(interKey);

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=" + dnsName, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(dnsName);
        san.AddIpAddress(IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var server = Sign(req, key, interWithKey);
        return (X509CertificateLoader.LoadCertificate(inter.RawData), server);
    }

    private X509Certificate2 Sign(CertificateRequest req, ECDsa key, X509Certificate2? issuer = null)
    {
        issuer ??= Ca;
        req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        using var cert = req.Create(issuer, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), RandomNumberGenerator.GetBytes(12));
        using var withKey = cert.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    public void Dispose()
    {
        Ca.Dispose();
        _caKey.Dispose();
    }
}

public enum KeyFormat
{
    RsaPkcs1,
    RsaPkcs8,
    EcSec1,
    EcPkcs8,
}

/// <summary>
/// A real TLS server on 127.0.0.1:0 (TcpListener + SslStream) that answers every HTTP request with
/// "client=&lt;client certificate subject or none&gt;;sni=&lt;server name&gt;", keeping connections alive.
/// </summary>
internal sealed class TlsTestServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly X509Certificate2 _certificate;
    private readonly bool _requireClientCertificate;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;

    private readonly SslStreamCertificateContext? _context;

    public TlsTestServer(X509Certificate2 certificate, bool requireClientCertificate = false, X509Certificate2? intermediate = null)
    {
        _certificate = certificate;
        if (intermediate is not null) _context = SslStreamCertificateContext.Create(certificate, [intermediate], offline: true);
        _requireClientCertificate = requireClientCertificate;
        _listener.Start();
        _loop = AcceptLoopAsync();
    }

    private int _connections;

    /// <summary>TLS connections that completed the handshake.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public Uri Url => new($"https://127.0.0.1:{Port}/");

    private async Task AcceptLoopAsync()
    {
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                var client = await _listener.AcceptTcpClientAsync(_cts.Token);
                connections.Add(ServeAsync(client));
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (_cts.IsCancellationRequested && e is InvalidOperationException or ObjectDisposedException or SocketException)
        {
            // Disposed between two accepts: the listener was stopped before the next accept began ("Not listening").
        }
        await Task.WhenAll(connections);
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            await using var ssl = new SslStream(client.GetStream(), false);
            try
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificate = _context is null ? _certificate : null,
                    ServerCertificateContext = _context,
                    ClientCertificateRequired = _requireClientCertificate,
                    RemoteCertificateValidationCallback = (_, _, _, _) => true,
                }, _cts.Token);
                Interlocked.Increment(ref _connections);
                var sni = string.IsNullOrEmpty(ssl.TargetHostName) ? null : ssl.TargetHostName;
                // Keep-alive: answer requests on this connection until the client closes it.
                var buffer = new byte[8192];
                var read = 0;
                while (true)
                {
                    var text = Encoding.ASCII.GetString(buffer, 0, read);
                    var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                    if (end < 0)
                    {
                        if (read == buffer.Length) return;
                        var n = await ssl.ReadAsync(buffer.AsMemory(read), _cts.Token);
                        if (n == 0) return;
                        read += n;
                        continue;
                    }
                    var consumed = end + 4;
                    Buffer.BlockCopy(buffer, consumed, buffer, 0, read - consumed);
                    read -= consumed;
                    var body = $"client={ssl.RemoteCertificate?.Subject ?? "none"};sni={sni ?? "none"}";
                    var response = $"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n{body}";
                    await ssl.WriteAsync(Encoding.UTF8.GetBytes(response), _cts.Token);
                    await ssl.FlushAsync(_cts.Token);
                }
            }
            catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException or OperationCanceledException or ObjectDisposedException)
            {
                // The client refused our certificate or went away: that is what several tests expect.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        await _loop;
        _cts.Dispose();
        _certificate.Dispose();
    }
}
