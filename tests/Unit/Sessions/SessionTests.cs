using KtConnect.Engine;
using KtConnect.Engine.Sessions;
using KtConnect.Tests.Unit.Common;

namespace KtConnect.Tests.Unit.Sessions;

public sealed class SessionTests
{
    private static readonly SessionRequest Request = new() { Kind = SessionKind.Exchange, Namespace = "dev", Target = "orders", Mode = "selector" };

    /// <summary>A worker scripted by a delegate, recording what its undos did.</summary>
    private sealed class Worker(Func<SessionContext, CancellationToken, Task> start) : ISessionWorker
    {
        public Task StartAsync(SessionContext context, CancellationToken cancellationToken) => start(context, cancellationToken);
    }

    [Fact]
    public async Task A_started_session_is_running_and_stopping_undoes_last_change_first()
    {
        var registry = new SessionRegistry();
        var undone = new List<string>();
        var states = new List<SessionState>();
        registry.SessionStateChanged += (_, e) => { lock (states) states.Add(e.Session.State); };
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.AddResource("Pod", "dev/orders-kt-exchange-abcde", "Created");
            ctx.Defer("delete pod", _ => { undone.Add("pod"); return Task.CompletedTask; });
            ctx.AddResource("Service", "dev/orders", "Changed");
            ctx.Defer("restore selector", _ => { undone.Add("selector"); return Task.CompletedTask; });
            ctx.AddLocalPort("8080 from orders:80");
            return Task.CompletedTask;
        }));

        var running = session.Snapshot();
        Assert.Equal(SessionState.Running, running.State);
        Assert.Equal(1, running.Id);
        Assert.Equal("orders", running.Target);
        Assert.Equal(["Pod", "Service"], running.Resources.Select(r => r.Kind));
        Assert.Equal(["8080 from orders:80"], running.LocalPorts);
        Assert.Same(session, registry.Get(1));

        await session.StopAsync();

        Assert.Equal(["selector", "pod"], undone);
        Assert.Equal(SessionState.Stopped, session.State);
        Assert.True(session.Completion.IsCompleted);
        Assert.NotNull(session.Snapshot().EndTime);
        Assert.Equal([SessionState.Running, SessionState.Stopping, SessionState.Stopped], states);
    }

    /// <summary>
    /// A listener keeps the output it was given at start; after the starting caller's queue is gone (the cmdlet
    /// returned) its messages must go nowhere, not fail the connection, and a later caller that stops gets them.
    /// </summary>
    [Fact]
    public async Task Output_kept_by_a_worker_follows_the_session_not_the_starting_caller()
    {
        var registry = new SessionRegistry();
        IKtOutput? kept = null;
        var starting = new OutputQueue();
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            kept = ctx.Output;
            kept.Verbose("while starting");
            ctx.Defer("undo", _ => { kept.Verbose("while stopping"); return Task.CompletedTask; });
            return Task.CompletedTask;
        }), starting);
        var first = new List<string>();
        starting.Drain(m => first.Add(m.Text));
        session.DetachOutput();
        starting.Dispose();

        kept!.Verbose("connection from 127.0.0.1:50000");

        using var stopping = new OutputQueue();
        await session.StopAsync(stopping);
        var second = new List<string>();
        stopping.Drain(m => second.Add(m.Text));
        Assert.Equal(["while starting"], first);
        Assert.Contains("while stopping", second);
        Assert.DoesNotContain("connection from 127.0.0.1:50000", second);
        Assert.Equal(SessionState.Stopped, session.State);
    }

    private sealed class RecordingHandler : IJournalUndoHandler
    {
        public List<string> Undone { get; } = [];

        public string Kind => "test-change";

        public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
        {
            Undone.Add(entry.Data["what"]);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task What_an_ended_session_could_not_undo_is_orphaned_so_this_same_process_retries_it()
    {
        var dir = Path.Combine(Path.GetTempPath(), "kt-journal-" + Guid.NewGuid().ToString("N"));
        try
        {
            var journal = new ChangeJournal(dir);
            var registry = new SessionRegistry();
            Task<JournalEntry> Record(string what, string? sessionId, CancellationToken ct) =>
                journal.RecordAsync("test-change", new Dictionary<string, string> { ["what"] = what }, what, sessionId, ct);
            var live = await registry.StartAsync(Request with { Target = "payments" }, new Worker((ctx, ct) => Record("live", ctx.JournalId, ct)));
            var session = await registry.StartAsync(Request, new Worker(async (ctx, ct) =>
            {
                await Record("selector of orders", ctx.JournalId, ct);
                ctx.Defer("restore selector", _ => throw new IOException("the API server is unreachable"));
            }));
            await Record("no session", null, CancellationToken.None);
            Assert.DoesNotContain(journal.ReadAll(), ChangeJournal.IsOrphaned);

            await session.StopAsync();

            Assert.Equal("SessionRestoreFailed", session.Snapshot().LastErrorId);
            var handler = new RecordingHandler();
            await journal.UndoAsync([handler]);
            Assert.Equal(["selector of orders"], handler.Undone);
            Assert.Equal(["live", "no session"], journal.ReadAll().Select(e => e.Data["what"]));
            await live.StopAsync();
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_background_failure_during_the_start_reaches_the_caller_as_its_typed_cause_and_the_session_fails()
    {
        var registry = new SessionRegistry();
        var undone = new List<string>();
        var e = await Assert.ThrowsAsync<KtException>(() => registry.StartAsync(Request, new Worker(async (ctx, ct) =>
        {
            ctx.Defer("delete shadow", _ => { undone.Add("shadow"); return Task.CompletedTask; });
            // e.g. the shadow's port-forward link fails while the worker still waits on the cluster
            ctx.Fail(new KtException("ShadowLinkLost", KtErrorCategory.ConnectionError, "the link to the shadow is gone"));
            await Task.Delay(Timeout.Infinite, ct);
        })));
        Assert.Equal("ShadowLinkLost", e.ErrorId);
        Assert.Equal(["shadow"], undone);
        var session = Assert.Single(registry.List());
        Assert.Equal(SessionState.Failed, session.State);
        Assert.Equal("ShadowLinkLost", session.Snapshot().LastErrorId);
    }

    [Fact]
    public async Task A_start_that_fails_halfway_undoes_what_was_done_and_keeps_the_error()
    {
        var registry = new SessionRegistry();
        var undone = new List<string>();
        var e = await Assert.ThrowsAsync<KtException>(() => registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.Defer("delete configmap", _ => { undone.Add("configmap"); return Task.CompletedTask; });
            throw new KtException("ShadowPodImagePullFailed", KtErrorCategory.ResourceBusy, "image not found");
        })));

        Assert.Equal("ShadowPodImagePullFailed", e.ErrorId);
        Assert.Equal(["configmap"], undone);
        var failed = Assert.Single(registry.List()).Snapshot();
        Assert.Equal(SessionState.Failed, failed.State);
        Assert.Equal("image not found", failed.LastError);
        Assert.Equal("ShadowPodImagePullFailed", failed.LastErrorId);
    }

    [Fact]
    public async Task Stopping_while_starting_cancels_the_start_and_ends_stopped()
    {
        var registry = new SessionRegistry();
        var entered = new TaskCompletionSource();
        var undone = 0;
        var start = registry.StartAsync(Request, new Worker(async (ctx, ct) =>
        {
            ctx.Defer("undo", _ => { undone++; return Task.CompletedTask; });
            entered.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
        }));
        await entered.Task;
        var session = Assert.Single(registry.List());

        await session.StopAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start);
        Assert.Equal(SessionState.Stopped, session.State);
        Assert.Equal(1, undone);
    }

    [Fact]
    public async Task Every_undo_is_attempted_and_failures_are_reported()
    {
        var registry = new SessionRegistry();
        var undone = new List<string>();
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.Defer("first", _ => { undone.Add("first"); return Task.CompletedTask; });
            ctx.Defer("second", _ => throw new IOException("api server gone"));
            ctx.Defer("third", _ => { undone.Add("third"); return Task.CompletedTask; });
            return Task.CompletedTask;
        }));

        await session.StopAsync();

        Assert.Equal(["third", "first"], undone);
        var s = session.Snapshot();
        Assert.Equal(SessionState.Stopped, s.State);
        Assert.Equal("SessionRestoreFailed", s.LastErrorId);
        Assert.Contains("second: api server gone", s.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_stops_undo_once()
    {
        var registry = new SessionRegistry();
        var undone = 0;
        var release = new TaskCompletionSource();
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.Defer("slow", async _ => { Interlocked.Increment(ref undone); await release.Task; });
            return Task.CompletedTask;
        }));

        var a = session.StopAsync();
        var b = session.StopAsync();
        Assert.Equal(SessionState.Stopping, session.State);
        release.SetResult();
        await Task.WhenAll(a, b);
        await session.StopAsync();

        Assert.Equal(1, undone);
    }

    [Fact]
    public async Task Background_failure_stops_the_session_as_failed_and_reconnecting_is_visible()
    {
        var registry = new SessionRegistry();
        SessionContext? context = null;
        var undone = 0;
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            context = ctx;
            ctx.Defer("undo", _ => { undone++; return Task.CompletedTask; });
            return Task.CompletedTask;
        }));

        context!.ReportReconnecting(new IOException("port-forward closed"));
        Assert.Equal(SessionState.Reconnecting, session.State);
        Assert.Equal("port-forward closed", session.Snapshot().LastError);
        context.ReportRecovered();
        Assert.Equal(SessionState.Running, session.State);

        context.Fail(new KtException("ShadowPodDeleted", KtErrorCategory.ObjectNotFound, "the shadow pod was deleted"));
        await session.Completion;

        Assert.Equal(SessionState.Failed, session.State);
        Assert.Equal("ShadowPodDeleted", session.Snapshot().LastErrorId);
        Assert.True(context.Stopping.IsCancellationRequested);
        Assert.Equal(1, undone);
    }

    [Fact]
    public async Task Stop_all_stops_every_session_and_finished_ones_can_be_forgotten()
    {
        var registry = new SessionRegistry();
        for (var i = 0; i < 3; i++)
            await registry.StartAsync(Request with { Target = "svc" + i }, new Worker((_, _) => Task.CompletedTask));

        await registry.StopAllAsync();

        Assert.All(registry.List(), s => Assert.Equal(SessionState.Stopped, s.State));
        Assert.Equal([1, 2, 3], registry.List().Select(s => s.Id));
        Assert.Equal(3, registry.RemoveFinished());
        Assert.Empty(registry.List());
    }

    [Fact]
    public async Task A_scoped_context_keeps_its_undo_steps_and_link_events_apart_from_the_session()
    {
        var registry = new SessionRegistry();
        var undone = new List<string>();
        var failures = new List<Exception>();
        var scope = new UndoScope { OnFail = failures.Add };
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.Defer("session step", _ => { undone.Add("session"); return Task.CompletedTask; });
            var scoped = ctx.WithScope(scope);
            scoped.Defer("scoped 1", _ => { undone.Add("scoped 1"); return Task.CompletedTask; });
            scoped.Defer("scoped 2", _ => { undone.Add("scoped 2"); return Task.CompletedTask; });
            scoped.AddResource("Pod", "dev/shadow-a", "Created");
            scoped.Fail(new KtException("X", KtErrorCategory.InvalidOperation, "handled by the scope"));
            return Task.CompletedTask;
        }));
        Assert.Equal(SessionState.Running, session.State);
        Assert.Single(failures);
        Assert.Equal(["Pod"], session.Snapshot().Resources.Select(r => r.Kind));

        // The scope is undone on its own (last first, once); the session goes on.
        Assert.Null(await scope.UndoAsync(NullOutput.Instance, TimeSpan.FromSeconds(5)));
        Assert.Null(await scope.UndoAsync(NullOutput.Instance, TimeSpan.FromSeconds(5)));
        Assert.Equal(["scoped 2", "scoped 1"], undone);
        Assert.Equal(SessionState.Running, session.State);

        await session.StopAsync();
        Assert.Equal(["scoped 2", "scoped 1", "session"], undone);
        Assert.Equal(SessionState.Stopped, session.State);
    }

    [Fact]
    public async Task An_undo_step_that_ignores_its_token_is_left_after_the_timeout_and_the_next_steps_still_run()
    {
        var undone = new List<string>();
        var stuck = new TaskCompletionSource();
        var scope = new UndoScope();
        scope.Defer("first", _ => { undone.Add("first"); return Task.CompletedTask; });
        scope.Defer("stuck", _ => stuck.Task); // never completes, whatever its token says
        scope.Defer("last", _ => { undone.Add("last"); return Task.CompletedTask; });
        var output = new RecordingOutput();

        var error = await scope.UndoAsync(output, TimeSpan.FromMilliseconds(200));

        Assert.Equal(["last", "first"], undone);
        Assert.IsType<TimeoutException>(error);
        Assert.Contains(output.Warnings, w => w.Contains("stuck", StringComparison.Ordinal) && w.Contains("did not finish within 0.2 s", StringComparison.Ordinal));
        Assert.False(stuck.Task.IsCompleted);
    }

    [Fact]
    public async Task A_failure_whose_undo_also_fails_keeps_both_in_the_last_error()
    {
        var registry = new SessionRegistry();
        SessionContext? context = null;
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            context = ctx;
            ctx.Defer("remove routes", _ => throw new IOException("the route table is locked"));
            return Task.CompletedTask;
        }));

        context!.Fail(new KtException("TunDeviceLost", KtErrorCategory.DeviceError, "The tun device kt0 stopped delivering packets."));
        await session.Completion;

        var end = session.Snapshot();
        Assert.Equal(SessionState.Failed, end.State);
        Assert.Equal("SessionRestoreFailed", end.LastErrorId);
        Assert.StartsWith("The tun device kt0 stopped delivering packets. Some changes could not be undone", end.LastError, StringComparison.Ordinal);
        Assert.Contains("the route table is locked", end.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_state_change_handler_that_throws_stops_neither_the_start_nor_the_stop_and_its_undo()
    {
        var registry = new SessionRegistry();
        var seen = new List<SessionState>();
        registry.SessionStateChanged += (_, _) => throw new InvalidOperationException("a script's handler broke");
        registry.SessionStateChanged += (_, e) => { lock (seen) seen.Add(e.Session.State); };
        var undone = false;
        var output = new RecordingOutput();
        var session = await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.Defer("delete pod", _ => { undone = true; return Task.CompletedTask; });
            return Task.CompletedTask;
        }), output);

        await session.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(undone);
        Assert.True(session.Completion.IsCompleted);
        Assert.Equal(SessionState.Stopped, session.State);
        Assert.Contains(output.Warnings, w => w.Contains("a script's handler broke", StringComparison.Ordinal));
        // The handlers after the broken one still hear every change.
        Assert.Equal([SessionState.Running, SessionState.Stopping, SessionState.Stopped], seen);
    }

    [Fact]
    public async Task A_step_registered_with_its_own_timeout_may_take_longer_than_the_usual_bound()
    {
        var scope = new UndoScope();
        var release = new TaskCompletionSource();
        var slowDone = false;
        scope.Defer("slow but bounded by its own time", async ct =>
        {
            await release.Task.WaitAsync(ct);
            slowDone = true;
        }, TimeSpan.FromMinutes(1));
        scope.Defer("releases the slow one only after the usual bound has passed", async ct =>
        {
            await Task.CompletedTask;
            _ = Task.Run(async () =>
            {
                await Task.Delay(TimeSpan.FromMilliseconds(600));
                release.TrySetResult();
            });
        });

        Assert.Null(await scope.UndoAsync(NullOutput.Instance, TimeSpan.FromMilliseconds(200)));
        Assert.True(slowDone);
    }

    [Fact]
    public async Task At_process_exit_a_step_that_only_waits_is_told_to_stop_waiting()
    {
        var registry = new SessionRegistry { ExitTimeout = TimeSpan.FromMinutes(1) };
        var steps = new List<string>();
        await registry.StartAsync(Request, new Worker((ctx, _) =>
        {
            ctx.Defer("delete the shadow", _ => { lock (steps) steps.Add("deleted"); return Task.CompletedTask; });
            ctx.Defer("wait for pods", async ct =>
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, CancellationTokenSource.CreateLinkedTokenSource(ct, ctx.Exiting).Token);
                }
                catch (OperationCanceledException) when (ctx.Exiting.IsCancellationRequested)
                {
                    lock (steps) steps.Add("stopped waiting");
                }
            }, Timeout.InfiniteTimeSpan);
            return Task.CompletedTask;
        }));

        registry.StopAll(); // what ProcessExit runs

        Assert.Equal(["stopped waiting", "deleted"], steps);
        Assert.Equal(SessionState.Stopped, registry.Get(1)!.State);
    }
}

