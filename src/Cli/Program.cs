using System.Reflection;

namespace KtConnect.Cli;

/// <summary>
/// `kt`: kt-connect's verbs over the KtConnect engine. Each verb runs in the foreground until Ctrl+C or
/// SIGTERM and restores what it changed before exiting.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        StopSignals.Reclaim();
        try
        {
            return await CommandLine.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);
        }
        catch (KtConnect.Engine.KtException e)
        {
            await Console.Error.WriteLineAsync($"kt: {e.Message} ({e.ErrorId})").ConfigureAwait(false);
            return 1;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or FormatException)
        {
            // Whatever a check missed is still one line and a failure, not a stack trace.
            await Console.Error.WriteLineAsync($"kt: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    internal static string Version =>
        typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
}
