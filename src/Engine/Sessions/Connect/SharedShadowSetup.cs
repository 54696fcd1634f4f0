using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>One user's hold on the shared shadow and the key it logs in with (the creator's, kept in the ConfigMap).</summary>
public sealed record SharedShadowAccess(SharedShadowLease Lease, SshKeyPair Identity);

/// <summary>A shared shadow seen Running, its pinned host keys, and the SSH link to it.</summary>
public sealed record SharedShadowConnection(SharedShadowLease Lease, string PodName, ShadowLink Link, Heartbeat Heartbeat);

/// <summary>
/// kt-connect's <c>--shareShadow</c> (reference/kt-connect.md §2, <c>tryGetExistingShadows</c>): every user of a namespace
/// joins <c>kt-connect-shadow-daemon</c>, counted in <c>kt-ref-count</c>; the last one out deletes it. The ConfigMap keeps
/// the creator's RSA key as PEM PKCS#1 (what ktctl writes and reads), so joiners, ours or ktctl, log in with it. Unlike
/// ktctl every user heartbeats the shared objects, so they stay fresh after the creator leaves.
/// </summary>
public static class SharedShadowSetup
{
    /// <summary>ktctl generates RSA-2048 (util/ssh.go); the same size keeps a joining ktctl's expectations.</summary>
    public const int RsaBits = 2048;

