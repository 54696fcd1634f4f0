using KtConnect.Cli;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Forward;

namespace KtConnect.Tests.Unit.Cli;

public sealed class ForwardVerbTests
{
    private static ParsedArgs Parse(params string[] args) =>
        FlagParser.Parse(args, CommandLine.GlobalFlags, v => CommandLine.Verbs.FirstOrDefault(x => x.Name == v)?.Flags);

    [Fact]
    public void Kt_forward_takes_the_service_then_port_mappings_and_global_flags_anywhere()
    {
        var o = ForwardVerb.Parse(Parse("forward", "-n", "dev", "orders", "8080", "9090:90", "--portForwardTimeout", "3"));
        Assert.Equal("orders", o.Service);
        Assert.Equal("dev", o.Namespace);
        Assert.Equal([new PortMapping(8080, null), new PortMapping(9090, 90)], o.Ports);
        Assert.Equal(TimeSpan.FromSeconds(3), o.PortForwardTimeout);
    }

    [Fact]
    public void Kt_forward_without_a_service_or_with_a_bad_port_is_a_usage_error()
    {
        Assert.Equal("InvalidCommandLine", Assert.Throws<KtException>(() => ForwardVerb.Parse(Parse("forward"))).ErrorId);
        Assert.Equal("InvalidCommandLine", Assert.Throws<KtException>(() => ForwardVerb.Parse(Parse("forward", ""))).ErrorId);
        Assert.Equal(ForwardErrors.InvalidPort, Assert.Throws<KtException>(() => ForwardVerb.Parse(Parse("forward", "orders", "80:x"))).ErrorId);
    }

    [Fact]
    public void Forward_and_recover_are_verbs_of_kt()
    {
        Assert.Contains(CommandLine.Verbs, v => v.Name == "forward");
        Assert.Contains(CommandLine.Verbs, v => v.Name == "recover");
    }
}
