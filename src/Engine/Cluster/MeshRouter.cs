using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>
/// Leaving mesh auto mode's shared router (<c>&lt;service&gt;-kt-router</c>), for a session that stops and for the undo of
/// a crashed one alike. A user is counted in <c>kt-ref-count</c> (kt-connect's) and, for KtConnect sessions, listed by
/// session in <see cref="KtConventions.MembersAnnotation"/>, changed in the same patch: only a listed session is taken
/// out, so a join that never reached the server, or a leave already done, takes nobody else's count.
/// </summary>
public static class MeshRouter
{
    /// <summary>The router binary in kt-connect's router image.</summary>
    public const string Command = "/usr/sbin/router";

    /// <summary>
    /// Runs a router command. nginx resolves the upstream Services when it loads the config, and cluster DNS learns a
    /// Service created a moment ago with a little delay: "host not found" is retried for a while before it counts.
    /// </summary>
    public static async Task<ExecOutput> RunAsync(KubeClient client, string ns, string router, IReadOnlyList<string> command, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var result = await client.RunAsync(router, command, ns, KtConventions.ContainerName, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (result.ExitCode == 0 || !result.Stderr.Contains("host not found", StringComparison.Ordinal) || DateTime.UtcNow > deadline) return result;
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Takes <paramref name="member"/> out of the router of <paramref name="service"/>, under the Service's kt-lock unless
    /// the caller holds it (<paramref name="lockHeld"/>), so no other session joins half-way: count − 1 and
    /// <c>router remove &lt;mark&gt;</c>. The last user puts the Service's selector back first (keeping the lock), then
    /// deletes the stuntman and the router. Nothing happens when the router does not list the member. A router that is
    /// gone is left to its other users (they join a new one) unless <paramref name="restoreIfGone"/>: a stopping session
    /// that was in it gives the Service its selector back and deletes the stuntman, as the last user would.
    /// Without <paramref name="warn"/> (an undo) a lock held by someone else is an error (<c>ServiceLocked</c>), so the
    /// undo is tried again later; a stopping session leaves without it, with a warning.
    /// </summary>
    public static async Task LeaveAsync(KubeClient client, string ns, string service, string member, string mark, bool lockHeld,
        bool restoreIfGone, Action<string>? warn, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        var name = KtConventions.RouterName(service);
        bool Concerns(Pod? router) => router is null ? restoreIfGone : KtConventions.ParseMembers(router).Contains(member);
        if (!Concerns(await client.Pods.TryGetAsync(name, ns, ct).ConfigureAwait(false))) return;
        ServiceLock? serviceLock = null;
        try
        {
            if (!lockHeld) serviceLock = await ServiceLock.AcquireAsync(client, ns, service, attempts: warn is null ? 3 : 10, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (KtException e) when (warn is not null && (e is KubeNotFoundException || e.ErrorId == ServiceLock.LockedErrorId))
        {
            warn($"Leaving the router without the lock of Service {ns}/{service}: {e.Message}");
        }
        catch (KubeNotFoundException)
        {
            // The Service is gone: there is no lock to take and no selector to give back.
        }
        try
        {
            // Again under the lock: a router made since by another user's rejoin is theirs.
            var router = await client.Pods.TryGetAsync(name, ns, ct).ConfigureAwait(false);
            if (!Concerns(router)) return;
            if (router is not null)
            {
                try
                {
                    // Others stay: the version's route goes first, while this session is still counted, so an undo that
                    // fails here keeps its membership and is tried again whole.
                    var removed = KtConventions.ParseRefCount(router.Metadata.GetAnnotation(KtConventions.RefCountAnnotation)) > 1;
                    if (removed) await RemoveVersionAsync(client, ns, service, name, member, mark, warn, ct).ConfigureAwait(false);
                    var (left, counted) = await ShadowPods.ChangeMembershipAsync(client.Pods, name, ns, member, join: false, ct).ConfigureAwait(false);
                    if (!counted) return;
                    if (KtConventions.ParseRefCount(left.Metadata.GetAnnotation(KtConventions.RefCountAnnotation)) > 0)
                    {
                        // Someone joined without the lock (a ktctl) since the count was read.
                        if (!removed) await RemoveVersionAsync(client, ns, service, name, member, mark, warn, ct).ConfigureAwait(false);
                        return;
                    }
                    router = left;
                }
                catch (KubeNotFoundException)
                {
                    if (!restoreIfGone) return;
                    router = null;
                }
            }
            // The last user: the selector back first, so requests never meet a deleted router.
            try
            {
                await new StaleResources(client).RestoreServiceAsync(ns, service, null, removeLock: false, ct).ConfigureAwait(false);
            }
            catch (KubeNotFoundException)
            {
                warn?.Invoke($"Service {ns}/{service} no longer exists: there is no selector to restore.");
            }
            await client.Services.DeleteIfExistsAsync(KtConventions.StuntmanName(service), ns, cancellationToken: ct).ConfigureAwait(false);
            // Only a router nobody counts in: one joined since (by a ktctl, which takes no lock) is theirs now. Other writes
            // (a heartbeat already on its way, the kubelet's status) only change its resourceVersion.
            for (var attempt = 0; router is not null; attempt++)
            {
                try
                {
                    await client.Pods.DeleteIfExistsAsync(name, ns, new DeleteOptions { PreconditionResourceVersion = router.Metadata.ResourceVersion }, ct)
                        .ConfigureAwait(false);
                    return;
                }
                catch (KubeConflictException) when (attempt < 10)
                {
                    router = await client.Pods.TryGetAsync(name, ns, ct).ConfigureAwait(false);
                    if (router is not null && KtConventions.ParseRefCount(router.Metadata.GetAnnotation(KtConventions.RefCountAnnotation)) > 0)
                    {
                        warn?.Invoke($"The router {ns}/{name} was joined again while its last user left; it stays.");
                        return;
                    }
                }
            }
        }
        finally
        {
            if (serviceLock is not null) await serviceLock.ReleaseAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>router remove &lt;mark&gt;</c>, unless another session serves that version now (its mesh Service names that
    /// session): the version's route is theirs then.
    /// </summary>
    private static async Task RemoveVersionAsync(KubeClient client, string ns, string service, string router, string member, string mark,
        Action<string>? warn, CancellationToken ct)
    {
        var version = mark[(mark.IndexOf(':', StringComparison.Ordinal) + 1)..];
        var meshService = await client.Services.TryGetAsync(KtConventions.MeshShadowName(service, version), ns, ct).ConfigureAwait(false);
        if (meshService?.Metadata.GetAnnotation(ExchangeHolders.SessionAnnotation) is { } owner && owner != member) return;
        var result = await RunAsync(client, ns, router, [Command, "remove", mark], ct).ConfigureAwait(false);
        if (result.ExitCode == 0) return;
        var message = $"'router remove {mark}' in {ns}/{router} failed: {result.Stderr.Trim()}";
        if (warn is null) throw new KtException("RouterCommandFailed", KtErrorCategory.InvalidOperation, message, null, router);
        warn(message);
    }
}
