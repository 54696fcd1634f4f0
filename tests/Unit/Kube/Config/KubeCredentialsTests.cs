using System.Text;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using static KtConnect.Tests.Unit.Kube.Config.TestOptions;

namespace KtConnect.Tests.Unit.Kube.Config;

public sealed class KubeCredentialsTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeTime _time = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Writes a kubeconfig with one https cluster and the given user body, and resolves its context.</summary>
    private KubeClientConfiguration Resolve(string userYaml, string server = "https://127.0.0.1:6443")
    {
        var indented = string.Join("\n", userYaml.Split('\n').Select(l => "    " + l));
        var path = _dir.File("config", $"""
            clusters:
            - name: c
              cluster: {"{"}server: "{server}"{"}"}
            users:
            - name: u
              user:
            {indented}
            contexts:
            - name: ctx
              context: {"{"}cluster: c, user: u{"}"}
            current-context: ctx
            """);
        return new KubeConfigLoader(Create(_dir.Combine("home"), time: _time)).Load(path).CreateClientConfiguration();
    }

    [Fact]
    public async Task Token_is_sent_as_bearer()
    {
        var headers = await HeadersAsync(Resolve("token: abc.def").Credentials);
        Assert.Equal(["Bearer abc.def"], headers["Authorization"]);
    }

    [Fact]
    public async Task Basic_auth_is_sent_as_basic()
    {
        var headers = await HeadersAsync(Resolve("username: admin\npassword: pä:ss").Credentials);
        Assert.Equal(["Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:pä:ss"))], headers["Authorization"]);
    }

    [Fact]
    public async Task Credentials_are_not_applied_to_plain_http_servers()
    {
        var cfg = Resolve("token: abc\nas: someone", server: "http://127.0.0.1:8080");
        Assert.Same(AnonymousCredentials.Instance, cfg.Credentials);
        Assert.Empty(await HeadersAsync(cfg.Credentials));
    }

    [Fact]
    public async Task Token_file_is_re_read_at_most_once_a_minute_and_the_last_good_value_wins_over_token()
    {
        var tokenFile = _dir.File("tok/token", "  first-token\n");
        var creds = Resolve("token: static-token\ntokenFile: tok/token").Credentials;
        Assert.Equal(["Bearer first-token"], (await HeadersAsync(creds))["Authorization"]);

        File.WriteAllText(tokenFile, "second-token");
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(["Bearer first-token"], (await HeadersAsync(creds))["Authorization"]);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["Bearer second-token"], (await HeadersAsync(creds))["Authorization"]);

        // A failed re-read keeps the last good value rather than falling back to the static token.
        File.Delete(tokenFile);
        _time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(["Bearer second-token"], (await HeadersAsync(creds))["Authorization"]);
    }

    [Fact]
    public async Task Token_file_falls_back_to_token_until_it_can_be_read_and_without_token_the_error_names_it()
    {
        var creds = Resolve("token: static-token\ntokenFile: later").Credentials;
        Assert.Equal(["Bearer static-token"], (await HeadersAsync(creds))["Authorization"]);
        _dir.File("later", "from-file");
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(["Bearer from-file"], (await HeadersAsync(creds))["Authorization"]);

        var lonely = Resolve("tokenFile: nowhere").Credentials;
        var e = await Assert.ThrowsAsync<KubeCredentialException>(() => HeadersAsync(lonely));
        Assert.Contains(_dir.Combine("nowhere"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_401_re_reads_the_token_file_at_once()
    {
        var tokenFile = _dir.File("t", "old");
        var creds = Resolve("tokenFile: t").Credentials;
        Assert.Equal(["Bearer old"], (await HeadersAsync(creds))["Authorization"]);
        Assert.False(await creds.OnUnauthorizedAsync(CancellationToken.None));
        File.WriteAllText(tokenFile, "new");
        Assert.True(await creds.OnUnauthorizedAsync(CancellationToken.None));
        Assert.Equal(["Bearer new"], (await HeadersAsync(creds))["Authorization"]);
    }

    [Theory]
    [InlineData(KeyFormat.RsaPkcs1)]
    [InlineData(KeyFormat.RsaPkcs8)]
    [InlineData(KeyFormat.EcSec1)]
    [InlineData(KeyFormat.EcPkcs8)]
    public void Client_certificate_and_key_from_data_in_every_key_format(KeyFormat format)
    {
        using var pki = new TestPki();
        var (cert, key) = pki.Client("data-" + format, format);
        var creds = Resolve($"client-certificate-data: {B64(cert)}\nclient-key-data: {B64(key)}").Credentials;
        using var current = creds.CurrentClientCertificate;
        Assert.NotNull(current);
        Assert.Equal("CN=data-" + format, current.Subject);
        Assert.True(current.HasPrivateKey);
    }

    [Fact]
    public void Client_certificate_from_files_and_data_wins_over_files()
    {
        using var pki = new TestPki();
        var (fileCert, fileKey) = pki.Client("from-file", KeyFormat.EcSec1);
        var (dataCert, dataKey) = pki.Client("from-data", KeyFormat.EcPkcs8);
        _dir.File("pki/client.crt", fileCert);
        _dir.File("pki/client.key", fileKey);

        Assert.Equal("CN=from-file", Resolve("client-certificate: pki/client.crt\nclient-key: pki/client.key").Credentials.CurrentClientCertificate!.Subject);
        Assert.Equal("CN=from-data", Resolve(
            $"client-certificate: pki/client.crt\nclient-key: pki/client.key\nclient-certificate-data: {B64(dataCert)}\nclient-key-data: {B64(dataKey)}")
            .Credentials.CurrentClientCertificate!.Subject);
    }

    [Fact]
    public void Unloadable_client_material_is_a_credential_error_naming_the_user_or_file()
    {
        using var pki = new TestPki();
        var (cert, _) = pki.Client("mismatch", KeyFormat.EcSec1);
        var (_, otherKey) = pki.Client("other", KeyFormat.EcSec1);
        var e = Assert.Throws<KubeCredentialException>(() => Resolve($"client-certificate-data: {B64(cert)}\nclient-key-data: {B64(otherKey)}"));
        Assert.Equal("KubeCredentialError", e.ErrorId);
        Assert.Contains("user 'u'", e.Message, StringComparison.Ordinal);

        var missing = Assert.Throws<KubeCredentialException>(() => Resolve($"client-certificate-data: {B64(cert)}\nclient-key: gone.key"));
        Assert.Contains(_dir.Combine("gone.key"), missing.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("token: t\nusername: u\npassword: p", "more than one authentication method")]
    [InlineData("tokenFile: f\nusername: u", "more than one authentication method")]
    [InlineData("auth-provider: {name: oidc}\nexec: {command: x, apiVersion: client.authentication.k8s.io/v1beta1}", "auth-provider and exec")]
    [InlineData("client-certificate-data: eA==", "needs its key")]
    [InlineData("client-key: k.pem", "client-key is set but client-certificate is not")]
    [InlineData("exec: {command: x, apiVersion: client.authentication.k8s.io/v1}", "interactiveMode must be specified")]
    [InlineData("exec: {command: x, apiVersion: client.authentication.k8s.io/v1alpha1}", "is not supported")]
    [InlineData("exec: {command: x, apiVersion: client.authentication.k8s.io/v1, interactiveMode: Sometimes}", "Sometimes")]
    public void Invalid_user_entries_are_rejected_like_client_go(string userYaml, string message)
    {
        var e = Assert.Throws<KubeConfigInvalidException>(() => Resolve(userYaml));
        Assert.Contains("user 'u'", e.Message, StringComparison.Ordinal);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Equal(_dir.Combine("config"), e.File);
    }

    [Fact]
    public async Task Oidc_sends_the_id_token_and_removed_providers_say_what_to_use()
    {
        var headers = await HeadersAsync(Resolve("auth-provider:\n  name: oidc\n  config:\n    id-token: eyJ.id.tok\n    refresh-token: r").Credentials);
        Assert.Equal(["Bearer eyJ.id.tok"], headers["Authorization"]);

        Assert.Contains("gke-gcloud-auth-plugin", Assert.Throws<KubeCredentialException>(() => Resolve("auth-provider: {name: gcp}")).Message, StringComparison.Ordinal);
        Assert.Contains("kubelogin", Assert.Throws<KubeCredentialException>(() => Resolve("auth-provider: {name: azure}")).Message, StringComparison.Ordinal);
        Assert.Contains("id-token", Assert.Throws<KubeCredentialException>(() => Resolve("auth-provider: {name: oidc, config: {}}")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Impersonation_headers_are_sent_with_escaped_extra_keys_and_several_groups_are_refused()
    {
        var creds = Resolve("""
            token: t
            as: jane
            as-uid: "1234"
            as-groups: [dev]
            as-user-extra:
              scopes.example.com/team: [a]
              reason: [debug]
            """).Credentials;
        var headers = await HeadersAsync(creds);
        Assert.Equal(["Bearer t"], headers["Authorization"]);
        Assert.Equal(["jane"], headers["Impersonate-User"]);
        Assert.Equal(["1234"], headers["Impersonate-Uid"]);
        Assert.Equal(["dev"], headers["Impersonate-Group"]);
        Assert.Equal(["debug"], headers["Impersonate-Extra-reason"]);
        Assert.Equal(["a"], headers["Impersonate-Extra-scopes.example.com%2Fteam"]);
        // .NET would send one comma-joined line, which the API server takes for one group "dev, ops".
        Assert.Contains("more than one group", Assert.Throws<KubeCredentialException>(() => Resolve("token: t\nas: jane\nas-groups: [dev, ops]")).Message,
            StringComparison.Ordinal);
        Assert.Throws<KubeCredentialException>(() => Resolve("token: t\nas: jane\nas-user-extra: {team: [a, b]}"));
    }

    [Fact]
    public async Task Exec_is_skipped_when_another_method_is_configured()
    {
        var creds = Assert.IsType<KubeCredentials>(Resolve("token: wins\nexec: {command: /nonexistent/plugin, apiVersion: client.authentication.k8s.io/v1beta1}").Credentials);
        Assert.False(creds.UsesExecPlugin);
        Assert.Equal(["Bearer wins"], (await HeadersAsync(creds))["Authorization"]);
    }
}
