using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>
/// What every KtConnect cmdlet shares: a cancellation source tied to Ctrl+C, engine output delivered on the
/// pipeline thread, and engine exceptions turned into ErrorRecords with their stable ids.
/// </summary>
public abstract class KtCmdlet : PSCmdlet
{
    private const int ProgressActivityId = 0x4B74; // "Kt"

    private CancellationTokenSource? _cts;

    protected CancellationToken CancellationToken => (_cts ??= new CancellationTokenSource()).Token;

    protected override void BeginProcessing() => _cts ??= new CancellationTokenSource();

    protected override void StopProcessing() => _cts?.Cancel();

    protected override void EndProcessing()
    {
        _cts?.Dispose();
        _cts = null;
    }

    /// <summary>Runs engine work, writing its verbose/warning/debug/progress messages from this thread as they arrive.</summary>
    protected T Run<T>(Func<IKtOutput, CancellationToken, Task<T>> work)
    {
        using var queue = new OutputQueue();
        return queue.Pump(work(queue, CancellationToken), Deliver);
    }

    /// <inheritdoc cref="Run{T}"/>
    protected void Run(Func<IKtOutput, CancellationToken, Task> work)
    {
        using var queue = new OutputQueue();
        queue.Pump(work(queue, CancellationToken), Deliver);
    }

    /// <summary>As <see cref="Run{T}"/>; a typed engine error is written as a non-terminating error about <paramref name="target"/> and false returned.</summary>
    protected bool TryRun<T>(Func<IKtOutput, CancellationToken, Task<T>> work, object? target, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out T result)
    {
        try
        {
            result = Run(work);
            return true;
        }
        catch (KtException e)
        {
            WriteKtError(e, target);
            result = default;
            return false;
        }
    }

    /// <summary>A line for the person at the console (as Write-Host writes it: shown, and capturable with 6>&amp;1).</summary>
    protected void WriteNote(string text) => WriteInformation(new HostInformationMessage { Message = text }, ["PSHOST"]);

    protected void WriteKtError(KtException e, object? target = null) => WriteError(ToErrorRecord(e, target));

    protected void ThrowKtError(KtException e, object? target = null) => ThrowTerminatingError(ToErrorRecord(e, target));

    internal static ErrorRecord ToErrorRecord(KtException e, object? target) =>
        new(e, e.ErrorId, Enum.TryParse<ErrorCategory>(e.Category.ToString(), out var c) ? c : ErrorCategory.NotSpecified, target ?? e.Target);

    private void Deliver(OutputMessage m)
    {
        switch (m.Kind)
        {
            case OutputKind.Verbose: WriteVerbose(m.Text); break;
            case OutputKind.Warning: WriteWarning(m.Text); break;
            case OutputKind.Debug: WriteDebug(m.Text); break;
            case OutputKind.Progress:
                var record = new ProgressRecord(ProgressActivityId, m.Activity ?? "KtConnect", string.IsNullOrEmpty(m.Text) ? " " : m.Text)
                {
                    PercentComplete = m.Percent,
                    RecordType = m.Completed ? ProgressRecordType.Completed : ProgressRecordType.Processing,
                };
                WriteProgress(record);
                break;
        }
    }
}
