namespace KtConnect.Bench;

/// <summary>Entry point of bench/run: runs named scenarios and prints one JSON line per figure.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is [SshBenchHost.ForwardHelperFlag, .. var rest]) return await SshBenchHost.RunForwardHelperAsync(rest).ConfigureAwait(false);
        return await Scenarios.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
    }
}
