using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class AuthenticationTests
{
    private static HttpClient WithCertificate(KubeSimServer server, (string Cert, string Key) pem)
    {
        var cert = X509Certificate2.CreateFromPem(pem.Cert, pem.Key);
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, c, _, _) => SimClient.Trusts(server, c),
                ClientCertificates = [cert],
                LocalCertificateSelectionCallback = (_, _, _, _, _) => cert,
            },
        };
        return new HttpClient(handler) { BaseAddress = server.BaseAddress };
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_client_certificate_from_the_cluster_ca_authenticates_its_common_name_and_groups(bool rsa)
    {
        await using var c = await SimClient.StartAsync();
        using var admin = WithCertificate(c.Server, c.Server.IssueClientCertificate("admin", ["system:masters"], rsa));
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/v1/namespaces")).StatusCode);

        using var alice = WithCertificate(c.Server, c.Server.IssueClientCertificate("alice", ["dev"], rsa));
        var resp = await alice.GetAsync("/api/v1/namespaces/default/pods");
        Assert.Equal(HttpStatusCode.Forbidden, resp.StatusCode);
        Assert.Equal("pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
            JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_client_certificate_from_another_ca_is_401()
    {
        await using var c = await SimClient.StartAsync();
        await using var other = await KubeSimServer.StartAsync();
        using var stranger = WithCertificate(c.Server, other.IssueClientCertificate("admin"));
        var resp = await stranger.GetAsync("/api/v1/namespaces");
        Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
    }

    [Fact]
    public async Task Basic_auth_and_extra_admin_tokens_work_and_wrong_ones_are_401()
    {
        await using var c = await SimClient.StartAsync(new KubeSimOptions
        {
            BasicAuthUsers = new Dictionary<string, string> { ["bob"] = "s3cret" },
            ExtraAdminTokens = ["plugin-token"],
        });
        using var http = SimClient.CreateHttp(c.Server, null);
        async Task<HttpStatusCode> GetWith(AuthenticationHeaderValue auth)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, "/api/v1/namespaces");
            req.Headers.Authorization = auth;
            return (await http.SendAsync(req)).StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await GetWith(new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("bob:s3cret")))));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetWith(new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("bob:nope")))));
        Assert.Equal(HttpStatusCode.OK, await GetWith(new AuthenticationHeaderValue("Bearer", "plugin-token")));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetWith(new AuthenticationHeaderValue("Bearer", "other")));
    }

    [Fact]
    public async Task Impersonating_a_user_without_rights_is_the_403_of_4i()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync("fixtures");
        var r = await RawResponse.SendAsync(c.Server, "GET", Fixtures.Path("4i"), c.Server.AdminToken, [("Impersonate-User", "nobody")]);
        Assert.Equal(403, r.Status);
        Assert.True(JsonNode.DeepEquals(Fixtures.ResponseBody("4i"), JsonNode.Parse(r.Body)), r.BodyText);

        // Impersonating the admin's groups keeps the rights; a user without rights may not impersonate.
        var r2 = await RawResponse.SendAsync(c.Server, "GET", "/api/v1/namespaces", c.Server.AdminToken,
            [("Impersonate-User", "someone"), ("Impersonate-Group", "system:masters")]);
        Assert.Equal(200, r2.Status);
    }

    [Fact]
    public async Task Kubeconfig_with_a_client_certificate_carries_both_pems()
    {
        await using var c = await SimClient.StartAsync();
        var pem = c.Server.IssueClientCertificate("admin");
        var text = c.Server.KubeconfigText(clientCertificate: pem);
        Assert.Contains("    client-certificate-data: " + Convert.ToBase64String(Encoding.ASCII.GetBytes(pem.CertificatePem)), text, StringComparison.Ordinal);
        Assert.Contains("    client-key-data: " + Convert.ToBase64String(Encoding.ASCII.GetBytes(pem.KeyPem)), text, StringComparison.Ordinal);
        Assert.DoesNotContain("token:", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tokens_can_be_rotated_while_running()
    {
        await using var c = await SimClient.StartAsync();
        using var http = SimClient.CreateHttp(c.Server, "rotating");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/v1/namespaces")).StatusCode);
        c.Server.AddToken("rotating");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/v1/namespaces")).StatusCode);
        c.Server.RevokeToken("rotating");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/v1/namespaces")).StatusCode);
        c.Server.AddToken("rotating", admin: false, user: "carol");
        Assert.Equal(HttpStatusCode.Forbidden, (await http.GetAsync("/api/v1/namespaces")).StatusCode);
    }

    [Fact]
    public async Task A_path_prefix_puts_the_whole_api_under_it()
    {
        await using var c = await SimClient.StartAsync(new KubeSimOptions { PathPrefix = "/k8s/clusters/c1" });
        Assert.EndsWith("/k8s/clusters/c1", c.Server.ServerUrl, StringComparison.Ordinal);
        Assert.Contains("server: " + c.Server.ServerUrl + "\n", c.Server.KubeconfigText(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await c.Http.GetAsync("/k8s/clusters/c1/api/v1/namespaces/default")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Http.GetAsync("/api/v1/namespaces/default")).StatusCode);
        var (status, body, _) = await c.GetAsync("/k8s/clusters/c1/api/v1/namespaces/default/pods?watch=1&resourceVersion=1");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ERROR", body!["type"]!.GetValue<string>());
    }
}
