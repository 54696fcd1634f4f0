using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

/// <summary>What to run in a pod.</summary>
public sealed class ExecRequest
{
    public ExecRequest(string pod, IReadOnlyList<string> command)
    {
        ArgumentException.ThrowIfNullOrEmpty(pod);
        ArgumentNullException.ThrowIfNull(command);
        if (command.Count == 0) throw new ArgumentException("A command is required.", nameof(command));
        Pod = pod;
        Command = command;
    }

    public string Pod { get; }
    public IReadOnlyList<string> Command { get; }

    /// <summary>null means the configuration's namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>null means the pod's only (or default) container.</summary>
    public string? Container { get; init; }

    public bool Stdin { get; init; }
    public bool Stdout { get; init; } = true;
    public bool Stderr { get; init; } = true;
    public bool Tty { get; init; }
}

/// <summary>How an exec ended.</summary>
public class ExecResult
{
    public ExecResult(int exitCode, string protocol, KubeStatus? status)
    {
        ExitCode = exitCode;
        Protocol = protocol;
        Status = status;
    }

    public int ExitCode { get; }

    /// <summary>v5.channel.k8s.io or v4.channel.k8s.io.</summary>
    public string Protocol { get; }

    /// <summary>The status channel's Status (null when the server closed without one, which counts as success).</summary>
    public KubeStatus? Status { get; }
}

/// <summary>An exec's result with its captured output.</summary>
public sealed class ExecOutput : ExecResult
{
    public ExecOutput(ExecResult result, string stdout, string stderr)
        : base((result ?? throw new ArgumentNullException(nameof(result))).ExitCode, result.Protocol, result.Status)
    {
        Stdout = stdout;
        Stderr = stderr;
    }

    public string Stdout { get; }
    public string Stderr { get; }
}

/// <summary>The remotecommand channel numbers and the reading of the status channel.</summary>
public static partial class ExecProtocol
{
    public const string V5 = "v5.channel.k8s.io";
    public const string V4 = "v4.channel.k8s.io";
    public const byte StdinChannel = 0;
    public const byte StdoutChannel = 1;
    public const byte StderrChannel = 2;
    public const byte ErrorChannel = 3;
    public const byte ResizeChannel = 4;

    /// <summary>v5 only: <c>[255, channel]</c> half-closes that channel (stdin EOF).</summary>
    public const byte CloseChannel = 255;

    /// <summary>
    /// The exit code from the status channel's bytes. v4/v5 carry a Status JSON (kind may be absent): Success is 0,
    /// NonZeroExitCode carries the code in causes[reason=ExitCode]. Older protocols carry plain text. Nothing at
    /// all means success (client-go). Any other failure (command not found, container gone) throws
    /// <see cref="KubeExecException"/>.
    /// </summary>
    public static (int ExitCode, KubeStatus? Status) InterpretStatus(ReadOnlySpan<byte> payload, string protocol, string pod)
    {
        if (payload.IsEmpty) return (0, null);
        var status = KubeErrorFactory.TryParseStatus(payload);
        if (status is null)
        {
            var text = Encoding.UTF8.GetString(payload).Trim();
            if (protocol is V4 or V5)
                throw new KubeProtocolException("KubeExecProtocol", $"The exec status channel of pod {pod} is not a Status: {text}", null, pod);
            var m = ExitCodeText().Match(text);
            if (m.Success) return (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), null);
            throw new KubeExecException($"Exec in pod {pod} failed: {text}", null, pod);
        }
        if (status.Status == "Success") return (0, status);
        if (status.Reason == "NonZeroExitCode")
        {
            foreach (var cause in status.Details?.Causes ?? [])
            {
                if (cause.Reason == "ExitCode" && int.TryParse(cause.Message, NumberStyles.Integer, CultureInfo.InvariantCulture, out var code))
                    return (code, status);
            }
            throw new KubeProtocolException("KubeExecProtocol", $"The exec of pod {pod} failed with NonZeroExitCode but no ExitCode cause: {status.Message}", null, pod);
        }
        throw new KubeExecException($"Exec in pod {pod} failed: {status.Message ?? status.Reason}", status, pod);
    }

    [GeneratedRegex(@"exit code (\d+)\s*$")]
    private static partial Regex ExitCodeText();
}
