using System.Globalization;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// Exchange: everything that reaches a Service goes to local ports (reference/kt-connect.md §2.3, DESIGN.md §2–3).
/// What can be refused is checked before anything changes (Service, ports, another exchange); every cluster change is
/// journalled before it is made and registered with the session's undo stack right as it is made, so a stop, Ctrl+C,
/// SIGTERM or a failure half-way restores the Service, the Deployment and deletes the shadow.
/// </summary>
public sealed class ExchangeWorker(KubeClient client, string ns, ExchangeOptions options) : ClusterWorker<ExchangeOptions>(client, ns, options)
{
    /// <summary>The pods the Service selects when not exchanged (a redeploy may change it): where relayed ports go.</summary>
    private volatile IReadOnlyDictionary<string, string>? _originalSelector;

    private string ServiceKey => _namespace + "/" + _options.Service;

    private protected override async Task RunAsync(SessionContext context, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var journal = _options.JournalOrDefault();
        var sessionId = context.JournalId;

        // Checks that change nothing (the namespace was checked by ClusterWorker).
        var (service, given) = await ServiceTargets.ResolveAsync(_client, _namespace, _options.Service, _options.Deployment, output, "exchanging",
            cancellationToken).ConfigureAwait(false);
        _options = _options with { Service = service.Metadata.Name!, Deployment = null };
        if (service.Spec?.Selector is not { Count: > 0 })
            throw new KtException("ServiceHasNoSelector", KtErrorCategory.InvalidOperation,
                $"Service '{ServiceKey}' has no selector (its endpoints are managed by hand), so its traffic cannot be exchanged.", null, _options.Service);
        await ExchangeHolders.ThrowIfHeldAsync(_client, service, cancellationToken).ConfigureAwait(false);
        if (_options.Mode == ExchangeMode.Selector) await ExchangeHolders.ThrowIfMeshedManuallyAsync(_client, service, cancellationToken).ConfigureAwait(false);
        var pods = await _client.Pods.ListAsync(_namespace, new ListOptions { LabelSelector = KtConventions.SelectorQuery(service.Spec.Selector) }, cancellationToken)
            .ConfigureAwait(false);
        var named = NamedContainerPorts(pods.Items.Select(p => p.Spec));
        var mappings = PortMapper.Map(service, _options.Ports, named);
        var (relayed, _) = PlanUncovered(context, service, mappings, named);
        Deployment? deployment = null;
        if (_options.Mode == ExchangeMode.Scale) deployment = given ?? await FindDeploymentAsync(service, cancellationToken).ConfigureAwait(false);
        await RemoteForwards.CheckLocalPortsAsync(mappings, _options.SkipPortChecking, output, cancellationToken).ConfigureAwait(false);

        if (_options.Mode == ExchangeMode.Selector)
            await StartSelectorAsync(context, journal, sessionId, service, mappings, relayed, cancellationToken).ConfigureAwait(false);
        else
            await StartScaleAsync(context, journal, sessionId, service, deployment!, mappings, cancellationToken).ConfigureAwait(false);
        output.Progress("Exchanging", "Exchanged", 100, completed: true);
    }

    /// <summary>
    /// The Service's ports no <c>--expose</c> takes, decided before anything changes: selector mode relays each TCP port
    /// with a known targetPort to the original pods; the rest (every one in scale mode, whose pods are scaled away) would be
    /// cut, which is refused with <c>ExchangePortsUncovered</c> unless <see cref="ExchangeOptions.AllowPartial"/>. Every port's
    /// fate goes to the session (<see cref="SessionSnapshot.Ports"/>).
    /// </summary>
    private (IReadOnlyList<UncoveredPort> Relayed, IReadOnlyList<UncoveredPort> Cut) PlanUncovered(SessionContext context, Service service,
        IReadOnlyList<PortMapping> mappings, IReadOnlyDictionary<string, int> named)
    {
        var uncovered = PortMapper.Uncovered(service, mappings, named);
        List<UncoveredPort> relayed = _options.Mode == ExchangeMode.Selector ? [.. uncovered.Where(u => u.CanRelay)] : [];
        var cut = uncovered.Where(u => !relayed.Contains(u)).ToList();
        if (cut.Count > 0 && !_options.AllowPartial)
            throw new KtException("ExchangePortsUncovered", KtErrorCategory.InvalidOperation,
                $"Exchanging {string.Join(", ", mappings.Select(m => m.ServicePort))} of Service '{ServiceKey}' would cut port(s) " +
                $"{string.Join("; ", cut.Select(u => u.Label + " (" + u.Reason + ")"))} off from its pods. Expose them too (--expose local:port, " +
                "-Port), or pass --allowPartial (-AllowPartial) to have them refused while exchanged.", null, _options.Service);
        var selector = service.Spec!.Selector!;
        foreach (var m in mappings) context.AddPort(m.Describe(_options.Service));
        foreach (var u in relayed)
        {
            context.AddPort(u.DescribeRelayed(_options.Service, selector));
            context.Output.Verbose($"Service {ServiceKey} port {u.Label} is not exposed: the shadow relays it to the original pods ({KtConventions.SelectorQuery(selector)}).");
        }
        foreach (var u in cut)
        {
            context.AddPort(u.DescribeCut(_options.Service));
            context.Output.Warning($"Service {ServiceKey} port {u.Label} is not exposed and is refused while exchanged ({u.Reason}; --allowPartial).");
        }
        return (relayed, cut);
    }

