using System.Globalization;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>`kt exchange`: kt-connect's flags (reference/kt-connect.md §1.4) over Exchanger.</summary>
internal static class ExchangeVerb
{
    internal static readonly IReadOnlyList<FlagSpec> Flags =
    [
        new("expose", null, true, "Local ports and the Service port or targetPort each takes over: port or local:remote, comma separated (required)"),
        new("mode", null, true, "selector (point the Service at the shadow) or scale (scale the Deployment to 0)", "selector"),
        new("recoverWaitTime", null, true, "Scale mode: seconds to wait for the original pods when stopping", "120"),
        new("skipPortChecking", null, false, "Do not warn about local ports nothing listens on"),
        new("allowPartial", null, false, "Exchange even when Service ports that are not exposed cannot be relayed to its pods (they are refused meanwhile)"),
    ];

    internal static readonly Verb Verb = new("exchange", "Redirect all requests of a Service to local ports", Flags, RunAsync);

    private static Task<int> RunAsync(ParsedArgs a, TextWriter stdout, TextWriter stderr)
    {
        ExchangeOptions options;
        try
        {
            options = Parse(a);
        }
        catch (KtException e)
        {
            stderr.WriteLine($"kt: {e.Message} ({e.ErrorId})");
            return Task.FromResult(2);
        }
        return Foreground.RunAsync((output, ct) => Exchanger.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct),
            stdout, stderr, a.Flag("debug"));
    }

    internal static ExchangeOptions Parse(ParsedArgs a)
    {
        var (service, deployment) = TargetArgument(a, "exchange");
        if (!a.Has("expose")) throw ParsedArgs.Usage("exchange needs --expose <localPort[:remotePort]>[,...]");
        var mode = a.Get("mode", "selector") switch
        {
            "selector" => ExchangeMode.Selector,
            "scale" => ExchangeMode.Scale,
            // kt-connect marks it experimental and its navigator image carries no sshd to forward through.
            "ephemeral" => throw ParsedArgs.Usage("--mode ephemeral is not supported (kt-connect's own is experimental and unfinished); use selector or scale"),
            var m => throw ParsedArgs.Usage($"--mode must be selector or scale, not '{m}'"),
        };
        var options = GlobalOptions.Apply(a, new ExchangeOptions()) with
        {
            Service = service,
            Deployment = deployment,
            Ports = ExposedPort.ParseList(a.Get("expose")),
            Mode = mode,
            RecoverWaitTime = TimeSpan.FromSeconds(a.Int("recoverWaitTime", 120)),
            SkipPortChecking = a.Flag("skipPortChecking"),
            AllowPartial = a.Flag("allowPartial"),
        };
        options.Validate();
        return options;
    }

    /// <summary>
    /// The one positional argument: <c>name</c>, <c>svc/name</c> or <c>service/name</c> (a Service), or <c>deploy/name</c> or
    /// <c>deployment/name</c> (a Deployment, whose Service the engine finds).
    /// </summary>
    internal static (string Service, string? Deployment) TargetArgument(ParsedArgs a, string verb)
    {
        if (a.Positional.Count != 1)
            throw ParsedArgs.Usage(a.Positional.Count == 0 ? $"{verb} needs the name of a Service" : $"{verb} takes one Service name, not {a.Positional.Count.ToString(CultureInfo.InvariantCulture)} arguments");
        var arg = a.Positional[0];
        var slash = arg.IndexOf('/', StringComparison.Ordinal);
        var kind = slash >= 0 ? arg[..slash] : "service";
        var name = slash >= 0 ? arg[(slash + 1)..] : arg;
        if (name.Length == 0) throw ParsedArgs.Usage($"{verb} needs the name of a Service");
        return kind switch
        {
            "svc" or "service" => (name, null),
            "deploy" or "deployment" => ("", name),
            _ => throw ParsedArgs.Usage($"{verb} works on Services: give <name>, svc/<name>, service/<name>, deploy/<name> or deployment/<name>, not '{arg}'"),
        };
    }
}
