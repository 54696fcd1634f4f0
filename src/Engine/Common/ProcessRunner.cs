using System.Diagnostics;
using System.Text;

namespace KtConnect.Engine;

/// <summary>The outcome of one external command.</summary>
public sealed record ProcessResult(string FileName, IReadOnlyList<string> Arguments, int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;

    public string CommandLine => FileName + (Arguments.Count == 0 ? "" : " " + string.Join(' ', Arguments));

    /// <summary>Throws a <see cref="KtException"/> naming the command and its stderr when it failed.</summary>
    public ProcessResult EnsureSuccess(string errorId = "ExternalCommandFailed")
    {
        if (!Succeeded)
        {
            var detail = StandardError.Trim();
            if (detail.Length == 0) detail = StandardOutput.Trim();
            throw new KtException(errorId, KtErrorCategory.InvalidOperation,
                $"'{CommandLine}' exited with code {ExitCode}: {detail}", target: CommandLine);
        }
        return this;
    }
}

/// <summary>
/// Runs platform tools (ip, nft, resolvectl, route, netsh) with arguments passed as a list, never through a
/// shell. Output is captured; a missing program is a typed NotInstalled error, not a Win32Exception.
/// </summary>
public static class ProcessRunner
{
    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        string? standardInput = null,
        TimeSpan? timeout = null,
        IReadOnlyDictionary<string, string?>? environment = null,
        CancellationToken cancellationToken = default)
    {
        var args = arguments.ToArray();
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = standardInput is not null,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
            {
                if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
            }
        }

        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new KtException("ExternalCommandNotFound", KtErrorCategory.NotInstalled,
                $"Cannot run '{fileName}': {e.Message}. Install it or put it on PATH.", e, fileName);
        }

        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput.AsMemory(), cancellationToken).ConfigureAwait(false);
            process.StandardInput.Close();
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            if (cancellationToken.IsCancellationRequested) throw;
            throw new KtException("ExternalCommandTimeout", KtErrorCategory.OperationTimeout,
                $"'{fileName} {string.Join(' ', args)}' did not finish within {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds:0}s.",
                target: fileName);
        }

        return new ProcessResult(fileName, args, process.ExitCode,
            await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>True when <paramref name="fileName"/> is found on PATH (or is an existing path).</summary>
    public static bool IsOnPath(string fileName)
    {
        if (fileName.Contains(Path.DirectorySeparatorChar)) return File.Exists(fileName);
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        var exts = OperatingSystem.IsWindows() ? new[] { "", ".exe", ".cmd", ".bat" } : new[] { "" };
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var ext in exts)
            {
                if (File.Exists(Path.Combine(dir, fileName + ext))) return true;
            }
        }
        return false;
    }
}
