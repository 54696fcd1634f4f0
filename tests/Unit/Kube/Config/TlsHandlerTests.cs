using System.Net;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using static KtConnect.Tests.Unit.Kube.Config.TestOptions;

namespace KtConnect.Tests.Unit.Kube.Config;

/// <summary>CreateHandler against a real TLS server with certificates made for the test.</summary>
public sealed class TlsHandlerTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly TestPki _pki = new();

    public void Dispose()
    {
        _pki.Dispose();
        _dir.Dispose();
    }

    private TlsTestServer LocalServer(bool requireClientCertificate = false) =>
        new(_pki.Server(["localhost"], [IPAddress.Loopback]), requireClientCertificate);

    private KubeClientConfiguration Resolve(TlsTestServer server, string clusterExtra, string userYaml = "token: t")
    {
        var path = _dir.File("config", $"""
            clusters:
            - name: c
              cluster:
                server: {server.Url}
            {string.Join("\n", clusterExtra.Split('\n').Select(l => "    " + l))}
            users:
            - name: u
              user:
            {string.Join("\n", userYaml.Split('\n').Select(l => "    " + l))}
            contexts:
            - {"{"}name: ctx, context: {"{"}cluster: c, user: u{"}"}{"}"}
            current-context: ctx
            """);
        return new KubeConfigLoader(Create(_dir.Combine("home"))).Load(path).CreateClientConfiguration();
    }

    private static async Task<string> GetAsync(KubeClientConfiguration cfg)
    {
        using var client = new HttpClient(cfg.CreateHandler()) { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(cfg.Server, "api"));
        cfg.ConfigureRequest(request);
        await cfg.Credentials.ApplyAsync((k, v) => request.Headers.TryAddWithoutValidation(k, v), CancellationToken.None);
        using var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task The_kubeconfig_CA_trusts_the_server()
    {
        await using var server = LocalServer();
        var body = await GetAsync(Resolve(server, $"certificate-authority-data: {B64(_pki.CaPem)}"));
        Assert.StartsWith("client=none;", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_CA_file_works_too()
    {
        await using var server = LocalServer();
        _dir.File("pki/ca.pem", _pki.CaPem);
        Assert.StartsWith("client=none;", await GetAsync(Resolve(server, "certificate-authority: pki/ca.pem")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_CA_or_no_CA_fails_the_handshake()
    {
        await using var server = LocalServer();
        using var other = new TestPki("someone-else");
        var wrong = await Assert.ThrowsAsync<HttpRequestException>(() => GetAsync(Resolve(server, $"certificate-authority-data: {B64(other.CaPem)}")));
        Assert.IsType<System.Security.Authentication.AuthenticationException>(wrong.InnerException);
        await Assert.ThrowsAsync<HttpRequestException>(() => GetAsync(Resolve(server, "")));
    }

    [Fact]
    public async Task A_chain_through_an_intermediate_the_server_sends_is_trusted_by_the_root_CA()
    {
        var (intermediate, leaf) = _pki.ServerViaIntermediate("localhost");
        using (intermediate)
        {
            await using var server = new TlsTestServer(leaf, intermediate: intermediate);
            Assert.StartsWith("client=none;", await GetAsync(Resolve(server, $"certificate-authority-data: {B64(_pki.CaPem)}")), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Insecure_skip_tls_verify_accepts_any_server_certificate()
    {
        await using var server = LocalServer();
        Assert.StartsWith("client=none;", await GetAsync(Resolve(server, "insecure-skip-tls-verify: true")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_server_name_checks_the_certificate_against_it_and_sends_it_as_SNI()
    {
        await using var server = new TlsTestServer(_pki.Server(["api.cluster.internal"], []));
        var ca = $"certificate-authority-data: {B64(_pki.CaPem)}";

        // The certificate is not valid for 127.0.0.1 ...
        await Assert.ThrowsAsync<HttpRequestException>(() => GetAsync(Resolve(server, ca)));
        // ... but is for the tls-server-name, which is also the SNI name.
        var body = await GetAsync(Resolve(server, ca + "\ntls-server-name: api.cluster.internal"));
        Assert.EndsWith(";sni=api.cluster.internal", body, StringComparison.Ordinal);
        // A tls-server-name the certificate does not match fails.
        await Assert.ThrowsAsync<HttpRequestException>(() => GetAsync(Resolve(server, ca + "\ntls-server-name: other.internal")));
    }

    [Fact]
    public async Task The_tls_server_name_check_holds_even_without_the_Host_header()
    {
        await using var server = new TlsTestServer(_pki.Server(["api.cluster.internal"], []));
        var cfg = Resolve(server, $"certificate-authority-data: {B64(_pki.CaPem)}\ntls-server-name: api.cluster.internal");
        using var client = new HttpClient(cfg.CreateHandler());
        Assert.StartsWith("client=none;", await client.GetStringAsync(cfg.Server), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_certificate_from_the_kubeconfig_reaches_the_server()
    {
        await using var server = LocalServer(requireClientCertificate: true);
        var (cert, key) = _pki.Client("kt-admin", KeyFormat.RsaPkcs1);
        var body = await GetAsync(Resolve(server, $"certificate-authority-data: {B64(_pki.CaPem)}",
            $"client-certificate-data: {B64(cert)}\nclient-key-data: {B64(key)}"));
        Assert.StartsWith("client=CN=kt-admin;", body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:{0}", "CONNECT 127.0.0.1:{1}")]
    [InlineData("socks5://127.0.0.1:{0}", "SOCKS5 127.0.0.1:{1}")]
    [InlineData("socks5://kt:s%3Acret@127.0.0.1:{0}", "SOCKS5 127.0.0.1:{1} user=kt:s:cret")]
    public async Task Proxy_url_tunnels_the_TLS_connection(string proxyUrl, string expected)
    {
        await using var server = LocalServer();
        await using var proxy = new TestProxy();
        var url = string.Format(System.Globalization.CultureInfo.InvariantCulture, proxyUrl, proxy.Port);
        var body = await GetAsync(Resolve(server, $"certificate-authority-data: {B64(_pki.CaPem)}\nproxy-url: \"{url}\""));
        Assert.StartsWith("client=none;", body, StringComparison.Ordinal);
        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture, expected, proxy.Port, server.Port), Assert.Single(proxy.Requests));
    }

    [Fact]
    public async Task An_exec_plugin_certificate_reaches_the_server_and_a_rotated_one_is_used_by_new_connections()
    {
        await using var server = LocalServer(requireClientCertificate: true);
        _dir.Executable("plugin.sh", "#!/bin/bash\ncat \"$(dirname \"$0\")/reply.json\"\n");
        void Reply(string cn)
        {
            var (cert, key) = _pki.Client(cn, KeyFormat.EcPkcs8);
            _dir.File("reply.json", new System.Text.Json.Nodes.JsonObject
            {
                ["kind"] = "ExecCredential",
                ["apiVersion"] = KubeExecConfig.ApiVersionV1Beta1,
                ["status"] = new System.Text.Json.Nodes.JsonObject { ["clientCertificateData"] = cert, ["clientKeyData"] = key },
            }.ToJsonString());
        }
        Reply("exec-first");
        var cfg = Resolve(server, $"certificate-authority-data: {B64(_pki.CaPem)}",
            "exec: {command: ./plugin.sh, apiVersion: client.authentication.k8s.io/v1beta1}");
        using var client = new HttpClient(cfg.CreateHandler()) { Timeout = TimeSpan.FromSeconds(30) };
        async Task<string> Get()
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, cfg.Server);
            await cfg.Credentials.ApplyAsync((k, v) => request.Headers.TryAddWithoutValidation(k, v), CancellationToken.None);
            using var response = await client.SendAsync(request);
            return await response.Content.ReadAsStringAsync();
        }

        Assert.StartsWith("client=CN=exec-first;", await Get(), StringComparison.Ordinal);
        Assert.StartsWith("client=CN=exec-first;", await Get(), StringComparison.Ordinal);
        Assert.Equal(1, server.Connections); // the connection is pooled ...

        Reply("exec-second");
        Assert.True(await cfg.Credentials.OnUnauthorizedAsync(CancellationToken.None));
        // ... and dropped when the plugin hands out a new certificate, so the retry presents it.
        Assert.StartsWith("client=CN=exec-second;", await Get(), StringComparison.Ordinal);
        Assert.Equal(2, server.Connections);
    }
}
