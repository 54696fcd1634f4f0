using KtConnect.Engine;

namespace KtConnect.Tests.Unit.Common;

/// <summary>An <see cref="IKtOutput"/> that keeps the warnings and progress, for tests that assert on what a user was told.</summary>
internal sealed class RecordingOutput : IKtOutput
{
    public List<(string Activity, string Status, int Percent, bool Completed)> Progress { get; } = [];

    public List<string> Warnings { get; } = [];

    public void Verbose(string message)
    {
    }

    public void Warning(string message)
    {
        lock (Warnings) Warnings.Add(message);
    }

    public void Debug(string message)
    {
    }

    void IKtOutput.Progress(string activity, string status, int percent, bool completed)
    {
        lock (Progress) Progress.Add((activity, status, percent, completed));
    }
}
