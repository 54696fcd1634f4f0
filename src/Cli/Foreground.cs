using System.Runtime.InteropServices;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>
/// How every `kt` verb runs: start a session, print what it holds, stay in the foreground until Ctrl+C, SIGTERM or
/// SIGHUP (or the session dies), then stop it, which restores everything it changed. A stop after Ctrl+C waits for
/// what the session gave back to be ready again (scale mode's pods, up to RecoverWaitTime). SIGTERM, SIGHUP or a
/// second Ctrl+C still undo everything but no longer wait: a supervisor that sent SIGTERM kills soon after, a closed
/// terminal's process has seconds, and the shadow must be gone by then.
/// </summary>
internal static class Foreground
{
    public static async Task<int> RunAsync(Func<IKtOutput, CancellationToken, Task<Session>> start, TextWriter stdout, TextWriter stderr, bool debug)
    {
        using var stop = new CancellationTokenSource();
        using var stopped = new ManualResetEventSlim();
        var hurry = 0;
        void Hurry()
        {
            Volatile.Write(ref hurry, 1);
            // Every session of this process, the one still starting (its undo may be waiting for pods) included.
            foreach (var s in SessionRegistry.Default.List()) s.MarkExiting();
        }
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            if (stop.IsCancellationRequested) Hurry();
            stop.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        Action<PosixSignalContext> hurried = c =>
        {
            c.Cancel = true;
            Hurry();
            stop.Cancel();
            // On Windows these are the console's close and the system's shutdown: the process ends as soon as this handler
            // returns (and .NET 10 raises no ProcessExit for them), within about 5 s in any case. So wait here for the stop.
            if (OperatingSystem.IsWindows()) stopped.Wait(TimeSpan.FromSeconds(4.5));
        };
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, hurried);
        // SIGHUP: the terminal was closed (on Windows, the console window). kt started with nohup keeps running: .NET
        // leaves an inherited ignore in place. Writes to a closed terminal fail, and must not keep the stop from running.
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, hurried);
        stdout = new QuietWhenGone(stdout);
        stderr = new QuietWhenGone(stderr);
        var output = new ConsoleOutput(stderr, debug);
        try
        {
            Session started;
            try
            {
                started = await start(output, stop.Token).ConfigureAwait(false);
            }
            catch (KtException e)
            {
                await stderr.WriteLineAsync($"kt: {e.Message} ({e.ErrorId})").ConfigureAwait(false);
                return 1;
            }
            catch (OperationCanceledException)
            {
                await stderr.WriteLineAsync("kt: interrupted; everything created so far was removed").ConfigureAwait(false);
                return 130;
            }

            // A dropped link and its recovery are worth a line each: the session keeps running meanwhile.
            started.StateChanged += (_, e) =>
            {
                if (e.Session.State == SessionState.Reconnecting)
                    output.Warning($"the connection to the cluster dropped ({e.Session.LastError}); reconnecting");
                else if (e.Session.State == SessionState.Running && e.PreviousState == SessionState.Reconnecting)
                    output.Verbose("Reconnected.");
            };
            await PrintAsync(started.Snapshot(), stdout).ConfigureAwait(false);
            await stdout.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                await started.Completion.WaitAsync(stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C or SIGTERM: stop below.
            }
            await stderr.WriteLineAsync(Volatile.Read(ref hurry) != 0 ? "Stopping and restoring, without waiting for pods ..."
                : stop.IsCancellationRequested ? "Stopping and restoring (Ctrl+C again: do not wait for pods) ..." : "Stopping and restoring ...").ConfigureAwait(false);
            // A signal that came before the session was registered found nothing to hurry.
            if (Volatile.Read(ref hurry) != 0) started.MarkExiting();
            await started.StopAsync(output, CancellationToken.None).ConfigureAwait(false);
            var end = started.Snapshot();
            if (end.LastError is not null && (end.State == SessionState.Failed || end.LastErrorId == "SessionRestoreFailed"))
            {
                await stderr.WriteLineAsync($"kt: {end.LastError}" + (end.LastErrorId is null ? "" : $" ({end.LastErrorId})")).ConfigureAwait(false);
                return 1;
            }
            await stderr.WriteLineAsync("Stopped; everything was restored.").ConfigureAwait(false);
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            stopped.Set();
        }
    }

    /// <summary>A writer that drops what it cannot write: after SIGHUP every write to the terminal fails with EIO.</summary>
    private sealed class QuietWhenGone(TextWriter inner) : TextWriter
    {
        public override Encoding Encoding => inner.Encoding;

        public override void Write(char value) => Try(() => inner.Write(value));

        public override void Write(string? value) => Try(() => inner.Write(value));

        public override void WriteLine(string? value) => Try(() => inner.WriteLine(value));

        public override void Flush() => Try(inner.Flush);

        public override Task WriteLineAsync(string? value)
        {
            WriteLine(value);
            return Task.CompletedTask;
        }

        public override Task FlushAsync(CancellationToken cancellationToken)
        {
            Flush();
            return Task.CompletedTask;
        }

        private static void Try(Action write)
        {
            try
            {
                write();
            }
            catch (IOException)
            {
            }
        }
    }

    internal static async Task PrintAsync(SessionSnapshot s, TextWriter w)
    {
        await w.WriteLineAsync($"{s.Kind} session {s.Id} is {s.State}: {s.Namespace}/{s.Target}" + (s.Mode is null ? "" : $" ({s.Mode})")).ConfigureAwait(false);
        foreach (var r in s.Resources) await w.WriteLineAsync($"  {r.Action,-8} {r.Kind} {r.Name}").ConfigureAwait(false);
        foreach (var p in s.LocalPorts) await w.WriteLineAsync($"  listening {p}").ConfigureAwait(false);
        // Exchange: the Service's other ports, relayed to its pods or cut (the exposed ones are the lines above).
        foreach (var p in s.Ports.Except(s.LocalPorts, StringComparer.Ordinal)) await w.WriteLineAsync($"  port      {p}").ConfigureAwait(false);
        foreach (var r in s.Routes) await w.WriteLineAsync($"  route     {r}").ConfigureAwait(false);
        if (s.DnsSuffixes.Count > 0) await w.WriteLineAsync($"  dns       {string.Join(", ", s.DnsSuffixes)}").ConfigureAwait(false);
        if (s.MeshHeader is not null)
        {
            await w.WriteLineAsync(s.Mode == "manual"
                ? $"  mesh      label {s.MeshHeader}={s.MeshVersion} (route it with your service mesh)"
                : $"  mesh      requests with header '{s.MeshHeader}: {s.MeshVersion}' come here").ConfigureAwait(false);
        }
        await w.WriteLineAsync("Press Ctrl+C to stop and restore everything.").ConfigureAwait(false);
    }
}
