using System.Runtime.CompilerServices;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// Mesh (reference/kt-connect.md §2.3 "mesh auto" and "mesh manual"): some of a Service's requests to local ports.
/// <para>Auto: a router pod <c>&lt;service&gt;-kt-router</c> (nginx, kt-connect's router image) takes the Service's
/// selector and sends requests whose version header matches to the Service <c>&lt;service&gt;-kt-mesh-&lt;version&gt;</c>
/// (this session's shadow), the rest to the stuntman Service <c>&lt;service&gt;-kt-stuntman</c> (the original selector).
/// The router and stuntman are shared and counted (<c>kt-ref-count</c>): each session adds its version to the router,
/// the last one out restores the Service's selector and deletes them.</para>
/// <para>Manual: a shadow <c>&lt;service&gt;-kt-mesh-&lt;version&gt;</c> carrying all of the Service's selector labels plus
/// <c>kt-role=shadow-mesh</c> and the version mark; the Service is not changed and a service mesh routes to the shadow.</para>
/// Everything is undone on every exit path; after a crash the heartbeats go stale for `kt clean`, and `kt recover`
/// gives the Service back at once.
/// </summary>
public sealed class MeshWorker(KubeClient client, string ns, MeshOptions options) : ClusterWorker<MeshOptions>(client, ns, options)
{
    /// <summary>The router binary in kt-connect's router image.</summary>
    public const string RouterCommand = MeshRouter.Command;

    /// <summary>Ports not exposed that the shadow relays to the original pods.</summary>
    private IReadOnlyList<UncoveredPort> _relayed = [];

    /// <summary>The Service's named targetPorts by number: the router's container ports carry those names.</summary>
    private IReadOnlyDictionary<int, string> _routerPortNames = new Dictionary<int, string>();

    /// <summary>The original pods' selector now (a redeploy may change it): where relayed ports go.</summary>
    private volatile IReadOnlyDictionary<string, string>? _podSelector;

    /// <summary>Objects heart-beaten besides the shadow's own (the mesh Service, router, stuntman).</summary>
    private readonly List<KtObjectRef> _tracked = [];

    /// <summary>True while the start holds the Service's lock (a failing start leaves the router under it).</summary>
    private volatile bool _holdingLock;

    private string ServiceKey => _namespace + "/" + _options.Service;

    private protected override async Task RunAsync(SessionContext context, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var mark = _options.Mark;

        // Checks that change nothing (the namespace was checked by ClusterWorker).
        context.SetMesh(mark.Key, mark.Version);
        var byDeployment = _options.Deployment is { Length: > 0 };
        var (service, _) = await ServiceTargets.ResolveAsync(_client, _namespace, _options.Service, _options.Deployment, output, "meshing",
            cancellationToken).ConfigureAwait(false);
        _options = _options with { Service = service.Metadata.Name!, Deployment = null };
        if (byDeployment) _options.Validate(); // the shadow's name is known only now
        var original = OriginalSelector(service);
        if (original.ContainsKey(mark.Key))
            throw new KtException("InvalidVersionMark", KtErrorCategory.InvalidArgument,
                $"Service '{ServiceKey}' already selects on label '{mark.Key}', so the version mark cannot use that key; choose another with --versionMark <key>:<version>.",
                null, mark.ToString());
        if (!IsMeshedByRouter(service)) await ExchangeHolders.ThrowIfHeldAsync(_client, service, cancellationToken).ConfigureAwait(false);
        else if (_options.Mode == MeshMode.Manual)
            throw new KtException("ServiceAlreadyExchanged", KtErrorCategory.ResourceBusy,
                $"Service '{ServiceKey}' is meshed in auto mode (its selector points at {KtConventions.RouterName(_options.Service)}), so a manual mesh shadow would not be reached; use --mode auto.",
                null, _options.Service);
        var name = KtConventions.MeshShadowName(_options.Service, mark.Version);
        if (await _client.Pods.TryGetAsync(name, _namespace, cancellationToken).ConfigureAwait(false) is not null
            || await _client.Deployments.TryGetAsync(name, _namespace, cancellationToken).ConfigureAwait(false) is not null)
            throw new KtException("MeshVersionInUse", KtErrorCategory.ResourceExists,
                $"'{_namespace}/{name}' already exists: another session meshes Service '{ServiceKey}' with version '{mark.Version}'. Choose another version with --versionMark.",
                null, name);
        var pods = await _client.Pods.ListAsync(_namespace, new ListOptions { LabelSelector = KtConventions.SelectorQuery(original) }, cancellationToken)
            .ConfigureAwait(false);
        var named = ExchangeWorker.NamedContainerPorts(pods.Items.Select(p => p.Spec));
        var mappings = PortMapper.Map(service, _options.Ports, named);
        PlanUncovered(context, service, mappings, named, original);
        await RemoteForwards.CheckLocalPortsAsync(mappings, _options.SkipPortChecking, output, cancellationToken).ConfigureAwait(false);

        if (_options.Mode == MeshMode.Manual)
            await StartManualAsync(context, service, original, mappings, cancellationToken).ConfigureAwait(false);
        else
        {
            ThrowIfNotAllTcp(service);
            _routerPortNames = RouterPortNames(service, named);
            await StartAutoAsync(context, PortMapper.AllPorts(service, named), mappings, cancellationToken).ConfigureAwait(false);
        }
        output.Progress("Meshing", "Meshed", 100, completed: true);
    }

