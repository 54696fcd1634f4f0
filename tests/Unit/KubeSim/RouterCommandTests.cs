using KtConnect.KubeSim.Images;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>The router binary's pure parts: its argv and the route.conf it renders (the pod side is in Integration/KubeSim).</summary>
public sealed class RouterCommandTests
{
    [Theory]
    [InlineData("version:v1", "version", "v1")]
    [InlineData("kt-version:abcde", "kt_version", "abcde")]
    [InlineData("X-Env:dev.1", "X_Env", "dev.1")]
    public void A_version_mark_is_header_colon_version_with_the_headers_dashes_as_underscores(string text, string header, string version)
    {
        Assert.True(RouterCommand.TryParseMark(text, out var mark));
        Assert.Equal((header, version), mark);
    }

    [Theory]
    [InlineData("v1")]
    [InlineData(":v1")]
    [InlineData("version:")]
    [InlineData("ver sion:v1")]
    [InlineData("version:v\"1")]
    public void A_malformed_version_mark_is_refused(string text) => Assert.False(RouterCommand.TryParseMark(text, out _));

    [Fact]
    public void Ports_are_service_port_colon_target_port_pairs()
    {
        Assert.True(RouterCommand.TryParsePorts("80:8080,443:8443", out var ports));
        Assert.Equal([["80", "8080"], ["443", "8443"]], ports);
        Assert.False(RouterCommand.TryParsePorts("80", out _));
        Assert.False(RouterCommand.TryParsePorts("80:x", out _));
        Assert.False(RouterCommand.TryParsePorts("", out _));
    }

    [Fact]
    public void Route_conf_has_one_upstream_per_version_and_port_one_stuntman_per_port_and_an_if_per_version()
    {
        var state = new RouterCommand.RouterState { Service = "orders", Ports = [["80", "8080"], ["81", "9090"]], Header = "version", Versions = ["v1", "v2"] };

        var conf = RouterCommand.RenderRoute(state);

        foreach (var port in new[] { "80", "81" })
        {
            Assert.Contains($"upstream orders-kt-mesh-v1-{port} {{\n    server orders-kt-mesh-v1:{port};\n}}", conf, StringComparison.Ordinal);
            Assert.Contains($"upstream orders-kt-mesh-v2-{port} {{\n    server orders-kt-mesh-v2:{port};\n}}", conf, StringComparison.Ordinal);
            Assert.Single(conf.Split($"upstream orders-kt-stuntman-{port} {{\n    server orders-kt-stuntman:{port};\n}}")[1..]);
        }
        Assert.Contains("""
            server {
                listen 8080;
                listen [::]:8080;
                underscores_in_headers on;
            """.Replace("\r", "", StringComparison.Ordinal), conf, StringComparison.Ordinal);
        Assert.Contains("""
                location / {
                    proxy_http_version 1.1;
                    if ($http_version = "v1") {
                        proxy_pass http://orders-kt-mesh-v1-81;
                    }
                    if ($http_version = "v2") {
                        proxy_pass http://orders-kt-mesh-v2-81;
                    }
                    proxy_pass http://orders-kt-stuntman-81;
                }
            """.Replace("\r", "", StringComparison.Ordinal), conf, StringComparison.Ordinal);
        Assert.Contains("listen [::]:9090;", conf, StringComparison.Ordinal);
    }
}
