using KtConnect.Cli;
using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Exchange;

namespace KtConnect.Tests.Unit.Sessions.Exchange;

public sealed class ExchangeParsingTests
{
    private static ParsedArgs Args(params string[] args) =>
        FlagParser.Parse(args, CommandLine.GlobalFlags, v => v switch
        {
            "exchange" => ExchangeVerb.Flags,
            "preview" => PreviewVerb.Flags,
            "mesh" => MeshVerb.Flags,
            _ => null,
        });

    [Fact]
    public void Kt_exchange_flags_map_onto_options_with_kt_connect_names()
    {
        var o = ExchangeVerb.Parse(Args("exchange", "svc/orders", "-n", "dev", "--expose", "8080:80,9090", "--mode", "scale",
            "--recoverWaitTime", "30", "--skipPortChecking", "--withLabel", "team=a", "-i", "my/shadow:1"));
        Assert.Equal("orders", o.Service);
        Assert.Equal("dev", o.Namespace);
        Assert.Equal([new ExposedPort(8080, 80), new ExposedPort(9090, 9090)], o.Ports);
        Assert.Equal(ExchangeMode.Scale, o.Mode);
        Assert.Equal(TimeSpan.FromSeconds(30), o.RecoverWaitTime);
        Assert.True(o.SkipPortChecking);
        Assert.False(o.AllowPartial);
        Assert.True(ExchangeVerb.Parse(Args("exchange", "orders", "--expose", "8080", "--allowPartial")).AllowPartial);
        Assert.Equal("a", o.Labels["team"]);
        Assert.Equal("my/shadow:1", o.Image);

        var d = ExchangeVerb.Parse(Args("exchange", "service/orders", "--expose", "8080"));
        Assert.Equal(("orders", ExchangeMode.Selector, TimeSpan.FromSeconds(120), false), (d.Service, d.Mode, d.RecoverWaitTime, d.SkipPortChecking));
        Assert.Equal("orders", ExchangeVerb.Parse(Args("exchange", "orders", "--expose", "8080")).Service);
        var byDeployment = ExchangeVerb.Parse(Args("exchange", "deploy/orders-v1", "--expose", "8080", "--mode", "scale"));
        Assert.Equal(("", "orders-v1"), (byDeployment.Service, byDeployment.Deployment));
        Assert.Equal("orders-v1", MeshVerb.Parse(Args("mesh", "deployment/orders-v1", "--expose", "8080")).Deployment);
    }

    [Theory]
    [InlineData("InvalidCommandLine", "exchange", "--expose", "8080")]
    [InlineData("InvalidCommandLine", "exchange", "a", "b", "--expose", "8080")]
    [InlineData("InvalidCommandLine", "exchange", "orders")]
    [InlineData("InvalidCommandLine", "exchange", "orders", "--expose", "8080", "--mode", "ephemeral")]
    [InlineData("InvalidCommandLine", "exchange", "pod/orders-1", "--expose", "8080")]
    [InlineData("InvalidCommandLine", "exchange", "deploy/", "--expose", "8080")]
    [InlineData("InvalidCommandLine", "exchange", "orders", "--expose", "8080", "--recoverWaitTime", "-1")]
    [InlineData("InvalidExposePort", "exchange", "orders", "--expose", "http")]
    [InlineData("InvalidExposePort", "exchange", "orders", "--expose", "8080:80,9090:80")]
    [InlineData("InvalidCommandLine", "preview", "--expose", "8080")]
    [InlineData("InvalidCommandLine", "preview", "orders-next")]
    [InlineData("InvalidPreviewName", "preview", "Orders_Next", "--expose", "8080")]
    [InlineData("InvalidExposePort", "preview", "orders-next", "--expose", "0")]
    [InlineData("InvalidCommandLine", "mesh", "orders")]
    [InlineData("InvalidCommandLine", "mesh", "orders", "--expose", "8080", "--mode", "istio")]
    [InlineData("InvalidVersionMark", "mesh", "orders", "--expose", "8080", "--mode", "manual", "--versionMark", "Version:1")]
    public void Bad_flags_are_refused_before_anything_happens(string errorId, params string[] args)
    {
        var e = Assert.ThrowsAny<KtException>(() => args[0] switch
        {
            "exchange" => (object)ExchangeVerb.Parse(Args(args)),
            "mesh" => MeshVerb.Parse(Args(args)),
            _ => PreviewVerb.Parse(Args(args)),
        });
        Assert.Equal(errorId, e.ErrorId);
    }

