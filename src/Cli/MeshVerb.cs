using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>`kt mesh`: kt-connect's flags (reference/kt-connect.md §1.5) over Mesher.</summary>
internal static class MeshVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags =
    [
        new("expose", null, true, "Local ports and the Service port or targetPort each serves: port or local:remote, comma separated (required)"),
        new("mode", null, true, "auto (a router pod routes requests by header) or manual (a labelled shadow for your service mesh to route)", "auto"),
        new("versionMark", null, true, "The version mark, a header (auto) or label (manual): val, key: or key:val (key defaults to version, val to 5 random letters)"),
        new("skipPortChecking", null, false, "Do not warn about local ports nothing listens on"),
        new("routerImage", null, true, "Auto mode: the router pod's image", MeshOptions.DefaultRouterImage),
    ];

    internal static readonly Verb Verb = new("mesh", "Redirect marked requests of a Service to local ports", Flags, RunAsync);

    private static Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        MeshOptions options;
        try
        {
            options = Parse(a);
        }
        catch (KtException e)
        {
            stderr.WriteLine($"kt: {e.Message} ({e.ErrorId})");
            return Task.FromResult(2);
        }
        return Foreground.RunAsync((output, ct) => Mesher.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct),
            stdout, stderr, a.Flag("debug"));
    }

    internal static MeshOptions Parse(ParsedArgs a)
    {
        var (service, deployment) = ExchangeVerb.TargetArgument(a, "mesh");
        if (!a.Has("expose")) throw ParsedArgs.Usage("mesh needs --expose <localPort[:remotePort]>[,...]");
        var mode = a.Get("mode", "auto") switch
        {
            "auto" => MeshMode.Auto,
            "manual" => MeshMode.Manual,
            var m => throw ParsedArgs.Usage($"--mode must be auto or manual, not '{m}'"),
        };
        var options = GlobalOptions.Apply(a, new MeshOptions()) with
        {
            Service = service,
            Deployment = deployment,
            Ports = ExposedPort.ParseList(a.Get("expose")),
            Mode = mode,
            Mark = VersionMark.Parse(a.Get("versionMark", "")),
            SkipPortChecking = a.Flag("skipPortChecking"),
            RouterImage = a.Get("routerImage", MeshOptions.DefaultRouterImage),
        };
        options.Validate();
        return options;
    }
}
