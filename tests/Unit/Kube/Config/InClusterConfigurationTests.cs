using KtConnect.Engine.Kube.Config;
using static KtConnect.Tests.Unit.Kube.Config.TestOptions;

namespace KtConnect.Tests.Unit.Kube.Config;

public sealed class InClusterConfigurationTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeTime _time = new();

    public void Dispose() => _dir.Dispose();

    private KubeConfigLoaderOptions Options(string host, string port, string? podNamespace = null)
    {
        var env = new Dictionary<string, string> { ["KUBERNETES_SERVICE_HOST"] = host, ["KUBERNETES_SERVICE_PORT"] = port };
        if (podNamespace is not null) env["POD_NAMESPACE"] = podNamespace;
        return Create(_dir.Path, env, _time, serviceAccountDirectory: _dir.Combine("sa"));
    }

    [Fact]
    public async Task Reads_host_token_ca_and_namespace_file_and_re_reads_the_token()
    {
        using var pki = new TestPki();
        _dir.File("sa/token", "token-1\n");
        _dir.File("sa/ca.crt", pki.CaPem);
        _dir.File("sa/namespace", " kt-system \n");
        var cfg = InClusterConfiguration.Load(Options("10.96.0.1", "443"));

        Assert.Equal(new Uri("https://10.96.0.1:443/"), cfg.Server);
        Assert.Equal("kt-system", cfg.Namespace);
        Assert.Equal("in-cluster", cfg.ContextName);
        Assert.Equal(pki.Ca.Thumbprint, Assert.Single(cfg.CertificateAuthorities!).Thumbprint);
        Assert.Equal(["Bearer token-1"], (await HeadersAsync(cfg.Credentials))["Authorization"]);

        _dir.File("sa/token", "token-2");
        Assert.Equal(["Bearer token-1"], (await HeadersAsync(cfg.Credentials))["Authorization"]);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(["Bearer token-2"], (await HeadersAsync(cfg.Credentials))["Authorization"]);
    }

    [Fact]
    public void Ipv6_hosts_are_bracketed_and_POD_NAMESPACE_wins()
    {
        _dir.File("sa/token", "t");
        _dir.File("sa/namespace", "from-file");
        var cfg = InClusterConfiguration.Load(Options("fd00:10:96::1", "6443", podNamespace: "from-env"));
        Assert.Equal("[fd00:10:96::1]", cfg.Server.Host);
        Assert.Equal(6443, cfg.Server.Port);
        Assert.Equal("from-env", cfg.Namespace);
        Assert.Null(cfg.CertificateAuthorities); // no ca.crt: only noted, the system store applies
    }

    [Fact]
    public void Namespace_defaults_and_missing_pieces_are_clear_errors()
    {
        _dir.File("sa/token", "t");
        Assert.Equal("default", InClusterConfiguration.Load(Options("10.0.0.1", "443")).Namespace);

        Assert.False(InClusterConfiguration.IsAvailable(Create(_dir.Path)));
        var notInPod = Assert.Throws<InClusterConfigException>(() => InClusterConfiguration.Load(Create(_dir.Path)));
        Assert.Equal("InClusterConfigUnavailable", notInPod.ErrorId);

        File.Delete(_dir.Combine("sa", "token"));
        var noToken = Assert.Throws<InClusterConfigException>(() => InClusterConfiguration.Load(Options("10.0.0.1", "443")));
        Assert.Contains(_dir.Combine("sa", "token"), noToken.Message, StringComparison.Ordinal);
    }
}