    private async Task StartSelectorAsync(SessionContext context, ChangeJournal journal, string sessionId, Service service,
        IReadOnlyList<PortMapping> mappings, IReadOnlyList<UncoveredPort> relayed, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var unlock = await LockServiceAsync(context, journal, sessionId, _options.Service, "Exchanging", cancellationToken).ConfigureAwait(false);

        // Under the lock: nobody else may have exchanged it since the first look.
        service = await GetServiceAsync(cancellationToken).ConfigureAwait(false);
        await ExchangeHolders.ThrowIfHeldAsync(_client, service, cancellationToken).ConfigureAwait(false);
        await ExchangeHolders.ThrowIfMeshedManuallyAsync(_client, service, cancellationToken).ConfigureAwait(false);
        var original = new Dictionary<string, string>(service.Spec!.Selector!, StringComparer.Ordinal);
        _originalSelector = original;

        var target = KtConventions.NewTarget();
        ShadowPodSpec? spec = null;
        // Every shadow (the first, and a new one after a loss) has the same kt-target, so the selector we apply never changes.
        var guard = new ShadowGuard(context, _client, _namespace, $"the exchange of Service {ServiceKey}", sameName: false, async (ctx, generation, ct) =>
        {
            var c = await ShadowSetup.StartAsync(ctx, _client, _options, key => spec = ShadowSpec(key, _options.Service, target,
                [new(KtConventions.ConfigService, _options.Service)], null, ShadowPorts(service, mappings, relayed), sessionId), ct).ConfigureAwait(false);
            await RemoteForwards.StartAsync(ctx, c.Link, mappings, _options.Service, announce: generation == 0, ct).ConfigureAwait(false);
            foreach (var u in relayed)
                await new PodRelay(_client, _namespace, () => _originalSelector ?? original, u.TargetPort!.Value, ctx.Output).StartAsync(ctx, c.Link, ct)
                    .ConfigureAwait(false);
            return c;
        });
        var connection = await guard.StartAsync(cancellationToken).ConfigureAwait(false);

        // Point the Service at the shadow only. The original selector goes into kt-selector in the same
        // resourceVersion-checked update, so the Service is never changed without its record.
        var ours = spec!.SelectorLabels();
        var selectorEntries = new List<JournalEntry>();
        selectorEntries.Add(await ClusterJournal.RecordAsync(journal, Change(KtObjectKind.Service, _options.Service, ClusterChangeKind.SelectorChanged) with
        {
            OriginalSelector = original,
            Target = target,
        }, sessionId, cancellationToken).ConfigureAwait(false));
        var watchState = new SelectorWatchState(ours);
        context.Defer($"restore the selector of Service {ServiceKey}", async ct =>
        {
            watchState.Stopped = true;
            await guard.StopRecoveryAsync().ConfigureAwait(false);
            await LetGoOfServiceAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                await new StaleResources(_client).RestoreServiceAsync(_namespace, _options.Service, cancellationToken: ct).ConfigureAwait(false);
            }
            catch (KubeNotFoundException)
            {
                context.Output.Warning($"Service {ServiceKey} no longer exists: there is no selector to restore.");
            }
            foreach (var e in selectorEntries) await journal.CompleteAsync(e, ct).ConfigureAwait(false);
        });
        await _client.Services.UpdateWithRetryAsync(_options.Service, svc => ApplySelector(svc, ours, original), _namespace, cancellationToken)
            .ConfigureAwait(false);
        context.AddResource("Service", ServiceKey, "Selector changed");
        output.Verbose($"Service {ServiceKey} now selects only the shadow {connection.PodName} (original selector {KtConventions.FormatSelector(original)} kept in kt-selector).");

