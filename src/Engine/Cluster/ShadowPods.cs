using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>Registers an undo step (a session's Defer has this shape): description, then the undo.</summary>
public delegate void DeferUndo(string description, Func<CancellationToken, Task> undo);

/// <summary>
/// Creates shadow pods (or Deployments) with their SSH ConfigMap, waits for them, reads their host keys, and shares
/// <c>kt-connect-shadow-daemon</c> by reference count. Every creation registers its undo before it returns.
/// </summary>
public sealed class ShadowPods
{
    public const string ProgressActivity = "Shadow pod";

    private readonly KubeClient _client;

    public ShadowPods(KubeClient client) => _client = client ?? throw new ArgumentNullException(nameof(client));

    /// <summary>Default wait (ktctl's podCreationTimeout).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Creates the ConfigMap, then the pod or Deployment (a Deployment always gets a <c>kt-target</c>), then makes the
    /// ConfigMap owned by it so the garbage collector removes it with the shadow. <paramref name="defer"/> receives the
    /// handle's delete as soon as the first object exists; when creation fails half-way what was created is deleted
    /// before the typed error is thrown.
    /// </summary>
    public async Task<ShadowPodHandle> CreateAsync(ShadowPodSpec spec, DeferUndo? defer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.UseDeployment && spec.Target is null) spec = spec with { Target = KtConventions.NewTarget() };
        var now = await ClusterNowAsync(_client, cancellationToken).ConfigureAwait(false);
        var handle = new ShadowPodHandle(_client, spec);
        defer?.Invoke($"Delete shadow {(spec.UseDeployment ? "deployment" : "pod")} {spec.Namespace}/{spec.Name} and its ConfigMap", handle.DeleteAsync);
        try
        {
            // Each flag is set before its request: a create whose answer was lost (timeout, dropped connection) may have
            // happened, so the undo deletes it; a definite answer from the server (any Status) clears it again.
            handle.ConfigMapCreated = true;
            await Tracked(() => Guard(spec, "configmaps", () => _client.ConfigMaps.CreateAsync(spec.BuildConfigMap(now), spec.Namespace, cancellationToken)),
                () => handle.ConfigMapCreated = false).ConfigureAwait(false);
            OwnerReference owner;
            handle.WorkloadCreated = true;
            if (spec.UseDeployment)
            {
                var d = await Tracked(() => Guard(spec, "deployments", () => _client.Deployments.CreateAsync(spec.BuildDeployment(now), spec.Namespace, cancellationToken)),
                    () => handle.WorkloadCreated = false).ConfigureAwait(false);
                owner = new OwnerReference { ApiVersion = "apps/v1", Kind = "Deployment", Name = spec.Name, Uid = d.Metadata.Uid };
            }
            else
            {
                var p = await Tracked(() => Guard(spec, "pods", () => _client.Pods.CreateAsync(spec.BuildPod(now), spec.Namespace, cancellationToken)),
                    () => handle.WorkloadCreated = false).ConfigureAwait(false);
                owner = new OwnerReference { ApiVersion = "v1", Kind = "Pod", Name = spec.Name, Uid = p.Metadata.Uid };
            }
            try
            {
                // Merge patch (the 'patch' verb kt-connect's minimal RBAC grants): the garbage collector then removes the
                // ConfigMap with its shadow even if this process dies before its undo runs.
                var ownerPatch = new System.Text.Json.Nodes.JsonObject
                {
                    ["metadata"] = new System.Text.Json.Nodes.JsonObject
                    {
                        ["ownerReferences"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject
                        {
                            ["apiVersion"] = owner.ApiVersion,
                            ["kind"] = owner.Kind,
                            ["name"] = owner.Name,
                            ["uid"] = owner.Uid,
                        }),
                    },
                };
                await _client.ConfigMaps.PatchAsync(spec.Name, KubePatch.Merge(ownerPatch), spec.Namespace, cancellationToken).ConfigureAwait(false);
            }
            catch (KubeForbiddenException)
            {
                // Without patch on configmaps the undo (and clean) still delete it.
            }
            return handle;
        }
        catch
        {
            try
            {
                await handle.DeleteAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (KtException)
            {
                // Best effort here; the original error is what the user needs. The deferred undo tries again.
            }
            throw;
        }
    }

    private static async Task<T> Tracked<T>(Func<Task<T>> create, Action notCreated)
    {
        try
        {
            return await create().ConfigureAwait(false);
        }
        catch (Exception e) when (e is KubeApiException || e.InnerException is KubeApiException)
        {
            notCreated();
            throw;
        }
    }

    /// <summary>Waits for the handle's pod (the Deployment's pod by <c>kt-target</c>) to be Running and Ready.</summary>
    public Task<Pod> WaitRunningAsync(ShadowPodHandle handle, IKtOutput? output = null, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handle);
        var options = handle.IsDeployment
            ? new ListOptions { LabelSelector = KtConventions.TargetLabel + "=" + handle.Target }
            : new ListOptions { FieldSelector = "metadata.name=" + handle.Name };
        return WaitRunningAsync(handle.Namespace, handle.Name, options, output, timeout, cancellationToken);
    }

    /// <summary>Waits for the shared shadow's pod (by name, or by <c>kt-target</c> for a Deployment).</summary>
    public Task<Pod> WaitRunningAsync(SharedShadowLease lease, IKtOutput? output = null, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var options = lease.IsDeployment
            ? new ListOptions { LabelSelector = KtConventions.TargetLabel + "=" + lease.Target }
            : new ListOptions { FieldSelector = "metadata.name=" + lease.Name };
        return WaitRunningAsync(lease.Namespace, lease.Name, options, output, timeout, cancellationToken);
    }

    /// <summary>
    /// The whole start of a private shadow: <see cref="CreateAsync"/>, <see cref="WaitRunningAsync(ShadowPodHandle, IKtOutput?, TimeSpan?, CancellationToken)"/>,
    /// <see cref="ReadHostKeysAsync"/>. The undo is registered through <paramref name="defer"/> before anything can fail.
    /// </summary>
    public async Task<RunningShadow> CreateRunningAsync(ShadowPodSpec spec, DeferUndo? defer, IKtOutput? output = null, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        var handle = await CreateAsync(spec, defer, cancellationToken).ConfigureAwait(false);
        var pod = await WaitRunningAsync(handle, output, timeout, cancellationToken).ConfigureAwait(false);
        var keys = await ReadHostKeysAsync(handle.Namespace, pod.Metadata.Name ?? handle.Name, cancellationToken).ConfigureAwait(false);
        return new RunningShadow(handle, pod, keys);
    }

    /// <summary>Waits for pod <paramref name="podName"/> to be Running and Ready.</summary>
    public Task<Pod> WaitRunningAsync(string ns, string podName, IKtOutput? output = null, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default) =>
        WaitRunningAsync(ns, podName, new ListOptions { FieldSelector = "metadata.name=" + podName }, output, timeout, cancellationToken);

    private async Task<Pod> WaitRunningAsync(string ns, string name, ListOptions options, IKtOutput? output, TimeSpan? timeout,
        CancellationToken cancellationToken)
    {
        output ??= NullOutput.Instance;
        var limit = timeout ?? DefaultTimeout;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(limit);
        var stage = ShadowPodStage.Scheduling;
        string? lastStatus = null;
        output.Progress(ProgressActivity, "Scheduling " + name, 10);

        // One observation of the pod: the ready pod, or null to keep waiting; failures throw.
        Pod? Observe(Pod pod, bool deleted)
        {
            var podName = pod.Metadata.Name ?? name;
            if (deleted)
            {
                if (options.FieldSelector is null) return null; // a Deployment's old pod going away
                throw new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
                    $"The shadow pod '{podName}' was deleted while KtConnect waited for it. Run the command again.", podName, "Deleted");
            }
            var progress = ShadowPodStatus.Evaluate(pod);
            if (progress.Failure is not null)
            {
                output.Progress(ProgressActivity, progress.Status, 100, completed: true);
                throw progress.Failure;
            }
            stage = progress.Stage;
            if (progress.Status != lastStatus)
            {
                lastStatus = progress.Status;
                output.Progress(ProgressActivity, progress.Status + " " + podName, progress.Percent, completed: progress.IsReady);
                output.Verbose($"Shadow pod {ns}/{podName}: {progress.Status}");
            }
            return progress.IsReady ? pod : null;
        }

        try
        {
            try
            {
                await using var watcher = _client.Pods.CreateWatcher(ns, options).Start();
                await foreach (var e in watcher.ReadAllAsync(cts.Token).ConfigureAwait(false))
                {
                    if (e.Object is not null && Observe(e.Object, e.Type == WatchEventType.Deleted) is { } ready) return ready;
                }
                await watcher.Completion.ConfigureAwait(false);
                throw new OperationCanceledException(cts.Token);
            }
            catch (KubeForbiddenException e) when (e.Verb is "watch" or "list")
            {
                // kt-connect's sample RBAC grants no watch on pods (§1.9.10): poll with get/list instead.
                output.Debug($"No permission to {e.Verb} pods ({e.ServerMessage}); polling the shadow pod instead.");
            }
            while (true)
            {
                if (options.FieldSelector is not null)
                {
                    var pod = await _client.Pods.TryGetAsync(name, ns, cts.Token).ConfigureAwait(false);
                    if (Observe(pod ?? new Pod { Metadata = new ObjectMeta { Name = name } }, pod is null) is { } ready) return ready;
                }
                else
                {
                    var pods = await _client.Pods.ListAsync(ns, options, cts.Token).ConfigureAwait(false);
                    foreach (var pod in pods.Items)
                    {
                        if (Observe(pod, false) is { } ready) return ready;
                    }
                }
                await Task.Delay(PollInterval, cts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            output.Progress(ProgressActivity, "Timed out", 100, completed: true);
            throw new ShadowPodException(ShadowPodErrors.Timeout, KtErrorCategory.OperationTimeout,
                $"The shadow pod '{name}' was not ready after {limit.TotalSeconds:0} s; it was stuck {ShadowPodStatus.StageText(stage)}" +
                (lastStatus is null ? "" : $" (last status: {lastStatus})") +
                ". Look at its events (kubectl describe pod), or allow more time with --podCreationTimeout (-Timeout).", name, stage.ToString());
        }
    }

    /// <summary>How often the pod is polled when watching is not allowed.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Reads the shadow sshd's host public keys through exec in container <c>standalone</c> (no stdin: on exec v4 it
    /// could not be closed). A missing file is tolerated as long as one key is read.
    /// </summary>
    public async Task<IReadOnlyList<ShadowHostKey>> ReadHostKeysAsync(string ns, string podName, CancellationToken cancellationToken = default)
    {
        ExecOutput result;
        try
        {
            result = await _client.RunAsync(podName, ["cat", .. HostKeyParser.ShadowHostKeyFiles], ns, KtConventions.ContainerName, null,
                cancellationToken).ConfigureAwait(false);
        }
        catch (KubeForbiddenException e)
        {
            throw Forbidden(podName, ns, e);
        }
        catch (KubeExecException e)
        {
            throw new ShadowPodException(ShadowPodErrors.HostKeyUnavailable, KtErrorCategory.ResourceUnavailable,
                $"Cannot read the host key of shadow pod '{podName}': {e.Message}. Is --image a kt-connect shadow image?", podName, null, e);
        }
        var keys = HostKeyParser.Parse(result.Stdout, podName);
        if (keys.Count == 0)
        {
            throw new ShadowPodException(ShadowPodErrors.HostKeyUnavailable, KtErrorCategory.ResourceUnavailable,
                $"The shadow pod '{podName}' has no readable sshd host key ({string.Join(", ", HostKeyParser.ShadowHostKeyFiles)}; exit code " +
                $"{result.ExitCode}{(string.IsNullOrWhiteSpace(result.Stderr) ? "" : ": " + result.Stderr.Trim())}). Is --image a kt-connect shadow image?",
                podName);
        }
        return keys;
    }

    /// <summary>
    /// Joins or creates the shared shadow <c>kt-connect-shadow-daemon</c>: the ConfigMap (keeping the key pair for the
    /// next user) is got or created, then the pod/Deployment is created with <c>kt-ref-count=1</c> or its count is
    /// incremented (resourceVersion-checked, retried on conflict). The lease says which keys to use: those already in the
    /// ConfigMap when someone else created it. <paramref name="defer"/> receives the release.
    /// </summary>
    /// <remarks>
    /// With <paramref name="member"/> (the session's journal id) the session is also listed in
    /// <see cref="KtConventions.MembersAnnotation"/>, in the same patch as its count, and its release takes out only a count
    /// that is listed: what lets the undo of a crashed session release its count, and only its own.
    /// </remarks>
    public async Task<SharedShadowLease> AcquireSharedAsync(ShadowPodSpec spec, DeferUndo? defer, CancellationToken cancellationToken = default,
        string? member = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec = spec with { Name = KtConventions.SharedShadowName, Target = spec.Target ?? (spec.UseDeployment ? KtConventions.NewTarget() : null) };
        for (var attempt = 0; ; attempt++)
        {
            var now = await ClusterNowAsync(_client, cancellationToken).ConfigureAwait(false);
            try
            {
                ConfigMap cm;
                try
                {
                    cm = await Guard(spec, "configmaps", () => _client.ConfigMaps.CreateAsync(spec.BuildConfigMap(now), spec.Namespace, cancellationToken))
                        .ConfigureAwait(false);
                }
                catch (KubeAlreadyExistsException)
                {
                    cm = await _client.ConfigMaps.TryGetAsync(spec.Name, spec.Namespace, cancellationToken).ConfigureAwait(false)
                        ?? throw new SharedShadowChangedException();
                }
                var authorized = cm.Data?.GetValueOrDefault(KtConventions.ConfigMapAuthorizedKey) ?? spec.AuthorizedKey;
                var privateKey = cm.Data?.GetValueOrDefault(KtConventions.ConfigMapPrivateKey);
                var (created, target, count) = await SendJoinAsync(ct => spec.UseDeployment
                    ? JoinAsync(_client.Deployments, spec, () => spec.BuildDeployment(now), d => d.Spec?.Selector?.MatchLabels?.GetValueOrDefault(KtConventions.TargetLabel), now, member, ct)
                    : JoinAsync(_client.Pods, spec, () => spec.BuildPod(now), p => p.Metadata.GetLabel(KtConventions.TargetLabel), now, member, ct),
                    $"{spec.Namespace}/{spec.Name}").ConfigureAwait(false);
                // Counted in: the release is registered before anything else can fail.
                var lease = new SharedShadowLease(this, spec.Namespace, spec.Name, spec.UseDeployment, created, count, target, authorized, privateKey, member);
                defer?.Invoke($"Release shared shadow {spec.Namespace}/{spec.Name}", lease.ReleaseAsync);
                if (created)
                {
                    // A releaser may have deleted the ConfigMap after we read it: put it back with the keys we hand out.
                    var copy = spec.BuildConfigMap(now);
                    copy.Data = cm.Data;
                    try
                    {
                        await _client.ConfigMaps.CreateAsync(copy, spec.Namespace, cancellationToken).ConfigureAwait(false);
                    }
                    catch (KubeAlreadyExistsException)
                    {
                        // Still there.
                    }
                    catch when (defer is null)
                    {
                        await lease.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
                        throw;
                    }
                }
                return lease;
            }
            catch (SharedShadowChangedException) when (attempt < 10)
            {
                // The shared shadow disappeared or was terminating between our steps: start over.
                await Task.Delay(TimeSpan.FromMilliseconds(200 * (attempt + 1)), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// How long a join (a create of a shared object, or its count + 1) may take. A join is sent without the caller's
    /// cancellation: its undo can be registered only once its answer is in, and a cancel that cut the request off after
    /// the server applied it would leave a count that nobody takes back. The caller's cancel is seen at its next step.
    /// Short enough that a Ctrl+C, or process exit's 30 s, still has time for the undo after it.
    /// </summary>
    internal static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Sends a join (see <see cref="JoinTimeout"/>); no answer in time is <see cref="KubeRequestTimeoutException"/>.</summary>
    internal static async Task<T> SendJoinAsync<T>(Func<CancellationToken, Task<T>> join, string what)
    {
        using var timeout = new CancellationTokenSource(JoinTimeout);
        try
        {
            return await join(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested)
        {
            throw new KubeRequestTimeoutException(
                $"Joining {what} got no answer within {JoinTimeout.TotalSeconds:0} s; if the server applied it, its kt-ref-count is one too high, " +
                "and it outlives its last user until its heartbeat is stale and kt clean removes it.", e, what);
        }
    }

    private static async Task<(bool Created, string? Target, int Count)> JoinAsync<T>(ResourceClient<T> client, ShadowPodSpec spec, Func<T> build,
        Func<T, string?> target, DateTimeOffset now, string? member, CancellationToken ct) where T : KubeObject
    {
        try
        {
            var shadow = build();
            // On the counted object only (a Deployment's pods are not counted).
            if (member is not null) (shadow.Metadata.Annotations ??= new Dictionary<string, string>(StringComparer.Ordinal))[KtConventions.MembersAnnotation] = member;
            var made = await Guard(spec, client.Resource.Plural, () => client.CreateAsync(shadow, spec.Namespace, ct)).ConfigureAwait(false);
            return (true, target(made), 1);
        }
        catch (KubeAlreadyExistsException)
        {
            // Fall through to increment.
        }
        try
        {
            // A member already listed (a join whose answer was lost) is not counted again.
            var (updated, _) = await ChangeCountAsync(client, spec.Name, spec.Namespace, +1, member, ct, now).ConfigureAwait(false);
            return (false, target(updated), KtConventions.ParseRefCount(updated.Metadata.GetAnnotation(KtConventions.RefCountAnnotation)));
        }
        catch (KubeNotFoundException)
        {
            throw new SharedShadowChangedException();
        }
    }

    /// <summary>
    /// kt-ref-count += delta (never below 0) as a compare-and-swap that needs only get and patch (the verbs kt-connect's
    /// minimal RBAC grants): a JSON patch that tests the resourceVersion read, then sets the annotation. A failed test
    /// (someone else changed the object) re-reads and tries again, with jitter. A joiner passes <paramref name="heartbeat"/>
    /// (cluster time): the same patch stamps the object, whose heartbeat may be old if its last user crashed, so no
    /// clean judges it stale before the joiner's first beat.
    /// </summary>
    internal static async Task<T> ChangeRefCountAsync<T>(ResourceClient<T> client, string name, string ns, int delta, CancellationToken ct,
        DateTimeOffset? heartbeat = null)
        where T : KubeObject =>
        (await ChangeCountAsync(client, name, ns, delta, null, ct, heartbeat).ConfigureAwait(false)).Current;

    /// <summary>
    /// Counts <paramref name="member"/> in (<paramref name="join"/>) or out: kt-ref-count ± 1 and the session added to or
    /// taken from <see cref="KtConventions.MembersAnnotation"/> in one compare-and-swap. A member already in, or not in,
    /// changes nothing (<c>Changed</c> false): a join sent again is not counted twice, a leave not counted in takes nobody's.
    /// </summary>
    internal static Task<(T Current, bool Changed)> ChangeMembershipAsync<T>(ResourceClient<T> client, string name, string ns, string member, bool join,
        CancellationToken ct, DateTimeOffset? heartbeat = null)
        where T : KubeObject
    {
        ArgumentException.ThrowIfNullOrEmpty(member);
        return ChangeCountAsync(client, name, ns, join ? +1 : -1, member, ct, heartbeat);
    }

    private static async Task<(T Current, bool Changed)> ChangeCountAsync<T>(ResourceClient<T> client, string name, string ns, int delta, string? member,
        CancellationToken ct, DateTimeOffset? heartbeat)
        where T : KubeObject
    {
        for (var attempt = 0; ; attempt++)
        {
            var current = await client.GetAsync(name, ns, ct).ConfigureAwait(false);
            if (delta > 0 && current.Metadata.DeletionTimestamp is not null) throw new SharedShadowChangedException();
            var members = KtConventions.ParseMembers(current).ToList();
            if (member is not null && members.Contains(member) == delta > 0) return (current, false);
            var n = KtConventions.ParseRefCount(current.Metadata.GetAnnotation(KtConventions.RefCountAnnotation));
            var value = Math.Max(0, n + delta).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var ops = new JsonPatchBuilder().Test("/metadata/resourceVersion", current.Metadata.ResourceVersion);
            if (current.Metadata.Annotations is null) ops.Add("/metadata/annotations", new System.Text.Json.Nodes.JsonObject());
            ops.Add("/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.RefCountAnnotation), value);
            if (member is not null)
            {
                if (delta > 0) members.Add(member);
                else members.Remove(member);
                ops.Add("/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.MembersAnnotation), string.Join(',', members));
            }
            if (heartbeat is { } now)
                ops.Add("/metadata/annotations/" + JsonPatchBuilder.Escape(KtConventions.HeartbeatAnnotation), KtConventions.FormatUnixSeconds(now));
            try
            {
                return (await client.PatchAsync(name, KubePatch.Json(ops), ns, ct).ConfigureAwait(false), true);
            }
            catch (KubeApiException e) when (e is KubeInvalidException or KubeConflictException && attempt < 50)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(2, 30)), ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Decrements <c>kt-ref-count</c> of the shared shadow; at 0 deletes it (only if nobody incremented meanwhile:
    /// resourceVersion precondition) and then its ConfigMap. Returns true when this call deleted the shadow.
    /// </summary>
    public async Task<bool> ReleaseSharedAsync(string ns, string name, bool isDeployment, CancellationToken cancellationToken = default, string? member = null) =>
        isDeployment
            ? await ReleaseAsync(_client.Deployments, ns, name, member, cancellationToken).ConfigureAwait(false)
            : await ReleaseAsync(_client.Pods, ns, name, member, cancellationToken).ConfigureAwait(false);

    private async Task<bool> ReleaseAsync<T>(ResourceClient<T> client, string ns, string name, string? member, CancellationToken ct) where T : KubeObject
    {
        T updated;
        try
        {
            // With a member, a count that is not listed as its own is nobody's to take (the join never reached the server).
            (updated, var counted) = await ChangeCountAsync(client, name, ns, -1, member, ct, null).ConfigureAwait(false);
            if (!counted) return false;
        }
        catch (KubeNotFoundException)
        {
            await DeleteConfigMapIfOrphanAsync(client, ns, name, ct).ConfigureAwait(false);
            return false;
        }
        if (KtConventions.ParseRefCount(updated.Metadata.GetAnnotation(KtConventions.RefCountAnnotation)) > 0) return false;
        try
        {
            await client.DeleteAsync(name, ns, new DeleteOptions
            {
                PreconditionResourceVersion = updated.Metadata.ResourceVersion,
                PropagationPolicy = PropagationPolicy.Background,
            }, ct).ConfigureAwait(false);
        }
        catch (KubeConflictException)
        {
            // Someone joined between our decrement and the delete: they hold it now.
            return false;
        }
        catch (KubeNotFoundException)
        {
            return false;
        }
        await DeleteConfigMapIfOrphanAsync(client, ns, name, ct).ConfigureAwait(false);
        return true;
    }

    private async Task DeleteConfigMapIfOrphanAsync<T>(ResourceClient<T> client, string ns, string name, CancellationToken ct) where T : KubeObject
    {
        // A new user may have re-created the shadow meanwhile; its ConfigMap must stay.
        if (await client.TryGetAsync(name, ns, ct).ConfigureAwait(false) is null)
        {
            await _client.ConfigMaps.DeleteIfExistsAsync(name, ns, null, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Cluster time now; makes one cheap request when no response has been seen yet.</summary>
    internal static async Task<DateTimeOffset> ClusterNowAsync(KubeClient client, CancellationToken ct)
    {
        if (!client.Clock.IsKnown) await client.GetServerVersionAsync(ct).ConfigureAwait(false);
        return client.Clock.UtcNow;
    }

    private static async Task<TResult> Guard<TResult>(ShadowPodSpec spec, string resource, Func<Task<TResult>> create)
    {
        try
        {
            return await create().ConfigureAwait(false);
        }
        catch (KubeForbiddenException e)
        {
            throw Forbidden(spec.Name, spec.Namespace, e, resource);
        }
    }

    internal static ShadowPodException Forbidden(string name, string ns, KubeForbiddenException e, string? resource = null)
    {
        var verb = string.IsNullOrEmpty(e.Verb) ? "create" : e.Verb;
        var what = string.IsNullOrEmpty(e.Resource) ? resource ?? "pods" : e.Resource;
        if (e.ServerMessage.Contains("PodSecurity", StringComparison.Ordinal) || e.ServerMessage.Contains("pod security", StringComparison.OrdinalIgnoreCase))
        {
            return new ShadowPodException(ShadowPodErrors.PodSecurityRejected, KtErrorCategory.SecurityError,
                $"Pod Security admission rejected the shadow pod '{name}' in namespace '{ns}': {e.ServerMessage}. The shadow runs sshd as root " +
                "with capability AUDIT_WRITE, which the 'baseline' level allows: use a namespace labelled " +
                "pod-security.kubernetes.io/enforce=baseline (or privileged), or ask an administrator for one.", name, "PodSecurity", e);
        }
        return new ShadowPodException(ShadowPodErrors.Forbidden, KtErrorCategory.PermissionDenied,
            $"Not allowed to {verb} {what} in namespace '{ns}' ({e.ServerMessage}). Ask for an RBAC Role in '{ns}' granting " +
            $"'{verb}' on '{what}' (KtConnect needs create/get/list/watch/patch/delete on pods and configmaps, create on pods/exec and " +
            "pods/portforward), or use a namespace where you have them.", name, "Forbidden", e);
    }

    /// <summary>Internal signal: the shared shadow changed under us; start the acquisition over.</summary>
    /// <summary>The counted object is being deleted (or went away) while someone tried to join it: start over.</summary>
    internal sealed class SharedShadowChangedException : Exception;
}

/// <summary>A ready private shadow: what was created, the running pod (its name is the port-forward target) and the host keys to pin.</summary>
public sealed record RunningShadow(ShadowPodHandle Handle, Pod Pod, IReadOnlyList<ShadowHostKey> HostKeys);

/// <summary>What <see cref="ShadowPods.CreateAsync"/> created. <see cref="DeleteAsync"/> (also DisposeAsync) removes exactly that, once.</summary>
public sealed class ShadowPodHandle : IAsyncDisposable
{
    private readonly KubeClient _client;
    private int _deleted;

    internal ShadowPodHandle(KubeClient client, ShadowPodSpec spec)
    {
        _client = client;
        Spec = spec;
    }

    public ShadowPodSpec Spec { get; }

    public string Namespace => Spec.Namespace;

    public string Name => Spec.Name;

    public bool IsDeployment => Spec.UseDeployment;

    /// <summary>kt-target (always set for a Deployment).</summary>
    public string? Target => Spec.Target;

    public bool ConfigMapCreated { get; internal set; }

    public bool WorkloadCreated { get; internal set; }

    /// <summary>The objects for the heartbeat: the pod or Deployment and the ConfigMap.</summary>
    public IReadOnlyList<KtObjectRef> Objects => KtObjectRef.Shadow(IsDeployment, Namespace, Name);

    public async Task DeleteAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _deleted, 1) != 0) return;
        try
        {
            var background = new DeleteOptions { PropagationPolicy = PropagationPolicy.Background };
            if (WorkloadCreated)
            {
                if (IsDeployment) await _client.Deployments.DeleteIfExistsAsync(Name, Namespace, background, cancellationToken).ConfigureAwait(false);
                else await _client.Pods.DeleteIfExistsAsync(Name, Namespace, background, cancellationToken).ConfigureAwait(false);
                WorkloadCreated = false;
            }
            if (ConfigMapCreated)
            {
                await _client.ConfigMaps.DeleteIfExistsAsync(Name, Namespace, null, cancellationToken).ConfigureAwait(false);
                ConfigMapCreated = false;
            }
        }
        catch
        {
            Volatile.Write(ref _deleted, 0); // let a later undo try again
            throw;
        }
    }

    public async ValueTask DisposeAsync() => await DeleteAsync(CancellationToken.None).ConfigureAwait(false);
}

/// <summary>One user's hold on the shared shadow. <see cref="ReleaseAsync"/> (also DisposeAsync) decrements once.</summary>
public sealed class SharedShadowLease : IAsyncDisposable
{
    private readonly ShadowPods _owner;
    private readonly string? _member;
    private int _released;

    internal SharedShadowLease(ShadowPods owner, string ns, string name, bool isDeployment, bool created, int refCount, string? target,
        string authorizedKey, string? privateKey, string? member = null)
    {
        _owner = owner;
        _member = member;
        Namespace = ns;
        Name = name;
        IsDeployment = isDeployment;
        Created = created;
        RefCountAfterAcquire = refCount;
        Target = target;
        AuthorizedKey = authorizedKey;
        PrivateKey = privateKey;
    }

    public string Namespace { get; }

    public string Name { get; }

    public bool IsDeployment { get; }

    /// <summary>True when this call created the shadow (the caller's keys are in use); false when it joined.</summary>
    public bool Created { get; }

    public int RefCountAfterAcquire { get; }

    public string? Target { get; }

    /// <summary>The authorized key line in the ConfigMap.</summary>
    public string AuthorizedKey { get; }

    /// <summary>The private key stored for sharing (opaque text), null when the creator stored none.</summary>
    public string? PrivateKey { get; }

    /// <summary>True when the last release deleted the shadow.</summary>
    public bool DeletedOnRelease { get; private set; }

    public IReadOnlyList<KtObjectRef> Objects => KtObjectRef.Shadow(IsDeployment, Namespace, Name);

    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        DeletedOnRelease = await _owner.ReleaseSharedAsync(Namespace, Name, IsDeployment, cancellationToken, _member).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync() => await ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
}
