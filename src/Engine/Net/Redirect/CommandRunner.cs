namespace KtConnect.Engine.Net.Redirect;

/// <summary>
/// Runs one platform tool (pfctl, route) without a shell. Injected so that the command lists a redirect or a
/// route change issues can be checked by tests on machines where the tool cannot run.
/// </summary>
public delegate Task<ProcessResult> CommandRunner(string fileName, IReadOnlyList<string> arguments, string? standardInput,
    CancellationToken cancellationToken);

public static class CommandRunners
{
    /// <summary>The real runner: <see cref="ProcessRunner.RunAsync"/>.</summary>
    public static readonly CommandRunner Process = (file, args, stdin, ct) => ProcessRunner.RunAsync(file, args, stdin, cancellationToken: ct);
}
