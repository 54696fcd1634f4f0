namespace KtConnect.Cli;

/// <summary>Verb dispatch. Verbs are added as the engine grows them; unknown verbs are a one-line error.</summary>
internal static class CommandLine
{
    private static readonly string[] Verbs = ["connect", "exchange", "mesh", "preview", "forward", "clean", "recover"];

    public static Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine($"kt {Program.Version}: join a Kubernetes namespace's network and bring its traffic to local processes");
            stdout.WriteLine();
            stdout.WriteLine("Usage: kt <command> [flags]");
            stdout.WriteLine("Commands: " + string.Join(", ", Verbs));
            stdout.WriteLine("Flags: --version, -v");
            return Task.FromResult(0);
        }
        if (args[0] is "--version" or "-v" or "version")
        {
            stdout.WriteLine(Program.Version);
            return Task.FromResult(0);
        }
        stderr.WriteLine(Array.IndexOf(Verbs, args[0]) >= 0
            ? $"kt: '{args[0]}' is not available in this build yet"
            : $"kt: unknown command '{args[0]}'; run 'kt --help' for the list");
        return Task.FromResult(2);
    }
}