        // A redeploy that puts the selector back is undone; a deleted Service ends the session.
        var watcher = _client.Services.CreateWatcher(_namespace, new ListOptions { FieldSelector = "metadata.name=" + _options.Service },
            onEvent: (ev, _) => OnServiceEventAsync(context, journal, sessionId, watchState, selectorEntries, ev));
        watcher.Start();
        ReportWatchFailure(context, watcher.Completion, $"Service {ServiceKey}");
        context.Defer($"stop watching Service {ServiceKey}", _ => watcher.DisposeAsync().AsTask());

        // A lost shadow: the Service selects its own pods at once, a new shadow starts, and the Service is taken again.
        guard.OnLost = async ct =>
        {
            await HoldServiceAsync(context.Output, ct).ConfigureAwait(false);
            await GiveBackSelectorAsync(context.Output, watchState, ct).ConfigureAwait(false);
        };
        guard.OnRestored = async (c, ct) =>
        {
            await _client.Services.UpdateWithRetryAsync(_options.Service, (current, t) => ReapplyAsync(journal, sessionId, watchState, selectorEntries, current, t),
                _namespace, ct).ConfigureAwait(false);
            await LetGoOfServiceAsync(ct).ConfigureAwait(false);
            watchState.Suspended = false;
            context.Output.Verbose($"Service {ServiceKey} selects the new shadow {c.PodName} again.");
        };
        guard.Arm();
        await unlock(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// While a lost shadow is replaced, the Service is back on its pods and no shadow says who holds it: the kt-lock does,
    /// so that a `kt recover` or `kt clean` from elsewhere leaves it alone and another laptop's exchange waits, instead of
    /// taking the Service for the two sessions to take from each other. A lock that cannot be had (another laptop is
    /// setting up) is said and the replacement goes on; one left by a crash expires as any kt-lock does.
    /// </summary>
    private async Task HoldServiceAsync(IKtOutput output, CancellationToken cancellationToken)
    {
        // A replacement that failed and tries again is still under the lock it took.
        if (Volatile.Read(ref _replacementLock) is not null) return;
        try
        {
            var held = await ServiceLock.AcquireAsync(_client, _namespace, _options.Service, attempts: 3, retryDelay: TimeSpan.FromSeconds(1),
                cancellationToken: cancellationToken).ConfigureAwait(false);
            // Held until the new shadow runs, which may take longer than a lock lives.
            held.KeepRenewing(interval: _options.LockRenewInterval);
            if (Interlocked.Exchange(ref _replacementLock, held) is { } stale) await stale.ReleaseAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KubeNotFoundException)
        {
            // The Service's own watch ends the session.
        }
        catch (KtException e)
        {
            output.Warning($"Could not lock Service {ServiceKey} while its shadow is replaced ({e.Message}); until the new shadow runs, " +
                "a recover or exchange from elsewhere may take it.");
        }
    }

    private async Task LetGoOfServiceAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _replacementLock, null) is { } held) await held.ReleaseAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The kt-lock held while a lost shadow is replaced.</summary>
    private ServiceLock? _replacementLock;

    /// <summary>The shadow is gone: the Service selects the recorded original pods again (kt-selector stays: the Service is still held).</summary>
    private async Task GiveBackSelectorAsync(IKtOutput output, SelectorWatchState state, CancellationToken cancellationToken)
    {
        state.Suspended = true;
        var changed = false;
        try
        {
            await _client.Services.UpdateWithRetryAsync(_options.Service, svc =>
            {
                changed = false;
                if (state.Stopped || svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is not { } recorded) return false;
                var original = KtConventions.ParseSelector(recorded, svc.Key);
                if (SameSelector(svc.Spec?.Selector, original)) return false;
                svc.Spec ??= new ServiceSpec();
                svc.Spec.Selector = new Dictionary<string, string>(original, StringComparer.Ordinal);
                return changed = true;
            }, _namespace, cancellationToken).ConfigureAwait(false);
            if (changed) output.Warning($"Service {ServiceKey} selects its original pods again until the new shadow runs.");
        }
        catch (KubeNotFoundException)
        {
            // The Service's own watch fails the session.
        }
    }

    private async Task StartScaleAsync(SessionContext context, ChangeJournal journal, string sessionId, Service service, Deployment deployment,
        IReadOnlyList<PortMapping> mappings, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var unlock = await LockServiceAsync(context, journal, sessionId, _options.Service, "Exchanging", cancellationToken).ConfigureAwait(false);
        // Under the lock: nobody else may have exchanged it (in either mode) since the first look.
        await ExchangeHolders.ThrowIfHeldAsync(_client, await GetServiceAsync(cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        var name = deployment.Metadata.Name!;
        var replicas = deployment.Spec?.Replicas ?? 1;
        // The shadow carries the pods' labels (the Deployment's matchLabels, and whatever the Service selects), so the
        // Service selects it as it selected them; never pod-template-hash, or the ReplicaSet would adopt it.
        var labels = new Dictionary<string, string>(deployment.Spec?.Selector?.MatchLabels ?? [], StringComparer.Ordinal);
        foreach (var (k, v) in service.Spec!.Selector!) labels[k] = v;
        labels.Remove("pod-template-hash");
        var watchState = new ScaleWatchState { Replicas = replicas };
        var guard = new ShadowGuard(context, _client, _namespace, $"the exchange of Service {ServiceKey}", sameName: false, async (ctx, generation, ct) =>
        {
            var c = await ShadowSetup.StartAsync(ctx, _client, _options, key => ShadowSpec(key, name, null,
                [
                    new(KtConventions.ConfigApp, name),
                    // A replacement shadow carries the count the Deployment gets back now, for a clean from another machine.
                    new(KtConventions.ConfigReplicas, watchState.Replicas.ToString(CultureInfo.InvariantCulture)),
                    new(KtConventions.ConfigService, _options.Service),
                ], labels, ShadowPorts(service, mappings), sessionId), ct).ConfigureAwait(false);
            await RemoteForwards.StartAsync(ctx, c.Link, mappings, _options.Service, announce: generation == 0, ct).ConfigureAwait(false);
            return c;
        });
        var connection = await guard.StartAsync(cancellationToken).ConfigureAwait(false);

        watchState.Entry = await ClusterJournal.RecordAsync(journal, Change(KtObjectKind.Deployment, name, ClusterChangeKind.Scaled) with
        {
            OriginalReplicas = replicas,
        }, sessionId, cancellationToken).ConfigureAwait(false);
        (watchState.Journal, watchState.SessionId, watchState.Guard) = (journal, sessionId, guard);
        // Two steps, the wait registered first so that it runs after the scale-back (undo runs last first) and before the
        // shadow goes: the Service is never left empty unnoticed. The wait has the time the user gave it, and none at exit.
        context.Defer($"wait for Deployment {_namespace}/{name} to be ready", ct => watchState.ScaledBack
            ? WaitReadyAsync(context, name, watchState.Replicas, ct)
            : Task.CompletedTask, _options.RecoverWaitTime + TimeSpan.FromSeconds(10));
        context.Defer($"scale Deployment {_namespace}/{name} back", async ct =>
        {
            watchState.Stopped = true;
            await guard.StopRecoveryAsync().ConfigureAwait(false);
            await LetGoOfServiceAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                output.Progress("Restoring", $"Scaling Deployment {_namespace}/{name} back to {watchState.Replicas}");
                await _client.Deployments.SetReplicasAsync(name, watchState.Replicas, _namespace, ct).ConfigureAwait(false);
                watchState.ScaledBack = true;
            }
            catch (KubeNotFoundException)
            {
                context.Output.Warning($"Deployment {_namespace}/{name} no longer exists: there is nothing to scale back.");
            }
            // After a new count's entry, if one is being written: it is the one to complete.
            await watchState.Journaling.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                await journal.CompleteAsync(watchState.Entry, ct).ConfigureAwait(false);
            }
            finally
            {
                watchState.Journaling.Release();
            }
        });
        output.Progress("Exchanging", $"Scaling Deployment {_namespace}/{name} to 0");
        await _client.Deployments.SetReplicasAsync(name, 0, _namespace, cancellationToken).ConfigureAwait(false);
        context.AddResource("Deployment", $"{_namespace}/{name}", $"Scaled {replicas}->0");
        output.Verbose($"Deployment {_namespace}/{name} scaled from {replicas} to 0; the shadow {connection.PodName} carries its pod labels.");

        // A redeploy or someone's `kubectl scale` would put the original pods back next to the shadow: scale to 0 again.
        var watcher = _client.Deployments.CreateWatcher(_namespace, new ListOptions { FieldSelector = "metadata.name=" + name },
            onEvent: (ev, _) => OnDeploymentEventAsync(context, watchState, name, ev));
        watcher.Start();
        ReportWatchFailure(context, watcher.Completion, $"Deployment {_namespace}/{name}");
        context.Defer($"stop watching Deployment {_namespace}/{name}", _ => watcher.DisposeAsync().AsTask());

        // A lost shadow: the Deployment is scaled back at once, a new shadow starts, and the Deployment goes to 0 again.
        guard.OnLost = async ct =>
        {
            watchState.Suspended = true;
            if (watchState.Stopped) return;
            await HoldServiceAsync(context.Output, ct).ConfigureAwait(false);
            try
            {
                await _client.Deployments.SetReplicasAsync(name, watchState.Replicas, _namespace, ct).ConfigureAwait(false);
                context.Output.Warning($"Deployment {_namespace}/{name} is scaled back to {watchState.Replicas} until the new shadow runs.");
            }
            catch (KubeNotFoundException)
            {
                context.Output.Warning($"Deployment {_namespace}/{name} no longer exists: there is nothing to scale back.");
            }
        };
        guard.OnRestored = async (c, ct) =>
        {
            if (watchState.Stopped) return;
            await _client.Deployments.SetReplicasAsync(name, 0, _namespace, ct).ConfigureAwait(false);
            await LetGoOfServiceAsync(ct).ConfigureAwait(false);
            watchState.Suspended = false;
            context.Output.Verbose($"Deployment {_namespace}/{name} scaled to 0 again; the new shadow {c.PodName} carries its pod labels.");
        };
        guard.Arm();
        await unlock(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A watch that ends for good (forbidden, a failing handler) is said, not lost: the exchange still works without it.</summary>
    internal static void ReportWatchFailure(SessionContext context, Task completion, string what) =>
        completion.ContinueWith(t =>
        {
            if (t.Exception?.GetBaseException() is { } e && !context.Stopping.IsCancellationRequested)
                context.Output.Warning($"Stopped watching {what} ({e.Message}); outside changes to it are no longer re-applied.");
        }, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private async ValueTask OnDeploymentEventAsync(SessionContext context, ScaleWatchState state, string name, WatchEvent<Deployment> ev)
    {
        if (state.Stopped || state.Suspended || context.Stopping.IsCancellationRequested) return;
        if (ev.Type == WatchEventType.Deleted)
        {
            context.Output.Warning($"Deployment {_namespace}/{name} was deleted while its Service was exchanged; there is nothing to scale back when the session stops.");
            return;
        }
        if (ev.Type is not (WatchEventType.Added or WatchEventType.Modified) || ev.Object?.Spec?.Replicas is not { } current || current == 0) return;
        // Their count is what the Deployment gets back at the end, not the one it had at the start.
        state.Replicas = current;
        context.Output.Warning($"Deployment {_namespace}/{name} was scaled to {current} by someone else (e.g. a redeploy); scaling it to 0 again, " +
            $"and back to {current} when the session stops.");
        try
        {
            await RememberCountAsync(context, state, name, current).ConfigureAwait(false);
            await Task.Delay(_options.ReapplyDelay, context.Stopping).ConfigureAwait(false);
            if (state.Stopped || state.Suspended) return;
            await _client.Deployments.SetReplicasAsync(name, 0, _namespace, context.Stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.Stopping.IsCancellationRequested)
        {
        }
        catch (KubeNotFoundException)
        {
            // The Deleted event follows.
        }
        catch (KtException e)
        {
            context.Output.Warning($"Could not scale Deployment {_namespace}/{name} to 0 again: {e.Message}");
        }
    }

    /// <summary>
    /// Writes the new count where a crash's undo reads it: a journal entry that replaces the one of the start (written
    /// first, so that a crash between the two still finds one), and the shadow's kt-config, which a clean from another
    /// machine reads.
    /// </summary>
    private async Task RememberCountAsync(SessionContext context, ScaleWatchState state, string name, int count)
    {
        try
        {
            await WriteCountAsync(context, state, name, count).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KtException or IOException or UnauthorizedAccessException)
        {
            context.Output.Warning($"Could not record the count {count} for Deployment {_namespace}/{name} where a crash's undo reads it: {e.Message}");
        }
    }

    private async Task WriteCountAsync(SessionContext context, ScaleWatchState state, string name, int count)
    {
        await state.Journaling.WaitAsync(context.Stopping).ConfigureAwait(false);
        try
        {
            if (state.Stopped) return;
            var previous = state.Entry;
            state.Entry = await ClusterJournal.RecordAsync(state.Journal!, Change(KtObjectKind.Deployment, name, ClusterChangeKind.Scaled) with
            {
                OriginalReplicas = count,
            }, state.SessionId, context.Stopping).ConfigureAwait(false);
            await state.Journal!.CompleteAsync(previous, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            state.Journaling.Release();
        }
        if (state.Guard?.CurrentOrDefault is not { } shadow) return;
        try
        {
            await _client.Pods.UpdateWithRetryAsync(shadow.PodName, pod =>
            {
                var config = KtConventions.ParseConfig(pod.Metadata.GetAnnotation(KtConventions.ConfigAnnotation));
                config[KtConventions.ConfigReplicas] = count.ToString(CultureInfo.InvariantCulture);
                pod.Metadata.SetAnnotation(KtConventions.ConfigAnnotation, KtConventions.FormatConfig(config));
                return true;
            }, _namespace, context.Stopping).ConfigureAwait(false);
        }
        catch (KubeNotFoundException)
        {
            // The shadow was lost; its replacement is made with the new count.
        }
    }

    /// <summary>
    /// Scale mode's stop waits for the original pods (bounded by RecoverWaitTime) so the Service is never left empty
    /// unnoticed; at process exit it does not wait.
    /// </summary>
    private async Task WaitReadyAsync(SessionContext context, string name, int replicas, CancellationToken cancellationToken)
    {
        if (replicas == 0) return;
        var output = context.Output;
        var deadline = DateTime.UtcNow + _options.RecoverWaitTime;
        output.Progress("Restoring", $"Waiting for Deployment {_namespace}/{name} to have {replicas} ready replicas");
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, context.Exiting);
        try
        {
            while (true)
            {
                var d = await _client.Deployments.GetAsync(name, _namespace, wait.Token).ConfigureAwait(false);
                if ((d.Status?.ReadyReplicas ?? 0) >= replicas) return;
                if (DateTime.UtcNow >= deadline)
                {
                    output.Warning($"Deployment {_namespace}/{name} was scaled back to {replicas} but has {d.Status?.ReadyReplicas ?? 0} ready replicas after " +
                        $"{_options.RecoverWaitTime.TotalSeconds:0} s; the shadow is removed anyway.");
                    return;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(500), wait.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (wait.IsCancellationRequested)
        {
            // Only a wait: what it waited for was undone already, so running out of time is said, not a failed restore.
            output.Warning($"Deployment {_namespace}/{name} was scaled back to {replicas}; " +
                (context.Exiting.IsCancellationRequested ? "not waiting for its pods to be ready as the process exits." : "stopped waiting for its pods to be ready."));
        }
        catch (KubeNotFoundException)
        {
            output.Warning($"Deployment {_namespace}/{name} was deleted after it was scaled back; there are no pods to wait for.");
        }
    }

    private ShadowPodSpec ShadowSpec(string key, string baseName, string? target, IReadOnlyList<KeyValuePair<string, string>> config,
        IReadOnlyDictionary<string, string>? roleLabels, IReadOnlyList<ShadowPort> ports, string sessionId)
    {
        var annotations = new Dictionary<string, string>(_options.Annotations, StringComparer.Ordinal)
        {
            [ExchangeHolders.HostAnnotation] = Environment.MachineName,
            [ExchangeHolders.SessionAnnotation] = sessionId,
        };
        return _options.ToShadowSpec(KtConventions.ExchangeShadowName(baseName), _namespace, KtConventions.Roles.ShadowExchange, key) with
        {
            Target = target,
            Config = config,
            RoleLabels = roleLabels,
            Ports = ports,
            ExtraAnnotations = annotations,
        };
    }

    internal static bool ApplySelector(Service svc, IReadOnlyDictionary<string, string> ours, IReadOnlyDictionary<string, string> original)
    {
        svc.Spec ??= new ServiceSpec();
        svc.Metadata.Annotations ??= new Dictionary<string, string>(StringComparer.Ordinal);
        var changed = false;
        if (svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is null)
        {
            svc.Metadata.Annotations[KtConventions.SelectorAnnotation] = KtConventions.FormatSelector(original);
            changed = true;
        }
        if (!SameSelector(svc.Spec.Selector, ours))
        {
            svc.Spec.Selector = new Dictionary<string, string>(ours, StringComparer.Ordinal);
            changed = true;
        }
        return changed;
    }

    private async ValueTask OnServiceEventAsync(SessionContext context, ChangeJournal journal, string sessionId, SelectorWatchState state,
        List<JournalEntry> entries, WatchEvent<Service> ev)
    {
        if (state.Stopped || context.Stopping.IsCancellationRequested) return;
        if (ev.Type == WatchEventType.Deleted)
        {
            state.Stopped = true;
            context.Fail(new KtException("ExchangedServiceDeleted", KtErrorCategory.ObjectNotFound,
                $"Service '{ServiceKey}' was deleted while it was exchanged; the exchange ended. Its shadow is removed.", null, _options.Service));
            return;
        }
        if (state.Suspended) return; // the shadow is being replaced: the selector is ours to change
        if (ev.Type is not (WatchEventType.Added or WatchEventType.Modified) || ev.Object is not { } svc) return;
        if (IsOurs(svc, state)) return;
        // An event from before a shadow's replacement may arrive after it: only the Service as it is now counts.
        try
        {
            if (await _client.Services.TryGetAsync(_options.Service, _namespace, context.Stopping).ConfigureAwait(false) is { } now && IsOurs(now, state)) return;
        }
        catch (OperationCanceledException) when (context.Stopping.IsCancellationRequested)
        {
            return;
        }
        catch (KtException)
        {
            // Judge by the event.
        }
        if (state.Suspended) return;
        context.Output.Warning($"Service {ServiceKey} was changed by someone else (selector {KtConventions.FormatSelector(svc.Spec?.Selector ?? [])}, " +
            "e.g. a redeploy); re-applying the exchange.");
        try
        {
            await Task.Delay(_options.ReapplyDelay, context.Stopping).ConfigureAwait(false);
            // The shadow may have been lost meanwhile: its replacement re-applies.
            await _client.Services.UpdateWithRetryAsync(_options.Service, (current, ct) =>
                state.Suspended ? ValueTask.FromResult(false) : ReapplyAsync(journal, sessionId, state, entries, current, ct), _namespace, context.Stopping).ConfigureAwait(false);
            context.Output.Verbose($"Re-applied the exchange selector on Service {ServiceKey}.");
        }
        catch (OperationCanceledException) when (context.Stopping.IsCancellationRequested)
        {
        }
        catch (KubeNotFoundException)
        {
            // The Deleted event follows.
        }
        catch (KtException e)
        {
            context.Output.Warning($"Could not re-apply the exchange on Service {ServiceKey}: {e.Message}");
        }
    }

    /// <summary>
    /// One resourceVersion-checked step that puts our selector back. A redeploy writes the workload's selector (helm and
    /// kubectl apply keep our kt-selector annotation, which they do not manage): that selector is what must come back at the
    /// end, so it is journalled and recorded in kt-selector before it is replaced.
    /// </summary>
    private async ValueTask<bool> ReapplyAsync(ChangeJournal journal, string sessionId, SelectorWatchState state, List<JournalEntry> entries, Service current,
        CancellationToken ct)
    {
        if (state.Stopped) return false;
        var recorded = current.Metadata.GetAnnotation(KtConventions.SelectorAnnotation);
        var selector = current.Spec?.Selector ?? [];
        if (selector.Count > 0 && !SameSelector(selector, state.Ours) && !selector.ContainsKey(KtConventions.RoleLabel)
            && (recorded is null || !SameSelector(selector, KtConventions.ParseSelector(recorded, current.Key))))
        {
            var original = new Dictionary<string, string>(selector, StringComparer.Ordinal);
            _originalSelector = original;
            entries.Add(await ClusterJournal.RecordAsync(journal, Change(KtObjectKind.Service, _options.Service, ClusterChangeKind.SelectorChanged) with
            {
                OriginalSelector = original,
                Target = state.Ours.GetValueOrDefault(KtConventions.TargetLabel),
            }, sessionId, ct).ConfigureAwait(false));
            current.Metadata.Annotations?.Remove(KtConventions.SelectorAnnotation);
            return ApplySelector(current, state.Ours, original);
        }
        if (recorded is null) return false;
        return ApplySelector(current, state.Ours, KtConventions.ParseSelector(recorded, current.Key));
    }

    private Task<Service> GetServiceAsync(CancellationToken cancellationToken) =>
        ServiceTargets.GetServiceAsync(_client, _namespace, _options.Service, cancellationToken);

    /// <summary>Scale mode: the one Deployment whose pods the Service selects (several would leave some serving: refused).</summary>
    private async Task<Deployment> FindDeploymentAsync(Service service, CancellationToken cancellationToken)
    {
        var selector = service.Spec!.Selector!;
        var all = await _client.Deployments.ListAllAsync(_namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
        var matches = all.Items.Where(d => d.Metadata.GetLabel(KtConventions.ControlByLabel) != KtConventions.ControlByValue
            && d.Spec?.Template?.Metadata?.Labels is { } l && selector.All(kv => l.TryGetValue(kv.Key, out var v) && v == kv.Value)).ToList();
        return matches.Count switch
        {
            0 => throw new KtException("DeploymentNotFound", KtErrorCategory.ObjectNotFound,
                $"No Deployment in '{_namespace}' runs the pods Service '{_options.Service}' selects ({KtConventions.FormatSelector(selector)}); " +
                "scale mode needs one. Use --mode selector (-Mode Selector).", null, _options.Service),
            1 => matches[0],
            _ => throw new KtException("SeveralDeploymentsBehindService", KtErrorCategory.InvalidOperation,
                $"Service '{ServiceKey}' selects the pods of several Deployments ({string.Join(", ", matches.Select(d => d.Metadata.Name))}); " +
                "scale mode would leave the others serving. Use --mode selector (-Mode Selector).", null, _options.Service),
        };
    }

    /// <summary>The shadow's container ports: the Service's target ports (named after them as kt-connect does).</summary>
    internal static List<ShadowPort> ShadowPorts(Service service, IReadOnlyList<PortMapping> mappings, IReadOnlyList<UncoveredPort>? relayed = null)
    {
        var ports = new List<ShadowPort>();
        foreach (var u in relayed ?? [])
            ports.Add(u.NamedTarget is { } n ? new ShadowPort(u.TargetPort!.Value, n) : ShadowPort.ForIntTarget(u.TargetPort!.Value));
        foreach (var m in mappings)
        {
            var sp = service.Spec?.Ports?.FirstOrDefault(p => p.Port == m.ServicePort);
            ports.Add(sp?.TargetPort is { StringValue: { } named } ? new ShadowPort(m.TargetPort, named) : ShadowPort.ForIntTarget(m.TargetPort));
        }
        return ports;
    }

    internal static Dictionary<string, int> NamedContainerPorts(IEnumerable<PodSpec?> specs)
    {
        var named = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in specs.SelectMany(s => s?.Containers ?? []))
            foreach (var p in c.Ports ?? [])
                if (p.Name is { Length: > 0 } n) named.TryAdd(n, p.ContainerPort);
        return named;
    }

    internal static bool SameSelector(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string> b) =>
        a is not null && a.Count == b.Count && b.All(kv => a.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private sealed class ScaleWatchState
    {
        public volatile bool Stopped;

        /// <summary>The stop scaled the Deployment back: its pods are waited for.</summary>
        public volatile bool ScaledBack;

        /// <summary>The shadow is being replaced: the Deployment runs its pods meanwhile.</summary>
        public volatile bool Suspended;

        /// <summary>
        /// What the Deployment is given back: its count at the start, or the last one someone set since (a `kubectl scale`,
        /// a redeploy), which the watch takes back to 0 but remembers.
        /// </summary>
        public volatile int Replicas;

        /// <summary>The journal entry of the count to give back; replaced (under <see cref="Journaling"/>) when the count changes.</summary>
        public JournalEntry Entry = null!;

        public SemaphoreSlim Journaling { get; } = new(1, 1);

        public ChangeJournal? Journal;

        public string? SessionId;

        public ShadowGuard? Guard;
    }

    private static bool IsOurs(Service svc, SelectorWatchState state) =>
        SameSelector(svc.Spec?.Selector, state.Ours) && svc.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is not null;

    private sealed class SelectorWatchState(IReadOnlyDictionary<string, string> ours)
    {
        public IReadOnlyDictionary<string, string> Ours { get; } = ours;

        public volatile bool Stopped;

        /// <summary>The shadow is being replaced: the Service selects its own pods meanwhile and the watch leaves it alone.</summary>
        public volatile bool Suspended;
    }
}
