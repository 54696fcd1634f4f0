using KtConnect.Engine;
using KtConnect.Engine.Sessions.Forward;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>`kt forward &lt;service&gt; [&lt;localPort&gt;[:&lt;servicePort&gt;]]…` (ktctl forward; no own flags).</summary>
internal static class ForwardVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags = [];

    internal static readonly Verb Verb = new("forward", "Redirect local ports to a Service's ready pods: forward <service> [<localPort>[:<servicePort>]]...",
        Flags, RunAsync);

    private static Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        ForwardOptions options;
        try
        {
            options = Parse(a);
        }
        catch (KtException e)
        {
            stderr.WriteLine($"kt: {e.Message} ({e.ErrorId})");
            return Task.FromResult(2);
        }
        return Foreground.RunAsync((output, ct) => Forwarder.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct),
            stdout, stderr, a.Flag("debug"));
    }

    internal static ForwardOptions Parse(ParsedArgs a)
    {
        if (a.Positional.Count == 0 || string.IsNullOrWhiteSpace(a.Positional[0]))
            throw ParsedArgs.Usage("forward needs a Service name: kt forward <service> [<localPort>[:<servicePort>]]...");
        return GlobalOptions.Apply(a, new ForwardOptions()) with
        {
            Service = a.Positional[0],
            Ports = a.Positional.Skip(1).Select(PortMapping.Parse).ToList(),
            PortForwardTimeout = TimeSpan.FromSeconds(Math.Max(1, a.Int("portForwardTimeout", 10))),
        };
    }
}