    /// <summary>
    /// The Service's ports no <c>--expose</c> takes: requests of this version (auto) or balanced to the shadow (manual) reach
    /// the shadow on them too, so the shadow relays each TCP one to the original pods (<see cref="PodRelay"/>); what cannot be
    /// relayed (UDP, a named targetPort no pod declares) is said. Every port's fate goes to the session.
    /// </summary>
    private void PlanUncovered(SessionContext context, Service service, IReadOnlyList<PortMapping> mappings, IReadOnlyDictionary<string, int> named,
        IReadOnlyDictionary<string, string> original)
    {
        var uncovered = PortMapper.Uncovered(service, mappings, named);
        _relayed = [.. uncovered.Where(u => u.CanRelay)];
        _podSelector = original;
        foreach (var m in mappings) context.AddPort(m.Describe(_options.Service));
        foreach (var u in uncovered)
        {
            if (u.CanRelay)
            {
                context.AddPort(u.DescribeRelayed(_options.Service, original));
                context.Output.Verbose($"Service {ServiceKey} port {u.Label} is not exposed: the shadow relays it to the original pods.");
            }
            else
            {
                context.AddPort(u.DescribeCut(_options.Service));
                context.Output.Warning($"Service {ServiceKey} port {u.Label} is not exposed and cannot be relayed ({u.Reason}): requests the shadow gets on it are refused.");
            }
        }
    }

    private async Task StartManualAsync(SessionContext context, Service service, IReadOnlyDictionary<string, string> selector,
        IReadOnlyList<PortMapping> mappings, CancellationToken cancellationToken)
    {
        var mark = _options.Mark;
        var labels = new Dictionary<string, string>(selector, StringComparer.Ordinal) { [mark.Key] = mark.Version };
        // A lost shadow simply leaves the Service's endpoints; its replacement (same name and labels) joins them again.
        var guard = await StartShadowAsync(context, service, mappings, labels, null, cancellationToken).ConfigureAwait(false);
        guard.Arm();
        var connection = guard.Current;
        context.Output.Verbose($"Shadow {_namespace}/{connection.PodName} carries {KtConventions.SelectorQuery(labels)}: Service {ServiceKey} now balances across it and " +
            $"the original pods. Route requests to it with your service mesh on label {mark.Key}={mark.Version} (e.g. an Istio subset).");
    }

