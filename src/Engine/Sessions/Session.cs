namespace KtConnect.Engine.Sessions;

/// <summary>
/// One running piece of KtConnect work (a connect, an exchange, …) inside this process. Owns the
/// lifecycle and the undo stack; the kind-specific <see cref="ISessionWorker"/> does the work.
/// Thread-safe; readers take <see cref="Snapshot"/>s.
/// </summary>
public sealed class Session
{
    private readonly object _gate = new();
    private readonly UndoScope _undo = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _exiting = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<SessionResource> _resources = [];
    private readonly List<string> _localPorts = [];
    private readonly List<string> _ports = [];
    private readonly List<string> _routes = [];
    private readonly List<string> _dnsSuffixes = [];
    private SessionState _state = SessionState.Starting;
    private Task? _stopTask;
    private Exception? _lastError;
    private string? _meshHeader;
    private string? _meshVersion;
    private string? _mode;
    private DateTimeOffset? _endTime;
    private bool _failRequested;

    internal Session(int id, SessionRequest request, IKtOutput output)
    {
        Id = id;
        Request = request;
        _output.Sink = output;
        _mode = request.Mode;
        StartTime = DateTimeOffset.Now;
    }

    public int Id { get; }

    public Guid InstanceId { get; } = Guid.NewGuid();

    /// <summary>The session id this session's journal entries carry.</summary>
    public string JournalId => InstanceId.ToString("N");

    public SessionRequest Request { get; }

    public DateTimeOffset StartTime { get; }

    /// <summary>
    /// Where the session's messages go: a stable forwarder to the current sink, so a listener or loop that keeps it
    /// writes to whoever is attached now (the starting cmdlet, then nobody after <see cref="DetachOutput"/>, then a
    /// stopping cmdlet), never to a caller's queue that is gone.
    /// </summary>
    internal IKtOutput Output => _output;

    private readonly SessionOutput _output = new();

    private sealed class SessionOutput : IKtOutput
    {
        private volatile IKtOutput _sink = NullOutput.Instance;

        public IKtOutput Sink
        {
            get => _sink;
            set => _sink = value ?? NullOutput.Instance;
        }

        public void Verbose(string message) => _sink.Verbose(message);

        public void Warning(string message) => _sink.Warning(message);

        public void Debug(string message) => _sink.Debug(message);

        public void Progress(string activity, string status, int percent = -1, bool completed = false) => _sink.Progress(activity, status, percent, completed);
    }

    /// <summary>Cancelled when the session starts stopping: background loops watch it.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Cancelled when the process is about to end while the session is undone: see <see cref="SessionContext.Exiting"/>.</summary>
    internal CancellationToken Exiting => _exiting.Token;

    /// <summary>
    /// Says that the stop (the one that follows, or the one running) has only an exit's time: at process exit
    /// <see cref="SessionRegistry.ExitTimeout"/>, after `kt`'s SIGTERM whatever its supervisor allows.
    /// </summary>
    internal void MarkExiting() => _ = _exiting.CancelAsync(); // its callbacks run on the pool, not on the exiting thread

    public SessionState State
    {
        get
        {
            lock (_gate) return _state;
        }
    }

    /// <summary>Completes when the session reaches Stopped or Failed (never faults).</summary>
    public Task Completion => _finished.Task;

    public event EventHandler<SessionStateChangedEventArgs>? StateChanged;

    public SessionSnapshot Snapshot()
    {
        lock (_gate)
        {
            return new SessionSnapshot
            {
                Id = Id,
                InstanceId = InstanceId,
                Kind = Request.Kind,
                Namespace = Request.Namespace,
                Context = Request.Context,
                Target = Request.Target,
                State = _state,
                StartTime = StartTime,
                EndTime = _endTime,
                Mode = _mode,
                Resources = [.. _resources],
                LocalPorts = [.. _localPorts],
                Ports = [.. _ports],
                Routes = [.. _routes],
                DnsSuffixes = [.. _dnsSuffixes],
                MeshHeader = _meshHeader,
                MeshVersion = _meshVersion,
                LastError = _lastError?.Message,
                LastErrorId = (_lastError as KtException)?.ErrorId,
            };
        }
    }