    /// <summary>
    /// Creates or joins the shared shadow and returns the key to log in with. The release is handed to
    /// <paramref name="defer"/> as soon as the count is held (without one, an unusable stored key releases here before
    /// the error).
    /// </summary>
    public static async Task<SharedShadowAccess> AcquireAsync(ShadowPods shadows, Func<string, ShadowPodSpec> specForKey, DeferUndo? defer,
        string comment, CancellationToken cancellationToken, string? member = null)
    {
        ArgumentNullException.ThrowIfNull(shadows);
        ArgumentNullException.ThrowIfNull(specForKey);
        var own = SshKeyPair.GenerateRsa(RsaBits, comment);
        SharedShadowLease lease;
        try
        {
            var spec = specForKey(own.ToAuthorizedKeysLine()) with { PrivateKey = own.ToPkcs1Pem() };
            lease = await shadows.AcquireSharedAsync(spec, defer, cancellationToken, member).ConfigureAwait(false);
        }
        catch
        {
            own.Dispose();
            throw;
        }
        // Even a creator may find a ConfigMap left by a user leaving at that moment; the pod mounts whatever key it holds.
        if (lease.Created && lease.AuthorizedKey == own.ToAuthorizedKeysLine()) return new SharedShadowAccess(lease, own);
        own.Dispose();
        try
        {
            return new SharedShadowAccess(lease, JoinerIdentity(lease));
        }
        catch
        {
            if (defer is null) await lease.ReleaseAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The creator's key from the lease; refused when absent, unreadable, or not the key the shadow authorizes.</summary>
    internal static SshKeyPair JoinerIdentity(SharedShadowLease lease)
    {
        ArgumentNullException.ThrowIfNull(lease);
        if (string.IsNullOrWhiteSpace(lease.PrivateKey))
            throw Unusable(lease, "its ConfigMap holds no privateKey (it was created by a tool that does not share its key)");
        SshKeyPair identity;
        try
        {
            identity = SshKeyPair.Parse(lease.PrivateKey);
        }
        catch (KtException e)
        {
            throw Unusable(lease, "the privateKey in its ConfigMap cannot be read: " + e.Message, e);
        }
        SshPublicKey authorized;
        try
        {
            authorized = SshPublicKey.ParseAuthorizedKey(lease.AuthorizedKey);
        }
        catch (KtException e)
        {
            identity.Dispose();
            throw Unusable(lease, "the authorized key in its ConfigMap cannot be read: " + e.Message, e);
        }
        if (!authorized.Blob.Span.SequenceEqual(identity.PublicKey.Blob.Span))
        {
            identity.Dispose();
            throw Unusable(lease, "the privateKey in its ConfigMap is not the key its sshd authorizes");
        }
        return identity;
    }

    private static KtException Unusable(SharedShadowLease lease, string why, Exception? inner = null) =>
        new("SharedShadowKeyUnusable", KtErrorCategory.InvalidData,
            $"Cannot join the shared shadow {lease.Namespace}/{lease.Name}: {why}. Connect without --shareShadow (-ShareShadow), " +
            $"or remove the shared shadow when nobody uses it (kt clean).", inner, $"{lease.Namespace}/{lease.Name}");

    /// <summary>
    /// The shared counterpart of <see cref="ShadowSetup.StartAsync"/>: acquire (release deferred), wait Running, read and pin
    /// the host keys through exec, heartbeat the shared objects, then the SSH link; each undo registered as it is made.
    /// </summary>
    public static async Task<SharedShadowConnection> StartAsync(SessionContext context, KubeClient client, string ns, ShadowOptions options,
        Func<string, ShadowPodSpec> specForKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        var output = context.Output;
        var shadows = new ShadowPods(client);
        output.Progress(ShadowPods.ProgressActivity, "Joining the shared shadow " + KtConventions.SharedShadowName, 5);
        // Journalled before the join, and listed in the shadow with its count: a crash's undo releases this session's count.
        var journal = options.JournalOrDefault();
        var entry = await ClusterJournal.RecordAsync(journal, new ClusterChange
        {
            Server = ClusterRecovery.ServerKey(client.Configuration.Server),
            Namespace = ns,
            ObjectKind = options.UseShadowDeployment ? KtObjectKind.Deployment : KtObjectKind.Pod,
            Name = KtConventions.SharedShadowName,
            Change = ClusterChangeKind.Joined,
        }, context.JournalId, cancellationToken).ConfigureAwait(false);
        // A join whose answer never came may have counted this session all the same: the release goes by the shadow's list.
        var defer = ClusterRecovery.CompleteAfterUndo(context.Defer, journal, [entry], "the shared shadow",
            ct => shadows.ReleaseSharedAsync(ns, KtConventions.SharedShadowName, options.UseShadowDeployment, ct, context.JournalId));
        var access = await AcquireAsync(shadows, specForKey, defer, "ktconnect-" + context.InstanceId.ToString("N")[..8], cancellationToken,
            context.JournalId).ConfigureAwait(false);
        var lease = access.Lease;
        context.Defer("forget the session key", _ => { access.Identity.Dispose(); return Task.CompletedTask; });
        output.Verbose(lease.Created
            ? $"Created the shared shadow {lease.Namespace}/{lease.Name} (kt-ref-count 1)"
            : $"Joined the shared shadow {lease.Namespace}/{lease.Name} (kt-ref-count {lease.RefCountAfterAcquire})");
        foreach (var o in lease.Objects) context.AddResource(o.Kind.ToString(), $"{o.Namespace}/{o.Name}", lease.Created ? "Shared, created" : "Shared, joined");

        var pod = await shadows.WaitRunningAsync(lease, output, options.PodCreationTimeout, cancellationToken).ConfigureAwait(false);
        var podName = pod.Metadata.Name ?? lease.Name;
        var hostKeys = await shadows.ReadHostKeysAsync(lease.Namespace, podName, cancellationToken).ConfigureAwait(false);

        var heartbeat = new Heartbeat(client, options.HeartbeatInterval, output);
        heartbeat.Track(lease.Objects);
        heartbeat.Start();
        context.Defer("stop heartbeats", _ => heartbeat.DisposeAsync().AsTask());

        output.Progress("Connecting", "SSH to the shared shadow pod");
        var link = await ShadowLink.StartAsync(client, new ShadowLinkOptions
        {
            Namespace = lease.Namespace,
            PodName = podName,
            Identity = access.Identity,
            ExpectedHostKeys = hostKeys.Select(k => SshPublicKey.ParseAuthorizedKey(k.Algorithm + " " + k.Base64Key)).ToList(),
        }, cancellationToken: cancellationToken).ConfigureAwait(false);
        context.Defer("close the SSH link", _ => link.DisposeAsync().AsTask());
        link.Reconnecting += (_, e) => context.ReportReconnecting(e.Cause);
        link.Recovered += (_, _) => context.ReportRecovered();
        link.Failed += (_, e) => context.Fail(e.Cause);
        return new SharedShadowConnection(lease, podName, link, heartbeat);
    }
}
