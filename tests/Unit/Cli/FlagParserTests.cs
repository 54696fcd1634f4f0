using KtConnect.Cli;
using KtConnect.Engine;

namespace KtConnect.Tests.Unit.Cli;

public sealed class FlagParserTests
{
    private static readonly FlagSpec[] Connect =
    [
        new("mode", null, true, "mode"),
        new("excludeIps", null, true, "excludes"),
        new("shareShadow", null, false, "shared"),
        new("proxyPort", null, true, "port"),
    ];

    private static ParsedArgs Parse(params string[] args) =>
        FlagParser.Parse(args, CommandLine.GlobalFlags, v => v == "connect" ? Connect : null);

    [Fact]
    public void Global_flags_work_before_and_after_the_verb_in_every_spelling()
    {
        var a = Parse("-n", "dev", "connect", "--kubeconfig=/tmp/k", "--context", "kind", "--mode", "tun", "-d");
        Assert.Equal("connect", a.Verb);
        Assert.Equal("dev", a.Get("namespace"));
        Assert.Equal("/tmp/k", a.Get("kubeconfig"));
        Assert.Equal("kind", a.Get("context"));
        Assert.Equal("tun", a.Get("mode"));
        Assert.True(a.Flag("debug"));
        Assert.False(a.Flag("shareShadow"));
    }

    [Fact]
    public void Switches_accept_explicit_booleans_and_lists_and_maps_split_on_commas()
    {
        var a = Parse("connect", "--shareShadow=false", "--excludeIps", "10.0.0.0/8, 192.168.1.1,", "--withLabel", "team=a,env=dev");
        Assert.False(a.Flag("shareShadow"));
        Assert.Equal(["10.0.0.0/8", "192.168.1.1"], a.List("excludeIps"));
        Assert.Equal("a", a.Map("withLabel")["team"]);
        Assert.Equal("dev", a.Map("withLabel")["env"]);
    }

    [Theory]
    [InlineData("InvalidCommandLine", "connect", "--nope")]
    [InlineData("InvalidCommandLine", "--mode", "tun", "connect")]
    [InlineData("InvalidCommandLine", "teleport")]
    [InlineData("InvalidCommandLine", "connect", "--mode")]
    [InlineData("InvalidCommandLine", "connect", "--shareShadow=maybe")]
    public void Bad_command_lines_are_one_typed_error(string errorId, params string[] args)
    {
        var e = Assert.Throws<KtException>(() => Parse(args));
        Assert.Equal(errorId, e.ErrorId);
    }

    [Fact]
    public void Bad_values_name_the_flag()
    {
        var a = Parse("connect", "--proxyPort", "x", "--withLabel", "novalue");
        Assert.Contains("--proxyPort", Assert.Throws<KtException>(() => a.Int("proxyPort", 2223)).Message, StringComparison.Ordinal);
        Assert.Contains("--withLabel", Assert.Throws<KtException>(() => a.Map("withLabel")).Message, StringComparison.Ordinal);
        Assert.Equal(2223, Parse("connect").Int("proxyPort", 2223));
    }

    [Fact]
    public async Task Version_and_help_exit_zero_and_unknown_commands_exit_two()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(0, await CommandLine.RunAsync(["--version"], stdout, stderr));
        Assert.Matches(@"^\d+\.\d+\.\d+", stdout.ToString());
        Assert.Equal(0, await CommandLine.RunAsync(["--help"], stdout, stderr));
        Assert.Equal(2, await CommandLine.RunAsync(["teleport"], new StringWriter(), stderr));
        Assert.Contains("unknown command 'teleport'", stderr.ToString(), StringComparison.Ordinal);
        // With a command, --version is an error, not ignored (that would start a connect).
        foreach (var args in new[] { new[] { "connect", "-v" }, ["-v", "connect"], ["recover", "--version", "orders"] })
        {
            var err = new StringWriter();
            Assert.Equal(2, await CommandLine.RunAsync(args, new StringWriter(), err));
            Assert.Contains("takes no command", err.ToString(), StringComparison.Ordinal);
        }
        // An empty name (an unset variable in a script) is a usage error too.
        Assert.Equal(2, await CommandLine.RunAsync(["recover", ""], new StringWriter(), new StringWriter()));
    }
}
