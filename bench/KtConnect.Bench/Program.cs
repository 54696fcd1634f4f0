namespace KtConnect.Bench;

/// <summary>Entry point of bench/run: runs named scenarios and prints one JSON line per figure.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        return await Scenarios.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
    }
}