    private async Task StartAutoAsync(SessionContext context, IReadOnlyList<(int Port, int Target)> ports, IReadOnlyList<PortMapping> mappings,
        CancellationToken cancellationToken)
    {
        var output = context.Output;
        var mark = _options.Mark;
        var sessionId = context.JournalId;
        var journal = _options.JournalOrDefault();
        var unlock = await LockServiceAsync(context, journal, sessionId, _options.Service, "Meshing", cancellationToken).ConfigureAwait(false);
        _holdingLock = true;
        context.Defer("note the Service's lock as given back", _ =>
        {
            _holdingLock = false;
            return Task.CompletedTask;
        });

        // Under the lock: the Service as it is now (another session may have meshed or exchanged it since the first look).
        var service = await GetServiceAsync(cancellationToken).ConfigureAwait(false);
        var meshed = IsMeshedByRouter(service);
        if (!meshed) await ExchangeHolders.ThrowIfHeldAsync(_client, service, cancellationToken).ConfigureAwait(false);
        var original = OriginalSelector(service);
        _podSelector = original;

        // This session's own: the shadow with its remote forwards, and the Service the router sends marked requests to.
        ShadowPodSpec? spec = null;
        var guard = await StartShadowAsync(context, service, mappings, null, s => spec = s, cancellationToken).ConfigureAwait(false);
        var connection = guard.Current;
        var shadowServiceName = KtConventions.MeshShadowName(_options.Service, mark.Version);
        var shadowService = KtServices.Build(shadowServiceName, _namespace, "ClusterIP", spec!.SelectorLabels(),
            ports.Select(p => KtServices.Port(p.Port, p.Target)), _options.Labels, _client.Clock.UtcNow);
        await KtServices.CreateOwnedAsync(context, _client, journal, connection.Heartbeat, shadowService, sessionId,
            e => new KtException("MeshVersionInUse", KtErrorCategory.ResourceExists,
                $"Service '{_namespace}/{shadowServiceName}' already exists: another session meshes '{ServiceKey}' with version '{mark.Version}'.", e, shadowServiceName),
            cancellationToken).ConfigureAwait(false);
        lock (_tracked) _tracked.Add(new KtObjectRef(KtObjectKind.Service, _namespace, shadowServiceName));

        // Shared: the stuntman (the original pods, by the original selector) and the router, counted. Leaving is registered
        // before either is made, so a start failing half-way undoes whatever of them it made.
        var membership = new RouterMembership();
        var routerName = KtConventions.RouterName(_options.Service);
        // Journalled before the first join: a crash's undo takes this session out of the router (only while it lists it).
        var joinEntry = await ClusterJournal.RecordAsync(journal, Change(KtObjectKind.Pod, routerName, ClusterChangeKind.Joined) with { Mark = mark.ToString() },
            sessionId, cancellationToken).ConfigureAwait(false);
        context.Defer($"leave the router {_namespace}/{routerName}", async ct =>
        {
            await guard.StopRecoveryAsync().ConfigureAwait(false);
            await LeaveRouterAsync(context, guard.CurrentOrDefault?.Heartbeat, routerName, membership, ct).ConfigureAwait(false);
            await journal.CompleteAsync(joinEntry, ct).ConfigureAwait(false);
        });
        await EnsureStuntmanAsync(context, connection.Heartbeat, original, ports, membership, cancellationToken).ConfigureAwait(false);
        var router = await JoinRouterAsync(context, connection.Heartbeat, routerName, ports, membership, cancellationToken).ConfigureAwait(false);
        // Always (it is idempotent): whatever this session saw before the lock, the Service must select the router now.
        var routerSelector = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [KtConventions.RoleLabel] = KtConventions.Roles.Router,
            [KtConventions.TargetLabel] = router.Metadata.GetLabel(KtConventions.TargetLabel) ?? "",
        };
        await _client.Services.UpdateWithRetryAsync(_options.Service, svc => ExchangeWorker.ApplySelector(svc, routerSelector, original), _namespace,
            cancellationToken).ConfigureAwait(false);
        if (!meshed)
        {
            context.AddResource("Service", ServiceKey, "Selector changed");
            output.Verbose($"Service {ServiceKey} now selects the router {routerName} (original selector {KtConventions.FormatSelector(original)} kept in kt-selector).");
        }

        // A redeploy that writes the Service's selector again: record it as the original, give it to the stuntman, point
        // the Service back at the router. Every user of the router watches; the updates are idempotent.
        var watchStopped = new StrongBox<bool>();
        var watcher = _client.Services.CreateWatcher(_namespace, new ListOptions { FieldSelector = "metadata.name=" + _options.Service },
            onEvent: (ev, _) => OnServiceEventAsync(context, routerSelector, watchStopped, ev));
        watcher.Start();
        ExchangeWorker.ReportWatchFailure(context, watcher.Completion, $"Service {ServiceKey}");
        // A deleted router (by someone, an eviction) would leave the Service with no endpoints while every session shows
        // Running: each of its users joins a new one, the first making it, as at the start.
        var routerWatcher = _client.Pods.CreateWatcher(_namespace, new ListOptions { FieldSelector = "metadata.name=" + routerName },
            onEvent: (ev, _) => OnRouterEventAsync(context, guard, routerName, ports, membership, routerSelector, original, watchStopped, ev));
        routerWatcher.Start();
        ExchangeWorker.ReportWatchFailure(context, routerWatcher.Completion, $"router {_namespace}/{routerName}");
        context.Defer($"stop watching Service {ServiceKey} and its router", async _ =>
        {
            watchStopped.Value = true;
            await routerWatcher.DisposeAsync().ConfigureAwait(false);
            await watcher.DisposeAsync().ConfigureAwait(false);
        });
        // A lost shadow: the router's requests for this version go to the original pods (the mesh Service selects them)
        // until the new shadow runs, then to it again.
        guard.OnLost = ct => PointMeshServiceAsync(output, shadowServiceName, original, "its original pods", ct);
        guard.OnRestored = async (c, ct) =>
        {
            await PointMeshServiceAsync(output, shadowServiceName, spec!.SelectorLabels(), "the new shadow " + c.PodName, ct).ConfigureAwait(false);
            // A router deleted while no shadow ran is joined now, with the new shadow's heartbeat.
            if (membership.RejoinPending) await RejoinRouterAsync(context, guard, routerName, ports, membership, routerSelector, original, watchStopped).ConfigureAwait(false);
        };
        guard.Arm();

