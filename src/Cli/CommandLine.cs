namespace KtConnect.Cli;

/// <summary>A `kt` verb: its flags, its one-line help and what it runs.</summary>
internal sealed record Verb(string Name, string Summary, IReadOnlyList<FlagSpec> Flags, Func<ParsedArgs, TextWriter, TextWriter, Task<int>> Run);

/// <summary>Verb dispatch with kt-connect's flag names (camelCase, global flags anywhere).</summary>
internal static class CommandLine
{
    /// <summary>kt-connect's global flags (reference/kt-connect.md §1.2) that KtConnect honours.</summary>
    internal static readonly IReadOnlyList<FlagSpec> GlobalFlags =
    [
        new("namespace", "n", true, "Target namespace (default: the context's namespace, else default)"),
        new("kubeconfig", "c", true, "Path to the kubeconfig file"),
        new("context", null, true, "Kubeconfig context to use"),
        new("image", "i", true, "Shadow pod image"),
        new("imagePullSecret", null, true, "Image pull secret for the shadow pod"),
        new("serviceAccount", null, true, "Service account of the shadow pod", "default"),
        new("nodeSelector", null, true, "Node selector of the shadow pod, k1=v1,k2=v2"),
        new("withLabel", "l", true, "Extra labels on created objects, k1=v1,k2=v2"),
        new("withAnnotation", null, true, "Extra annotations on created objects, k1=v1,k2=v2"),
        new("podCreationTimeout", null, true, "Seconds to wait for the shadow pod to run", "60"),
        new("portForwardTimeout", null, true, "Seconds to wait for a port-forward", "10"),
        new("useShadowDeployment", null, false, "Create the shadow as a Deployment"),
        new("forceUpdate", "f", false, "Always pull the shadow image"),
        new("podQuota", null, true, "Shadow pod CPU and memory, e.g. 0.5c,512m"),
        new("useLocalTime", null, false, "Accepted for ktctl scripts: kt takes cluster time from the API server and never needs a rectifier pod"),
        new("ipVersion", null, true, "Accepted for ktctl scripts (4 or 6): kt serves IPv4 and IPv6 together"),
        new("debug", "d", false, "Print debug output"),
        new("help", "h", false, "Show help"),
        new("version", "v", false, "Show the version"),
    ];

    /// <summary>The verbs this build implements; others are refused with a clear message.</summary>
    internal static readonly IReadOnlyList<Verb> Verbs = [ConnectVerb.Verb, ExchangeVerb.Verb, MeshVerb.Verb, PreviewVerb.Verb, ForwardVerb.Verb, CleanVerb.Verb, RecoverVerb.Verb];

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ParsedArgs parsed;
        try
        {
            parsed = FlagParser.Parse(args, GlobalFlags, name => Verbs.FirstOrDefault(v => v.Name == name)?.Flags);
        }
        catch (KtConnect.Engine.KtException e)
        {
            await stderr.WriteLineAsync("kt: " + e.Message).ConfigureAwait(false);
            return 2;
        }
        if (parsed.Flag("version"))
        {
            // ktctl's --version belongs to kt alone: `kt connect -v` must not start a connect with the flag ignored.
            if (parsed.Verb.Length > 0)
            {
                await stderr.WriteLineAsync($"kt: --version (-v) takes no command, not '{parsed.Verb}' (InvalidCommandLine)").ConfigureAwait(false);
                return 2;
            }
            await stdout.WriteLineAsync(Program.Version).ConfigureAwait(false);
            return 0;
        }
        var verb = Verbs.FirstOrDefault(v => v.Name == parsed.Verb);
        if (verb is null)
        {
            await WriteHelpAsync(stdout).ConfigureAwait(false);
            return parsed.Flag("help") ? 0 : 2;
        }
        if (parsed.Flag("help"))
        {
            await WriteVerbHelpAsync(verb, stdout).ConfigureAwait(false);
            return 0;
        }
        return await verb.Run(parsed, stdout, stderr).ConfigureAwait(false);
    }

    private static async Task WriteHelpAsync(TextWriter w)
    {
        await w.WriteLineAsync($"kt {Program.Version}: join a Kubernetes namespace's network and bring its traffic to local processes").ConfigureAwait(false);
        await w.WriteLineAsync().ConfigureAwait(false);
        await w.WriteLineAsync("Usage: kt <command> [flags]").ConfigureAwait(false);
        await w.WriteLineAsync().ConfigureAwait(false);
        await w.WriteLineAsync("Commands:").ConfigureAwait(false);
        foreach (var v in Verbs) await w.WriteLineAsync($"  {v.Name,-10} {v.Summary}").ConfigureAwait(false);
        await w.WriteLineAsync().ConfigureAwait(false);
        await WriteFlagsAsync("Global flags:", GlobalFlags, w).ConfigureAwait(false);
    }

    private static async Task WriteVerbHelpAsync(Verb verb, TextWriter w)
    {
        await w.WriteLineAsync($"kt {verb.Name}: {verb.Summary}").ConfigureAwait(false);
        await w.WriteLineAsync().ConfigureAwait(false);
        await WriteFlagsAsync("Flags:", verb.Flags, w).ConfigureAwait(false);
        await w.WriteLineAsync().ConfigureAwait(false);
        await WriteFlagsAsync("Global flags:", GlobalFlags, w).ConfigureAwait(false);
    }

    private static async Task WriteFlagsAsync(string title, IReadOnlyList<FlagSpec> flags, TextWriter w)
    {
        await w.WriteLineAsync(title).ConfigureAwait(false);
        foreach (var f in flags)
        {
            var names = (f.Alias is null ? "    " : $"-{f.Alias}, ") + "--" + f.Name + (f.TakesValue ? " value" : "");
            var def = f.Default is null ? "" : $" (default {f.Default})";
            await w.WriteLineAsync($"  {names,-30} {f.Help}{def}").ConfigureAwait(false);
        }
    }
}
