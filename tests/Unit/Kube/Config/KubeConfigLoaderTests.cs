using KtConnect.Engine;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;

namespace KtConnect.Tests.Unit.Kube.Config;

public sealed class KubeConfigLoaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private KubeConfigLoader Loader(string? kubeconfigVariable = null) =>
        new(TestOptions.Create(_dir.Combine("home"), kubeconfigVariable is null ? null : new Dictionary<string, string> { ["KUBECONFIG"] = kubeconfigVariable }));

    private const string FirstFile = """
        apiVersion: v1
        kind: Config
        current-context: red
        clusters:
        - name: red-cluster
          cluster:
            server: https://red.example:6443
            certificate-authority: certs/red-ca.crt
        - name: shared-cluster
          cluster:
            server: https://first.example
        users:
        - name: red-user
          user:
            token: first-token
            tokenFile: tokens/red
        contexts:
        - name: red
          context: {cluster: red-cluster, user: red-user, namespace: team-red}
        - name: shared
          context: {cluster: shared-cluster}
        """;

    private const string SecondFile = """
        apiVersion: v1
        kind: Config
        current-context: blue
        clusters:
        - name: blue-cluster
          cluster:
            server: https://blue.example/k8s/clusters/c-1
            certificate-authority: ca/blue.crt
        - name: shared-cluster
          cluster:
            server: https://second.example
            tls-server-name: should-be-discarded
        users:
        - name: red-user
          user:
            username: second
            password: discarded
            client-key: second.key
        - name: blue-user
          user:
            client-certificate: pki/blue.crt
            client-key: pki/blue.key
            exec:
              command: ./bin/plugin
              apiVersion: client.authentication.k8s.io/v1beta1
        contexts:
        - name: blue
          context: {cluster: blue-cluster, user: blue-user}
        - name: red
          context: {cluster: blue-cluster, user: blue-user, namespace: discarded}
        """;

    [Fact]
    public void Kubeconfig_list_merges_first_file_wins_per_entry_and_resolves_paths_per_file()
    {
        var first = _dir.File("a/config", FirstFile);
        var second = _dir.File("b/nested/config", SecondFile);
        var config = Loader(first + Path.PathSeparator + second).Load();

        Assert.Equal([first, second], config.SourceFiles);
        Assert.Equal("red", config.CurrentContext);
        Assert.Equal(["blue", "red", "shared"], config.ContextNames);

        // The first file's red context and red-user win whole; nothing of the second's is merged in.
        Assert.Equal("red-cluster", config.Contexts["red"].Cluster);
        Assert.Equal("team-red", config.Contexts["red"].Namespace);
        var red = config.Users["red-user"];
        Assert.Equal("first-token", red.Token);
        Assert.Null(red.Username);
        Assert.Null(red.ClientKey);
        Assert.Equal(first, red.SourceFile);
        Assert.Equal(Path.Combine(_dir.Path, "a", "tokens", "red"), red.TokenFile);

        var shared = config.Clusters["shared-cluster"];
        Assert.Equal("https://first.example", shared.Server);
        Assert.Null(shared.TlsServerName);

        // Relative paths resolve against the directory of the file each entry came from.
        Assert.Equal(Path.Combine(_dir.Path, "a", "certs", "red-ca.crt"), config.Clusters["red-cluster"].CertificateAuthority);
        Assert.Equal(Path.Combine(_dir.Path, "b", "nested", "ca", "blue.crt"), config.Clusters["blue-cluster"].CertificateAuthority);
        var blue = config.Users["blue-user"];
        Assert.Equal(Path.Combine(_dir.Path, "b", "nested", "pki", "blue.crt"), blue.ClientCertificate);
        Assert.Equal(Path.Combine(_dir.Path, "b", "nested", "pki", "blue.key"), blue.ClientKey);
        Assert.Equal(Path.Combine(_dir.Path, "b", "nested", "bin", "plugin"), blue.Exec!.Command);
        Assert.Equal(["team-red"], config.Namespaces);
    }

    [Fact]
    public void Current_context_is_the_first_non_empty_one()
    {
        var empty = _dir.File("empty", "apiVersion: v1\nkind: Config\ncurrent-context: \"\"\n");
        var second = _dir.File("b/config", SecondFile);
        var first = _dir.File("a/config", FirstFile);
        Assert.Equal("blue", Loader(empty + Path.PathSeparator + second + Path.PathSeparator + first).Load().CurrentContext);
    }

    [Fact]
    public void Kubeconfig_list_skips_missing_files_removes_duplicates_and_fails_only_when_all_are_missing()
    {
        var first = _dir.File("a/config", FirstFile);
        var missing = _dir.Combine("nope", "config");
        var sep = Path.PathSeparator;
        var loader = Loader($"{missing}{sep}{first}{sep}{sep}{first}");
        Assert.Equal([missing, first], loader.GetCandidatePaths());
        Assert.Equal([first], loader.Load().SourceFiles);

        var other = _dir.Combine("nope2");
        Assert.Null(Loader($"{missing}{sep}{other}").TryLoad());
        var e = Assert.Throws<KubeConfigNotFoundException>(() => Loader($"{missing}{sep}{other}").Load());
        Assert.Equal("KubeConfigNotFound", e.ErrorId);
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
        Assert.Contains(other, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_KUBECONFIG_the_home_config_is_read_and_its_absence_is_a_clear_error()
    {
        var e = Assert.Throws<KubeConfigNotFoundException>(() => Loader().Load());
        var expected = Path.Combine(_dir.Path, "home", ".kube", "config");
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);

        _dir.File("home/.kube/config", FirstFile);
        Assert.Equal([expected], Loader().Load().SourceFiles);
    }

    [Fact]
    public void An_explicit_path_wins_over_KUBECONFIG_and_must_exist()
    {
        var first = _dir.File("a/config", FirstFile);
        var second = _dir.File("b/nested/config", SecondFile);
        var config = Loader(first).Load(second);
        Assert.Equal([second], config.SourceFiles);
        Assert.Equal("blue", config.CurrentContext);

        var missing = _dir.Combine("missing.yaml");
        var e = Assert.Throws<KubeConfigNotFoundException>(() => Loader(first).Load(missing));
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_broken_file_is_an_error_naming_the_file_and_line_even_when_others_are_fine()
    {
        var good = _dir.File("good", FirstFile);
        var broken = _dir.File("broken", "apiVersion: v1\nkind: Config\ncurrent-context: x\n  oops: y\n");
        var e = Assert.Throws<KubeConfigInvalidException>(() => Loader(good + Path.PathSeparator + broken).Load());
        Assert.Equal("KubeConfigInvalid", e.ErrorId);
        Assert.Equal(broken, e.File);
        Assert.Equal(4, e.Line);
        Assert.StartsWith(broken + ":4: not valid YAML", e.Message, StringComparison.Ordinal);

        var truncated = _dir.File("truncated", "clusters:\n- name: x\n  cluster: {server: [unterminated\n");
        var t = Assert.Throws<KubeConfigInvalidException>(() => Loader().Load(truncated));
        Assert.Equal(truncated, t.File);
        Assert.StartsWith(truncated + ":", t.Message, StringComparison.Ordinal);
        Assert.Contains("not valid YAML", t.Message, StringComparison.Ordinal);

        // YamlDotNet throws InvalidOperationException for this one; it must still be ours, naming the file.
        var flow = _dir.File("flow", "apiVersion: v1\nclusters:\n- name: x\n  cluster: {server: [unterminated\nusers: []\n");
        Assert.Equal(flow, Assert.Throws<KubeConfigInvalidException>(() => Loader().Load(flow)).File);
    }

    [Theory]
    [InlineData("clusters: {a: b}\n", 1, "'clusters' must be a list")]
    [InlineData("clusters:\n- cluster: {server: https://x}\n", 2, "has no name")]
    [InlineData("users:\n- name: u\n  user:\n    client-key-data: '!!notbase64'\n", 4, "not valid base64")]
    [InlineData("contexts:\n- name: c\n  context: {}\n- name: c\n  context: {}\n", 4, "defines 'c' twice")]
    [InlineData("clusters:\n- name: c\n  cluster:\n    insecure-skip-tls-verify: maybe\n", 4, "true or false")]
    [InlineData("- just\n- a list\n", 1, "not a mapping")]
    public void Wrong_shapes_name_the_file_and_line(string yaml, int line, string message)
    {
        var path = _dir.File("bad", yaml);
        var e = Assert.Throws<KubeConfigInvalidException>(() => Loader().Load(path));
        Assert.Equal(path, e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreadable_path_is_an_error_naming_it()
    {
        var dirAsFile = Directory.CreateDirectory(_dir.Combine("iam-a-dir")).FullName;
        var e = Assert.Throws<KubeConfigInvalidException>(() => Loader().Load(dirAsFile));
        Assert.Equal(dirAsFile, e.File);
    }

    [Fact]
    public void Json_kubeconfigs_are_read_and_their_errors_have_lines()
    {
        var json = _dir.File("k.json", """
            {
            	"apiVersion": "v1",
            	"current-context": "j",
            	"clusters": [{"name": "jc", "cluster": {"server": "https://json.example", "insecure-skip-tls-verify": true}}],
            	"contexts": [{"name": "j", "context": {"cluster": "jc", "namespace": "jns"}}]
            }
            """);
        var cfg = Loader().Load(json).CreateClientConfiguration();
        Assert.Equal(new Uri("https://json.example"), cfg.Server);
        Assert.True(cfg.InsecureSkipTlsVerify);
        Assert.Equal("jns", cfg.Namespace);

        var bad = _dir.File("bad.json", "{\n  \"clusters\": [\n    {\"name\": }\n  ]\n}\n");
        var e = Assert.Throws<KubeConfigInvalidException>(() => Loader().Load(bad));
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void An_empty_file_is_an_empty_config()
    {
        var empty = _dir.File("empty", "\n");
        var config = Loader().Load(empty);
        Assert.Empty(config.Contexts);
        var e = Assert.Throws<KubeContextNotFoundException>(() => config.CreateClientConfiguration());
        Assert.Null(e.ContextName);
    }

    [Fact]
    public void Context_selection_namespace_and_server_path_prefix()
    {
        var first = _dir.File("a/config", FirstFile);
        var second = _dir.File("b/nested/config", SecondFile);
        var config = Loader(first + Path.PathSeparator + second).Load();

        var shared = config.CreateClientConfiguration("shared");
        Assert.Equal("shared", shared.ContextName);
        Assert.Equal("shared-cluster", shared.ClusterName);
        Assert.Equal("default", shared.Namespace);
        Assert.Equal(first, shared.SourceFile);
        Assert.Same(AnonymousCredentials.Instance, shared.Credentials);

        var blueFile = _dir.File("blue", """
            clusters:
            - name: c
              cluster: {server: "https://blue.example:8443/k8s/clusters/c-1"}
            contexts:
            - name: x
              context: {cluster: c, namespace: ns1}
            current-context: x
            """);
        var blue = Loader().Load(blueFile).CreateClientConfiguration();
        Assert.Equal("/k8s/clusters/c-1", blue.Server.AbsolutePath);
        Assert.Equal(8443, blue.Server.Port);
        Assert.Equal("ns1", blue.Namespace);
    }

    [Fact]
    public void An_unknown_context_lists_the_available_ones()
    {
        var first = _dir.File("a/config", FirstFile);
        var config = Loader(first).Load();
        var e = Assert.Throws<KubeContextNotFoundException>(() => config.CreateClientConfiguration("green"));
        Assert.Equal("KubeContextNotFound", e.ErrorId);
        Assert.Equal(KtErrorCategory.ObjectNotFound, e.Category);
        Assert.Equal("green", e.ContextName);
        Assert.Equal(["red", "shared"], e.AvailableContexts);
        Assert.Contains("red, shared", e.Message, StringComparison.Ordinal);
        Assert.Contains(first, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dangling_references_and_bad_servers_are_clear_errors()
    {
        var path = _dir.File("c", """
            clusters:
            - name: noserver
              cluster: {}
            - name: ftp
              cluster: {server: "ftp://x"}
            - name: ok
              cluster: {server: "ok.example:6443"}
            - name: bothca
              cluster: {server: "https://x", insecure-skip-tls-verify: true, certificate-authority: ca.crt}
            - name: badproxy
              cluster: {server: "https://x", proxy-url: "ftp://proxy"}
            contexts:
            - {name: nocluster, context: {cluster: ghost}}
            - {name: nouser, context: {cluster: ok, user: ghost}}
            - {name: noserver, context: {cluster: noserver}}
            - {name: ftp, context: {cluster: ftp}}
            - {name: bare, context: {cluster: ok}}
            - {name: bothca, context: {cluster: bothca}}
            - {name: badproxy, context: {cluster: badproxy}}
            """);
        var config = Loader().Load(path);
        Assert.Contains("cluster 'ghost'", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("nocluster")).Message, StringComparison.Ordinal);
        Assert.Contains("user 'ghost'", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("nouser")).Message, StringComparison.Ordinal);
        Assert.Contains("has no server", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("noserver")).Message, StringComparison.Ordinal);
        Assert.Contains("ftp://x", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("ftp")).Message, StringComparison.Ordinal);
        Assert.Contains("insecure", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("bothca")).Message, StringComparison.Ordinal);
        Assert.Contains("socks5", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("badproxy")).Message, StringComparison.Ordinal);
        // A bare host:port means https, as client-go's DefaultServerURL does.
        Assert.Equal(new Uri("https://ok.example:6443/"), config.CreateClientConfiguration("bare").Server);
    }

    [Fact]
    public void Proxy_url_and_tls_settings_reach_the_client_configuration()
    {
        using var pki = new TestPki();
        _dir.File("cfg/ca/ca.crt", pki.CaPem);
        var path = _dir.File("cfg/config", """
            clusters:
            - name: c
              cluster:
                server: https://10.0.0.1:6443
                certificate-authority: ca/ca.crt
                tls-server-name: api.internal
                proxy-url: socks5://user:p%40ss@127.0.0.1:1080
            contexts:
            - {name: c, context: {cluster: c}}
            current-context: c
            """);
        var cfg = Loader().Load(path).CreateClientConfiguration();
        Assert.Equal("api.internal", cfg.TlsServerName);
        Assert.Equal(pki.Ca.Thumbprint, Assert.Single(cfg.CertificateAuthorities!).Thumbprint);
        Assert.Equal("socks5", cfg.Proxy!.Scheme);
        using var handler = cfg.CreateHandler();
        var proxy = Assert.IsType<System.Net.WebProxy>(handler.Proxy);
        Assert.Equal(new Uri("socks5://127.0.0.1:1080"), proxy.Address);
        var credential = proxy.Credentials!.GetCredential(proxy.Address!, "Basic")!;
        Assert.Equal("user", credential.UserName);
        Assert.Equal("p@ss", credential.Password);

        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(cfg.Server, "/api"));
        cfg.ConfigureRequest(request);
        Assert.Equal("api.internal:6443", request.Headers.Host);
    }

    [Fact]
    public void A_missing_certificate_authority_file_names_it()
    {
        var path = _dir.File("config", """
            clusters:
            - {name: c, cluster: {server: "https://x", certificate-authority: missing-ca.crt}}
            - {name: junk, cluster: {server: "https://x", certificate-authority-data: "bm90IGEgY2VydA=="}}
            contexts:
            - {name: c, context: {cluster: c}}
            - {name: junk, context: {cluster: junk}}
            """);
        var config = Loader().Load(path);
        var e = Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("c"));
        Assert.Contains(_dir.Combine("missing-ca.crt"), e.Message, StringComparison.Ordinal);
        Assert.Contains("certificate-authority-data", Assert.Throws<KubeConfigInvalidException>(() => config.CreateClientConfiguration("junk")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_any_kubeconfig_the_in_cluster_configuration_is_used_in_a_pod()
    {
        var sa = Directory.CreateDirectory(_dir.Combine("sa")).FullName;
        File.WriteAllText(Path.Combine(sa, "token"), "sa-token\n");
        var env = new Dictionary<string, string> { ["KUBERNETES_SERVICE_HOST"] = "10.96.0.1", ["KUBERNETES_SERVICE_PORT"] = "443" };
        var loader = new KubeConfigLoader(TestOptions.Create(_dir.Combine("home"), env, serviceAccountDirectory: sa));
        var cfg = loader.CreateClientConfiguration();
        Assert.Equal(InClusterConfiguration.ContextName, cfg.ContextName);
        Assert.Equal(new Uri("https://10.96.0.1:443"), cfg.Server);

        // An explicit context never falls back.
        Assert.Throws<KubeConfigNotFoundException>(() => loader.CreateClientConfiguration(contextName: "x"));
    }

    [Fact]
    public void On_windows_the_home_is_the_first_of_HOME_HOMEDRIVE_HOMEPATH_and_USERPROFILE_that_holds_a_kubeconfig_as_in_kubectl()
    {
        var home = Directory.CreateDirectory(_dir.Combine("msys-home")).FullName;
        var drive = Directory.CreateDirectory(_dir.Combine("drive-home")).FullName;
        var profile = Directory.CreateDirectory(_dir.Combine("profile")).FullName;
        string Resolve(Dictionary<string, string?> env) =>
            new KubeConfigLoaderOptions { GetEnvironmentVariable = n => env.GetValueOrDefault(n) }.ResolveHome(windows: true);
        var all = new Dictionary<string, string?>
        {
            ["HOME"] = home, ["HOMEDRIVE"] = Path.GetPathRoot(drive), ["HOMEPATH"] = drive[Path.GetPathRoot(drive)!.Length..], ["USERPROFILE"] = profile,
        };

        // None holds one: the first that exists, %USERPROFILE% before %HOMEDRIVE%%HOMEPATH%.
        Assert.Equal(home, Resolve(all));
        Assert.Equal(profile, Resolve(new(all) { ["HOME"] = null }));
        Assert.Equal(profile, Resolve(new(all) { ["HOME"] = _dir.Combine("missing") }));
        // One holds a kubeconfig: that one, %HOMEDRIVE%%HOMEPATH% before %USERPROFILE%.
        _dir.File("profile/.kube/config", "x");
        Assert.Equal(profile, Resolve(all));
        _dir.File("drive-home/.kube/config", "x");
        Assert.Equal(drive, Resolve(all));
        _dir.File("msys-home/.kube/config", "x");
        Assert.Equal(home, Resolve(all));
        // Elsewhere $HOME, whatever else is set.
        Assert.Equal(profile, new KubeConfigLoaderOptions { GetEnvironmentVariable = n => n == "HOME" ? profile : null }.ResolveHome(windows: false));
    }
}