        await unlock(cancellationToken).ConfigureAwait(false);
        _holdingLock = false;
        output.Verbose($"Requests to Service {ServiceKey} with header '{mark.Key}: {mark.Version}' now reach this machine; the others go to its pods.");
    }

    private async Task PointMeshServiceAsync(IKtOutput output, string name, IReadOnlyDictionary<string, string> selector, string what, CancellationToken cancellationToken)
    {
        await _client.Services.UpdateWithRetryAsync(name, svc =>
        {
            if (ExchangeWorker.SameSelector(svc.Spec?.Selector, selector)) return false;
            svc.Spec ??= new ServiceSpec();
            svc.Spec.Selector = new Dictionary<string, string>(selector, StringComparer.Ordinal);
            return true;
        }, _namespace, cancellationToken).ConfigureAwait(false);
        output.Warning($"Service {_namespace}/{name} (version {_options.Mark.Version}) selects {what}.");
    }

    private static Dictionary<string, string> Copy(IReadOnlyDictionary<string, string> selector)
    {
        lock (selector) return new Dictionary<string, string>(selector, StringComparer.Ordinal);
    }

    /// <summary>The router was deleted (by someone, an eviction): join a new one.</summary>
    private async ValueTask OnRouterEventAsync(SessionContext context, ShadowGuard guard, string routerName, IReadOnlyList<(int Port, int Target)> ports,
        RouterMembership membership, Dictionary<string, string> routerSelector, IReadOnlyDictionary<string, string> original, StrongBox<bool> stopped,
        WatchEvent<Pod> ev)
    {
        if (ev.Type != WatchEventType.Deleted || stopped.Value || context.Stopping.IsCancellationRequested) return;
        context.Output.Warning($"The router {_namespace}/{routerName} of Service {ServiceKey} was deleted; joining a new one.");
        membership.RejoinPending = true;
        await RejoinRouterAsync(context, guard, routerName, ports, membership, routerSelector, original, stopped).ConfigureAwait(false);
    }

    /// <summary>
    /// Joins a new router under the Service's lock (the first of its users makes it, with its own version; the others add
    /// theirs; the stuntman is made again if it went too) and points the Service at it, as its kt-target is new. Tried
    /// again until it works or the session stops; while no shadow runs (one is being replaced) it is left to the new
    /// shadow's arrival.
    /// </summary>
    private async Task RejoinRouterAsync(SessionContext context, ShadowGuard guard, string routerName, IReadOnlyList<(int Port, int Target)> ports,
        RouterMembership membership, Dictionary<string, string> routerSelector, IReadOnlyDictionary<string, string> original, StrongBox<bool> stopped)
    {
        var output = context.Output;
        while (membership.RejoinPending && !stopped.Value && !context.Stopping.IsCancellationRequested)
        {
            if (guard.CurrentOrDefault is not { } shadow) return;
            try
            {
                // Journalled and renewed as the set-up's: the router is waited for up to --podCreationTimeout under it.
                var unlock = await JournalledLockAsync(_options.JournalOrDefault(), context.JournalId, _options.Service, context.Stopping).ConfigureAwait(false);
                try
                {
                    // The router's deletion and the new shadow's arrival may both have come here: one joins.
                    if (stopped.Value || !membership.RejoinPending) return;
                    membership.Joined = false;
                    await EnsureStuntmanAsync(context, shadow.Heartbeat, _podSelector ?? original, ports, membership, context.Stopping).ConfigureAwait(false);
                    var router = await JoinRouterAsync(context, shadow.Heartbeat, routerName, ports, membership, context.Stopping).ConfigureAwait(false);
                    lock (routerSelector) routerSelector[KtConventions.TargetLabel] = router.Metadata.GetLabel(KtConventions.TargetLabel) ?? "";
                    await _client.Services.UpdateWithRetryAsync(_options.Service, svc => ExchangeWorker.ApplySelector(svc, Copy(routerSelector), original),
                        _namespace, context.Stopping).ConfigureAwait(false);
                    membership.RejoinPending = false;
                    output.Warning($"Service {ServiceKey} is routed by the new router {_namespace}/{routerName}.");
                }
                finally
                {
                    await unlock(CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (context.Stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is KtException or IOException or UnauthorizedAccessException)
            {
                // The journal's file errors too: a full disk must not end the rejoin for good.
                output.Warning($"Could not join a new router for Service {ServiceKey} ({e.Message}); trying again in 5 s.");
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(5), context.Stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async ValueTask OnServiceEventAsync(SessionContext context, IReadOnlyDictionary<string, string> routerSelector, StrongBox<bool> stopped,
        WatchEvent<Service> ev)
    {
        if (stopped.Value || context.Stopping.IsCancellationRequested) return;
        if (ev.Type is not (WatchEventType.Added or WatchEventType.Modified) || ev.Object is not { } svc) return;
        var selector = svc.Spec?.Selector ?? [];
        if (selector.Count == 0 || selector.ContainsKey(KtConventions.RoleLabel)) return; // ours, or another kt tool's
        context.Output.Warning($"Service {ServiceKey} was changed by someone else (selector {KtConventions.FormatSelector(selector)}, e.g. a redeploy); " +
            "routing it through the router again.");
        var redeployed = new Dictionary<string, string>(selector, StringComparer.Ordinal);
        _podSelector = redeployed;
        try
        {
            await _client.Services.UpdateWithRetryAsync(KtConventions.StuntmanName(_options.Service), stuntman =>
            {
                if (ExchangeWorker.SameSelector(stuntman.Spec?.Selector, redeployed)) return false;
                stuntman.Spec ??= new ServiceSpec();
                stuntman.Spec.Selector = new Dictionary<string, string>(redeployed, StringComparer.Ordinal);
                return true;
            }, _namespace, context.Stopping).ConfigureAwait(false);
            await _client.Services.UpdateWithRetryAsync(_options.Service, current =>
            {
                if (stopped.Value) return false;
                var now = current.Spec?.Selector ?? [];
                if (now.Count == 0 || now.ContainsKey(KtConventions.RoleLabel)) return false;
                current.Metadata.Annotations?.Remove(KtConventions.SelectorAnnotation);
                return ExchangeWorker.ApplySelector(current, Copy(routerSelector), now);
            }, _namespace, context.Stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.Stopping.IsCancellationRequested)
        {
        }
        catch (KtException e)
        {
            context.Output.Warning($"Could not route Service {ServiceKey} through the router again: {e.Message}");
        }
    }

    /// <summary>
    /// The shadow pod and its remote forwards (ShadowSetup undoes both), kept by a <see cref="ShadowGuard"/>: a lost shadow is
    /// replaced under the same name (once the old pod is gone), the objects this session heart-beats are tracked by the
    /// new one's heartbeat, and <paramref name="built"/> sees each new spec.
    /// </summary>
    private async Task<ShadowGuard> StartShadowAsync(SessionContext context, Service service, IReadOnlyList<PortMapping> mappings,
        IReadOnlyDictionary<string, string>? roleLabels, Action<ShadowPodSpec>? built, CancellationToken cancellationToken)
    {
        var mark = _options.Mark;
        var name = KtConventions.MeshShadowName(_options.Service, mark.Version);
        // One kt-target for every shadow of this session: the mesh Service's selector stays valid.
        var target = roleLabels is null ? KtConventions.NewTarget() : null;
        var guard = new ShadowGuard(context, _client, _namespace, $"the mesh of Service {ServiceKey} (version {mark.Version})", sameName: true,
            async (ctx, generation, ct) =>
            {
                var connection = await ShadowSetup.StartAsync(ctx, _client, _options, key =>
                {
                    var spec = _options.ToShadowSpec(name, _namespace, KtConventions.Roles.ShadowMesh, key) with
                    {
                        RoleLabels = roleLabels,
                        Target = target,
                        Config = roleLabels is null ? [new(KtConventions.ConfigService, name)] : [],
                        Ports = ExchangeWorker.ShadowPorts(service, mappings, _relayed),
                        ExtraAnnotations = new Dictionary<string, string>(_options.Annotations, StringComparer.Ordinal)
                        {
                            [ExchangeHolders.HostAnnotation] = Environment.MachineName,
                            [ExchangeHolders.SessionAnnotation] = context.JournalId,
                        },
                    };
                    built?.Invoke(spec);
                    return spec;
                }, ct).ConfigureAwait(false);
                await RemoteForwards.StartAsync(ctx, connection.Link, mappings, _options.Service, announce: generation == 0, ct).ConfigureAwait(false);
                foreach (var u in _relayed)
                    await new PodRelay(_client, _namespace, () => _podSelector ?? new Dictionary<string, string>(), u.TargetPort!.Value, ctx.Output)
                        .StartAsync(ctx, connection.Link, ct).ConfigureAwait(false);
                if (generation > 0)
                {
                    lock (_tracked) foreach (var o in _tracked) connection.Heartbeat.Track(o);
                }
                return connection;
            });
        await guard.StartAsync(cancellationToken).ConfigureAwait(false);
        return guard;
    }

    /// <summary>Heart-beaten on the shadow's heartbeat (and on a replacement shadow's).</summary>
    private void Track(Heartbeat heartbeat, KtObjectRef o)
    {
        heartbeat.Track(o);
        lock (_tracked) _tracked.Add(o);
    }

    /// <summary>The stuntman Service: reused when it is kt's, created otherwise (deleted by the last router user).</summary>
    private async Task EnsureStuntmanAsync(SessionContext context, Heartbeat heartbeat, IReadOnlyDictionary<string, string> original,
        IReadOnlyList<(int Port, int Target)> ports, RouterMembership membership, CancellationToken cancellationToken)
    {
        var name = KtConventions.StuntmanName(_options.Service);
        var existing = await _client.Services.TryGetAsync(name, _namespace, cancellationToken).ConfigureAwait(false);
        if (existing is not null && existing.Metadata.GetLabel(KtConventions.ControlByLabel) != KtConventions.ControlByValue)
            throw new KtException("StuntmanServiceExists", KtErrorCategory.ResourceExists,
                $"Service '{_namespace}/{name}' exists and is not kt's; mesh auto mode needs that name for the original pods. Rename it, or use --mode manual.", null, name);
        if (existing is null)
        {
            var stuntman = KtServices.Build(name, _namespace, "ClusterIP", original, ports.Select(p => KtServices.Port(p.Port, p.Target)), _options.Labels,
                _client.Clock.UtcNow);
            membership.CreatedStuntman = true; // before the create: one whose answer is lost is still undone
            try
            {
                await _client.Services.CreateAsync(stuntman, _namespace, cancellationToken).ConfigureAwait(false);
                context.AddResource("Service", _namespace + "/" + name, "Created (shared)");
            }
            catch (KubeAlreadyExistsException)
            {
                membership.CreatedStuntman = false; // another session made it just now: shared from here on
            }
            catch (KubeApiException e) when (e.Code is >= 400 and < 500)
            {
                membership.CreatedStuntman = false;
                throw;
            }
        }
        Track(heartbeat, new KtObjectRef(KtObjectKind.Service, _namespace, name));
    }

    /// <summary>
    /// Creates the router (count 1, <c>router setup</c>) or joins it (count + 1, <c>router add</c>), and defers leaving it:
    /// <c>router remove</c>, or as the last user the Service's selector back, then the stuntman and the router deleted.
    /// </summary>
    private async Task<Pod> JoinRouterAsync(SessionContext context, Heartbeat heartbeat, string name, IReadOnlyList<(int Port, int Target)> ports,
        RouterMembership membership, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var mark = _options.Mark.ToString();
        var shadowPods = new ShadowPods(_client);
        for (var attempt = 0; ; attempt++)
        {
            var existing = await _client.Pods.TryGetAsync(name, _namespace, cancellationToken).ConfigureAwait(false);
            if (existing?.Metadata.DeletionTimestamp is not null && attempt < 20)
            {
                output.Progress("Meshing", $"Waiting for the old router {name} to go away");
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                continue;
            }
            Pod router;
            string[] command;
            if (existing is null)
            {
                membership.Joined = true; // before the create: one whose answer is lost is still left again
                try
                {
                    router = await _client.Pods.CreateAsync(BuildRouter(name, ports, _routerPortNames, context.JournalId), _namespace, cancellationToken)
                        .ConfigureAwait(false);
                }
                catch (KubeAlreadyExistsException)
                {
                    membership.Joined = false;
                    continue;
                }
                catch (KubeApiException e) when (e.Code is >= 400 and < 500)
                {
                    membership.Joined = false;
                    throw;
                }
                command = [RouterCommand, "setup", _options.Service, string.Join(',', ports.Select(p => $"{p.Port}:{p.Target}")), mark];
            }
            else
            {
                try
                {
                    var now = await ShadowPods.ClusterNowAsync(_client, cancellationToken).ConfigureAwait(false);
                    // Not cut off by a cancel once sent (ShadowPods.JoinTimeout): Joined is set from its answer.
                    // Counted and listed in one patch; a join already counted (its answer lost before) is not counted again.
                    (router, _) = await ShadowPods.SendJoinAsync(ct => ShadowPods.ChangeMembershipAsync(_client.Pods, name, _namespace, context.JournalId,
                        join: true, ct, now), $"{_namespace}/{name}").ConfigureAwait(false);
                }
                catch (Exception e) when (e is KubeNotFoundException or ShadowPods.SharedShadowChangedException)
                {
                    continue;
                }
                membership.Joined = true;
                command = [RouterCommand, "add", mark];
            }
            Track(heartbeat, new KtObjectRef(KtObjectKind.Pod, _namespace, name));
            router = await shadowPods.WaitRunningAsync(_namespace, name, output, _options.PodCreationTimeout, cancellationToken).ConfigureAwait(false);
            var result = await MeshRouter.RunAsync(_client, _namespace, name, command, cancellationToken).ConfigureAwait(false);
            if (result.ExitCode != 0)
                throw new KtException("RouterCommandFailed", KtErrorCategory.InvalidOperation,
                    $"'{string.Join(' ', command)}' in the router {_namespace}/{name} exited with {result.ExitCode}: {result.Stderr.Trim()}", null, name);
            context.AddResource("Pod", _namespace + "/" + name, existing is null ? "Created (shared)" : "Joined");
            output.Verbose($"Router {_namespace}/{name}: {string.Join(' ', command.Skip(1))}");
            return router;
        }
    }

    /// <summary>
    /// Leaves the router (<see cref="MeshRouter.LeaveAsync"/>): count − 1 and <c>router remove</c>, or as its last user the
    /// Service's selector back, then the stuntman and the router deleted. A session that never joined only deletes a
    /// stuntman it made while no router uses it.
    /// </summary>
    private async Task LeaveRouterAsync(SessionContext context, Heartbeat? heartbeat, string name, RouterMembership membership, CancellationToken ct)
    {
        var stuntman = KtConventions.StuntmanName(_options.Service);
        heartbeat?.Untrack(new KtObjectRef(KtObjectKind.Pod, _namespace, name));
        heartbeat?.Untrack(new KtObjectRef(KtObjectKind.Service, _namespace, stuntman));
        if (!membership.Joined && !membership.RejoinPending)
        {
            // A join whose answer never came may have counted this session all the same: leaving goes by the router's list.
            await MeshRouter.LeaveAsync(_client, _namespace, _options.Service, context.JournalId, _options.Mark.ToString(), _holdingLock,
                restoreIfGone: false, context.Output.Warning, ct).ConfigureAwait(false);
            if (membership.CreatedStuntman && await _client.Pods.TryGetAsync(name, _namespace, ct).ConfigureAwait(false) is null)
                await _client.Services.DeleteIfExistsAsync(stuntman, _namespace, cancellationToken: ct).ConfigureAwait(false);
            return;
        }
        await MeshRouter.LeaveAsync(_client, _namespace, _options.Service, context.JournalId, _options.Mark.ToString(), _holdingLock, restoreIfGone: true,
            context.Output.Warning, ct).ConfigureAwait(false);
    }

    /// <summary>kt-connect's router pod: kt-role=router, a kt-target, count 1, kt-config=service=&lt;svc&gt;, one container port per target port.</summary>
    internal Pod BuildRouter(string name, IReadOnlyList<(int Port, int Target)> ports, IReadOnlyDictionary<int, string> portNames, string member)
    {
        var labels = new Dictionary<string, string>(_options.Labels, StringComparer.Ordinal)
        {
            [KtConventions.RoleLabel] = KtConventions.Roles.Router,
            [KtConventions.TargetLabel] = KtConventions.NewTarget(),
            [KtConventions.ControlByLabel] = KtConventions.ControlByValue,
        };
        var annotations = new Dictionary<string, string>(_options.Annotations, StringComparer.Ordinal)
        {
            [KtConventions.RefCountAnnotation] = "1",
            [KtConventions.MembersAnnotation] = member,
            [KtConventions.ConfigAnnotation] = KtConventions.FormatConfig([new(KtConventions.ConfigService, _options.Service)]),
            [KtConventions.HeartbeatAnnotation] = KtConventions.FormatUnixSeconds(_client.Clock.UtcNow),
            [KtConventions.UserAnnotation] = KtConventions.CurrentUser(),
        };
        return new Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new ObjectMeta { Name = name, Namespace = _namespace, Labels = labels, Annotations = annotations },
            Spec = new PodSpec
            {
                ServiceAccountName = _options.ServiceAccount,
                Containers =
                [
                    new Container
                    {
                        Name = KtConventions.ContainerName,
                        Image = _options.RouterImage,
                        ImagePullPolicy = "IfNotPresent",
                        Ports = [.. ports.Select(p => p.Target).Distinct().Select(t => new ContainerPortSpec
                        {
                            Name = portNames.GetValueOrDefault(t) ?? "router-" + t,
                            ContainerPort = t,
                        })],
                    },
                ],
                NodeSelector = _options.NodeSelector.Count > 0 ? new Dictionary<string, string>(_options.NodeSelector, StringComparer.Ordinal) : null,
                ImagePullSecrets = _options.ImagePullSecret is null ? null : [new LocalObjectReference { Name = _options.ImagePullSecret }],
            },
        };
    }

    /// <summary>
    /// Auto mode points the whole Service at the router, which carries TCP only: a UDP port (DNS, QUIC) would lose every
    /// client. Refused before any change; manual mode leaves the Service to the service mesh.
    /// </summary>
    internal static void ThrowIfNotAllTcp(Service service)
    {
        var other = (service.Spec?.Ports ?? []).Where(p => !PortMapper.IsTcp(p)).ToList();
        if (other.Count > 0)
            throw new KtException("MeshPortNotTcp", KtErrorCategory.InvalidArgument,
                $"Service '{service.Metadata.Namespace}/{service.Metadata.Name}' has {string.Join(", ", other.Select(p => $"{p.Port}/{p.Protocol}"))}, which " +
                "the router cannot carry: every client would lose it. Use --mode manual (-Mode Manual) and route with your service mesh.",
                null, service.Metadata.Name);
    }

    /// <summary>
    /// A Service port whose targetPort is a name (<c>http</c>, as most charts write it) reaches the pods that select it
    /// through a container port of that name: the router must carry it too, or that port of the Service has no endpoints.
    /// </summary>
    internal static IReadOnlyDictionary<int, string> RouterPortNames(Service service, IReadOnlyDictionary<string, int> named)
    {
        var names = new Dictionary<int, string>();
        foreach (var p in service.Spec?.Ports ?? [])
        {
            if (p.TargetPort?.StringValue is { } name && named.TryGetValue(name, out var number)) names.TryAdd(number, name);
        }
        return names;
    }

    private static bool IsMeshedByRouter(Service service) =>
        service.Spec?.Selector?.GetValueOrDefault(KtConventions.RoleLabel) == KtConventions.Roles.Router
        && service.Metadata.GetAnnotation(KtConventions.SelectorAnnotation) is not null;

    /// <summary>The selector of the Service's own pods: kt-selector while a router holds it, else the selector.</summary>
    private IReadOnlyDictionary<string, string> OriginalSelector(Service service)
    {
        var selector = IsMeshedByRouter(service)
            ? KtConventions.ParseSelector(service.Metadata.GetAnnotation(KtConventions.SelectorAnnotation)!, service.Key)
            : service.Spec?.Selector;
        return selector is { Count: > 0 }
            ? selector
            : throw new KtException("ServiceHasNoSelector", KtErrorCategory.InvalidOperation,
                $"Service '{ServiceKey}' has no selector (its endpoints are managed by hand), so it cannot be meshed.", null, _options.Service);
    }

    private Task<Service> GetServiceAsync(CancellationToken cancellationToken) =>
        ServiceTargets.GetServiceAsync(_client, _namespace, _options.Service, cancellationToken);

    /// <summary>What this session holds of the shared router and stuntman (set before each create, cleared on a definite refusal).</summary>
    private sealed class RouterMembership
    {
        public volatile bool Joined;

        /// <summary>The router was deleted and this session is not in a new one yet.</summary>
        public volatile bool RejoinPending;

        public volatile bool CreatedStuntman;
    }
}
