using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>`kt preview`: kt-connect's flags (reference/kt-connect.md §1.6) over Previewer.</summary>
internal static class PreviewVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags =
    [
        new("expose", null, true, "Local ports and the new Service's port each backs: port or local:remote, comma separated (required)"),
        new("external", null, false, "Create a LoadBalancer Service instead of ClusterIP"),
        new("skipPortChecking", null, false, "Do not warn about local ports nothing listens on"),
    ];

    internal static readonly Verb Verb = new("preview", "Expose local ports as a new Service in the cluster", Flags, RunAsync);

    private static Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        PreviewOptions options;
        try
        {
            options = Parse(a);
        }
        catch (KtException e)
        {
            stderr.WriteLine($"kt: {e.Message} ({e.ErrorId})");
            return Task.FromResult(2);
        }
        return Foreground.RunAsync((output, ct) => Previewer.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct),
            stdout, stderr, a.Flag("debug"));
    }

    internal static PreviewOptions Parse(ParsedArgs a)
    {
        if (a.Positional.Count != 1) throw ParsedArgs.Usage("preview needs exactly one argument: the name of the new Service");
        if (!a.Has("expose")) throw ParsedArgs.Usage("preview needs --expose <localPort[:remotePort]>[,...]");
        var options = GlobalOptions.Apply(a, new PreviewOptions()) with
        {
            Name = a.Positional[0],
            Ports = ExposedPort.ParseList(a.Get("expose")),
            ServiceType = a.Flag("external") ? PreviewServiceType.LoadBalancer : PreviewServiceType.ClusterIP,
            SkipPortChecking = a.Flag("skipPortChecking"),
        };
        options.Validate();
        return options;
    }
}