    [Fact]
    public void Kt_mesh_flags_map_onto_options()
    {
        var o = MeshVerb.Parse(Args("mesh", "svc/orders", "-n", "dev", "--expose", "8080:80", "--mode", "manual", "--versionMark", "track:canary"));
        Assert.Equal(("orders", "dev", MeshMode.Manual, new VersionMark("track", "canary")), (o.Service, o.Namespace, o.Mode, o.Mark));
        Assert.Equal([new ExposedPort(8080, 80)], o.Ports);
        var d = MeshVerb.Parse(Args("mesh", "orders", "--expose", "8080"));
        Assert.Equal(("version", MeshMode.Auto, KtConventions.DefaultRouterImage), (d.Mark.Key, d.Mode, d.RouterImage));
        Assert.Equal("my/router:1", MeshVerb.Parse(Args("mesh", "orders", "--expose", "8080", "--routerImage", "my/router:1")).RouterImage);
    }

    [Fact]
    public void Kt_preview_flags_map_onto_options()
    {
        var o = PreviewVerb.Parse(Args("preview", "orders-next", "-n", "dev", "--expose", "8080:80", "--external"));
        Assert.Equal(("orders-next", "dev", PreviewServiceType.LoadBalancer), (o.Name, o.Namespace, o.ServiceType));
        Assert.Equal([new ExposedPort(8080, 80)], o.Ports);
        Assert.Equal(PreviewServiceType.ClusterIP, PreviewVerb.Parse(Args("preview", "x", "--expose", "1")).ServiceType);
    }

    [Fact]
    public void Options_validate_what_the_cmdlets_pass_directly()
    {
        Assert.Equal("ServiceNameMissing", Assert.ThrowsAny<KtException>(() => new ExchangeOptions { Ports = [new(1, 1)] }.Validate()).ErrorId);
        Assert.Equal("InvalidExposePort", Assert.ThrowsAny<KtException>(() => new ExchangeOptions { Service = "a" }.Validate()).ErrorId);
        Assert.Equal("InvalidRecoverWaitTime", Assert.ThrowsAny<KtException>(() =>
            new ExchangeOptions { Service = "a", Ports = [new(1, 1)], RecoverWaitTime = TimeSpan.FromSeconds(-1) }.Validate()).ErrorId);
        new PreviewOptions { Name = "a-1", Ports = [new(1, 1)] }.Validate();
        Assert.Equal("InvalidPreviewName", Assert.ThrowsAny<KtException>(() => new PreviewOptions { Name = "-a", Ports = [new(1, 1)] }.Validate()).ErrorId);
        Assert.Equal("InvalidPreviewName", Assert.ThrowsAny<KtException>(() => new PreviewOptions { Name = new string('a', 64), Ports = [new(1, 1)] }.Validate()).ErrorId);
    }

    [Fact]
    public void The_refusal_of_a_second_exchange_names_user_host_session_and_pod()
    {
        var pod = new KtConnect.Engine.Kube.Models.Pod
        {
            Metadata = new()
            {
                Name = "orders-kt-exchange-abcde",
                Labels = new() { [KtConventions.RoleLabel] = KtConventions.Roles.ShadowExchange },
                Annotations = new()
                {
                    [KtConventions.UserAnnotation] = "alice",
                    [ExchangeHolders.HostAnnotation] = "laptop-7",
                    [ExchangeHolders.SessionAnnotation] = "0123abcd",
                },
            },
        };
        var e = ExchangeHolders.Held("dev", "orders", pod, "its selector points at a kt pod");
        Assert.Equal(("ServiceAlreadyExchanged", KtErrorCategory.ResourceBusy), (e.ErrorId, e.Category));
        foreach (var part in new[] { "'dev/orders'", "user 'alice'", "host 'laptop-7'", "session 0123abcd", "orders-kt-exchange-abcde", "kt clean" })
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        Assert.Contains("another kt session", ExchangeHolders.Held("dev", "orders", null, "x").Message, StringComparison.Ordinal);
    }
}
