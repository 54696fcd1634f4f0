using System.Net;
using KtConnect.Engine.Kube;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>HTTPS_PROXY / HTTP_PROXY / NO_PROXY read as kubectl reads them (Go's net/http), where .NET 10 differs.</summary>
public sealed class KubeEnvironmentProxyTests
{
    private static KubeEnvironmentProxy Proxy(string? noProxy, string? https = "http://proxy.corp:3128", string? http = null,
        bool lowerCase = false)
    {
        var env = new Dictionary<string, string?>
        {
            [lowerCase ? "https_proxy" : "HTTPS_PROXY"] = https,
            [lowerCase ? "http_proxy" : "HTTP_PROXY"] = http,
            [lowerCase ? "no_proxy" : "NO_PROXY"] = noProxy,
        };
        return KubeEnvironmentProxy.FromEnvironment(name => env.GetValueOrDefault(name));
    }

    [Theory]
    // CIDR blocks and addresses: .NET 10 ignores the blocks, so a cluster reached by address went to the proxy.
    [InlineData("10.0.0.0/8", "https://10.1.2.3:6443/", true)]
    [InlineData("10.0.0.0/8", "https://11.1.2.3:6443/", false)]
    // Host bits set, as Go's ParseCIDR allows (.NET 8 and 9 refuse the block in IPNetwork.TryParse).
    [InlineData("10.1.2.3/8", "https://10.9.9.9:6443/", true)]
    [InlineData("192.168.1.10/24", "https://192.168.1.77/", true)]
    [InlineData("192.168.1.10/24", "https://192.168.2.77/", false)]
    [InlineData("10.0.0.0/33", "https://10.0.0.1/", false)]
    [InlineData("fd00::/8", "https://[fd00::1]:6443/", true)]
    [InlineData("10.1.2.3", "https://10.1.2.3:6443/", true)]
    [InlineData("10.1.2.3:6443", "https://10.1.2.3:6443/", true)]
    [InlineData("10.1.2.3:443", "https://10.1.2.3:6443/", false)]
    [InlineData("[fd00::1]:6443", "https://[fd00::1]:6443/", true)]
    [InlineData("fd00::1", "https://[fd00::1]:6443/", true)]
    // A domain covers itself and its subdomains; a leading dot or *. only its subdomains.
    [InlineData("corp.example", "https://api.corp.example:6443/", true)]
    [InlineData("corp.example", "https://corp.example/", true)]
    [InlineData("corp.example", "https://notcorp.example/", false)]
    [InlineData(".corp.example", "https://api.corp.example/", true)]
    [InlineData(".corp.example", "https://corp.example/", false)]
    [InlineData("*.corp.example", "https://api.corp.example/", true)]
    [InlineData("corp.example:6443", "https://api.corp.example:6443/", true)]
    [InlineData("corp.example:6443", "https://api.corp.example/", false)]
    [InlineData(" CORP.example , other", "https://API.corp.example/", true)]
    [InlineData("*", "https://anything.example/", true)]
    [InlineData("*", "https://10.1.2.3/", true)]
    // Loopback never goes through a proxy, whatever NO_PROXY says.
    [InlineData(null, "https://localhost:6443/", true)]
    [InlineData(null, "https://127.0.0.1:6443/", true)]
    [InlineData(null, "https://127.8.9.1:6443/", true)]
    [InlineData(null, "https://[::1]:6443/", true)]
    [InlineData(null, "https://kube.corp.example/", false)]
    [InlineData("", "https://10.1.2.3/", false)]
    public void No_proxy_entries_match_as_kubectl_matches_them(string? noProxy, string url, bool direct)
    {
        var proxy = Proxy(noProxy);
        var destination = new Uri(url);
        Assert.Equal(direct, proxy.IsBypassed(destination));
        Assert.Equal(direct ? null : new Uri("http://proxy.corp:3128"), proxy.GetProxy(destination));
    }

    [Fact]
    public void Each_scheme_has_its_proxy_lower_case_names_count_and_a_bare_host_is_an_http_proxy()
    {
        var proxy = Proxy(null, https: "secure.corp:8443", http: "http://plain.corp:8080", lowerCase: true);
        Assert.False(proxy.IsEmpty);
        Assert.Equal(new Uri("http://secure.corp:8443"), proxy.GetProxy(new Uri("https://kube.example/")));
        Assert.Equal(new Uri("http://plain.corp:8080"), proxy.GetProxy(new Uri("http://kube.example/")));
        // No fallback from https to the http proxy.
        Assert.Null(Proxy(null, https: null, http: "http://plain.corp:8080").GetProxy(new Uri("https://kube.example/")));
        Assert.True(Proxy("10.0.0.0/8", https: null).IsEmpty);
    }

    [Fact]
    public void User_and_password_in_the_proxy_url_are_its_credentials()
    {
        var proxy = Proxy(null, https: "http://al%40ce:p%3Ass@proxy.corp:3128");
        var at = proxy.GetProxy(new Uri("https://kube.example/"))!;
        Assert.Equal(new Uri("http://proxy.corp:3128"), at);
        var credential = proxy.Credentials!.GetCredential(at, "Basic")!;
        Assert.Equal("al@ce", credential.UserName);
        Assert.Equal("p:ss", credential.Password);
        Assert.Null(Proxy(null).Credentials);
    }

    [Fact]
    public void A_kubeconfig_proxy_url_wins_over_the_environment()
    {
        var config = new KubeClientConfiguration
        {
            Server = new Uri("https://10.1.2.3:6443/"),
            ContextName = "c",
            ClusterName = "k",
            Credentials = AnonymousCredentials.Instance,
            Proxy = new Uri("socks5://127.0.0.1:1080"),
        };
        using var handler = config.CreateHandler();
        Assert.True(handler.UseProxy);
        Assert.IsType<WebProxy>(handler.Proxy);
    }
}