    /// <summary>
    /// Stops the session and undoes everything it registered, last change first. Idempotent: concurrent and
    /// later calls wait for the same stop. Undo failures are collected into <see cref="SessionSnapshot.LastError"/>;
    /// every undo is attempted.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => StopAsync(null, cancellationToken);

    /// <summary>Stops, reporting the restore steps to <paramref name="output"/> (the caller that asked for the stop).</summary>
    public Task StopAsync(IKtOutput? output, CancellationToken cancellationToken = default)
    {
        if (output is not null) _output.Sink = output;
        return StopCoreGuardedAsync(cancellationToken);
    }

    /// <summary>After the caller that started the session is gone, its messages go nowhere.</summary>
    public void DetachOutput() => _output.Sink = NullOutput.Instance;

    private Task StopCoreGuardedAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_stopTask is null)
            {
                if (_state is SessionState.Stopped or SessionState.Failed) return Task.CompletedTask;
                if (_state == SessionState.Starting)
                {
                    // StartAsync unwinds and undoes; stopping just asks it to.
                    _stopping.Cancel();
                    return _finished.Task.WaitAsync(cancellationToken);
                }
                _stopTask = StopCoreAsync();
            }
        }
        return _stopTask.WaitAsync(cancellationToken);
    }

    internal async Task StartAsync(ISessionWorker worker, CancellationToken cancellationToken)
    {
        Exception? error = null;
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token))
        {
            try
            {
                await worker.StartAsync(new SessionContext(this), linked.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                error = e;
            }
        }
        if (error is null)
        {
            // A stop that arrived while the worker was finishing wins: the session never shows Running. One that arrives
            // after this decision stops a Running session, on its own path.
            SessionState previous;
            bool running;
            SessionStateChangedEventArgs? args = null;
            lock (_gate)
            {
                previous = _state;
                running = !_stopping.IsCancellationRequested;
                if (running)
                {
                    _state = SessionState.Running;
                    args = new SessionStateChangedEventArgs(Snapshot(), previous);
                }
            }
            if (running)
            {
                if (previous != SessionState.Running) RaiseStateChanged(args);
                return;
            }
            error = new OperationCanceledException("The session was stopped while it was starting.");
        }

        lock (_gate)
        {
            // A background failure (Fail) during the start cancels the worker: the caller gets that cause, not the cancellation.
            if (error is OperationCanceledException && _failRequested && _lastError is { } cause) error = cause;
            _lastError = error is OperationCanceledException ? null : error;
        }
        _stopping.Cancel();
        var undoError = await UndoAllAsync().ConfigureAwait(false);
        Finish(error is OperationCanceledException && undoError is null ? SessionState.Stopped : SessionState.Failed, undoError);
        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    internal void Defer(string description, Func<CancellationToken, Task> undo, TimeSpan? timeout) => _undo.Defer(description, undo, timeout);

    internal void AddResource(SessionResource resource)
    {
        lock (_gate) _resources.Add(resource);
    }

    internal void RemoveResource(string kind, string name)
    {
        lock (_gate) _resources.RemoveAll(r => r.Kind == kind && r.Name == name);
    }

    internal void AddLocalPort(string port)
    {
        lock (_gate) _localPorts.Add(port);
    }

    internal void AddPort(string port)
    {
        lock (_gate) _ports.Add(port);
    }

    internal void AddRoute(string route)
    {
        lock (_gate) _routes.Add(route);
    }

    internal void AddDnsSuffix(string suffix)
    {
        lock (_gate) _dnsSuffixes.Add(suffix);
    }

    internal void SetMesh(string header, string version)
    {
        lock (_gate)
        {
            _meshHeader = header;
            _meshVersion = version;
        }
    }

    internal void SetMode(string mode)
    {
        lock (_gate) _mode = mode;
    }

    internal void ReportReconnecting(Exception cause)
    {
        lock (_gate)
        {
            if (_state != SessionState.Running) return;
            _lastError = cause;
        }
        SetState(SessionState.Reconnecting, onlyFrom: SessionState.Running);
    }

    internal void ReportRecovered() => SetState(SessionState.Running, onlyFrom: SessionState.Reconnecting);

    /// <summary>A background failure the session cannot survive: it is stopped, undone, and ends Failed.</summary>
    internal void Fail(Exception cause)
    {
        lock (_gate)
        {
            if (_state is SessionState.Stopping or SessionState.Stopped or SessionState.Failed) return;
            _lastError = cause;
            _failRequested = true;
        }
        _ = StopAsync();
    }

    private async Task StopCoreAsync()
    {
        SetState(SessionState.Stopping);
        _stopping.Cancel();
        var undoError = await UndoAllAsync().ConfigureAwait(false);
        bool failed;
        lock (_gate) failed = _failRequested;
        Finish(failed ? SessionState.Failed : SessionState.Stopped, undoError);
    }

    /// <summary>Runs every registered undo, last first, each bounded; returns an error describing failures, or null.</summary>
    private async Task<Exception?> UndoAllAsync()
    {
        var failures = await _undo.RunAllAsync(Output, UndoTimeout, Output.Verbose).ConfigureAwait(false);
        return failures.Count == 0 ? null
            : new KtException("SessionRestoreFailed", KtErrorCategory.InvalidOperation,
                "Some changes could not be undone (Clear-KtResource retries them): " + string.Join("; ", failures.Select(f => $"{f.Description}: {f.Error.Message}")),
                failures[0].Error);
    }

    /// <summary>How long one undo step may take before the next is tried.</summary>
    internal static TimeSpan UndoTimeout { get; set; } = TimeSpan.FromSeconds(60);

    private void Finish(SessionState state, Exception? undoError)
    {
        lock (_gate)
        {
            // What ended the session stays in the error an undo failure adds to it (a lost tun device, then a route that
            // could not be removed): the ErrorId says a restore failed, the message says both.
            if (undoError is not null)
            {
                _lastError = _failRequested && _lastError is { } cause && undoError is KtException restore
                    ? new KtException(restore.ErrorId, restore.Category, $"{cause.Message} {restore.Message}", cause, restore.Target)
                    : undoError;
            }
            _endTime = DateTimeOffset.Now;
        }
        // Whatever the undo left in the journal is now for Clear-KtResource (or the next command) to retry.
        ChangeJournal.MarkSessionEnded(JournalId);
        SetState(state);
        _finished.TrySetResult();
    }

    private void SetState(SessionState state, SessionState? onlyFrom = null)
    {
        SessionState previous;
        SessionStateChangedEventArgs args;
        lock (_gate)
        {
            previous = _state;
            if (onlyFrom is { } from && previous != from) return;
            if (previous == state || previous is SessionState.Stopped or SessionState.Failed) return;
            _state = state;
            // The snapshot of this transition, taken with it: a later one cannot show in this event.
            args = new SessionStateChangedEventArgs(Snapshot(), previous);
        }
        RaiseStateChanged(args);
    }

    private void RaiseStateChanged(SessionStateChangedEventArgs? args)
    {
        if (args is not null) RaiseEach(StateChanged, this, args, Output);
    }

    /// <summary>Tells every handler; one that throws is said and skipped, never allowed to stop a stop or its undo.</summary>
    internal static void RaiseEach(EventHandler<SessionStateChangedEventArgs>? handlers, object sender, SessionStateChangedEventArgs args, IKtOutput output)
    {
        if (handlers is null) return;
        foreach (var handler in handlers.GetInvocationList().Cast<EventHandler<SessionStateChangedEventArgs>>())
        {
            try
            {
                handler(sender, args);
            }
            catch (Exception e)
            {
                output.Warning($"A handler of session {args.Session.Id}'s state changes failed: {e.Message}");
            }
        }
    }
}