public sealed class SessionWaiterTests
{
    private sealed class Noop : ISessionWorker
    {
        public Task StartAsync(SessionContext context, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static async Task<List<Session>> StartMany(SessionRegistry registry, int n)
    {
        var list = new List<Session>();
        for (var i = 0; i < n; i++)
            list.Add(await registry.StartAsync(new SessionRequest { Kind = SessionKind.Connect, Namespace = "dev", Target = "c" + i }, new Noop()));
        return list;
    }

    [Fact]
    public async Task Waiting_for_all_returns_when_the_last_one_finishes()
    {
        var sessions = await StartMany(new SessionRegistry(), 2);
        var wait = SessionWaiter.WaitAsync(sessions, SessionWaiter.IsFinished);
        await sessions[0].StopAsync();
        Assert.False(wait.IsCompleted);
        await sessions[1].StopAsync();
        Assert.Equal(sessions, await wait);
    }

    [Fact]
    public async Task Waiting_for_any_returns_the_first_and_a_timeout_returns_what_reached_so_far()
    {
        var sessions = await StartMany(new SessionRegistry(), 2);
        var any = SessionWaiter.WaitAsync(sessions, SessionWaiter.IsFinished, any: true);
        await sessions[1].StopAsync();
        Assert.Equal([sessions[1]], await any);

        var timedOut = await SessionWaiter.WaitAsync(sessions, SessionWaiter.IsFinished, timeout: TimeSpan.FromMilliseconds(50));
        Assert.Equal([sessions[1]], timedOut);
    }

    [Fact]
    public async Task A_session_that_finishes_without_reaching_the_state_stops_the_wait()
    {
        var sessions = await StartMany(new SessionRegistry(), 1);
        var wait = SessionWaiter.WaitAsync(sessions, s => s == SessionState.Reconnecting);
        await sessions[0].StopAsync();
        Assert.Empty(await wait);
    }
}
