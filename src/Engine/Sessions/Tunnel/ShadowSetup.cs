using KtConnect.Engine.Kube;
using KtConnect.Engine.Ssh;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Cluster.Recovery;

namespace KtConnect.Engine.Sessions.Tunnel;

/// <summary>A running shadow pod and the SSH link to it, owned by a session (undone when it stops).</summary>
/// <param name="Shadow">The pod (or Deployment) as created and seen Running, with its pinned host keys.</param>
/// <param name="Link">Pooled SSH over port-forward to the shadow's sshd.</param>
/// <param name="Heartbeat">Keeps the created objects fresh; track more objects on it.</param>
public sealed record ShadowConnection(RunningShadow Shadow, ShadowLink Link, Heartbeat Heartbeat)
{
    public string PodName => Shadow.Pod.Metadata.Name!;
}

/// <summary>
/// The first steps every shadow-based session takes (DESIGN.md §3): a key pair that lives only in this process,
/// the shadow created and seen Running with its host key read through the API, heartbeats, then SSH with that
/// host key pinned. Each step registers its undo with the session as it is made; link state changes become
/// session states (Reconnecting, Running, Failed).
/// </summary>
public static class ShadowSetup
{
    public static async Task<ShadowConnection> StartAsync(SessionContext context, KubeClient client, ShadowOptions options,
        Func<string, ShadowPodSpec> specForKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(specForKey);
        var output = context.Output;
        var identity = SshKeyPair.GenerateEcdsa("ktconnect-" + context.InstanceId.ToString("N")[..8]);
        context.Defer("forget the session key", _ => { identity.Dispose(); return Task.CompletedTask; });
        var spec = specForKey(identity.ToAuthorizedKeysLine());
        output.Verbose($"Creating shadow {(spec.UseDeployment ? "deployment" : "pod")} {spec.Namespace}/{spec.Name}");
        var defer = await ClusterRecovery.JournalShadowAsync(context.Defer, context.JournalId, client, options.Journal, spec, cancellationToken).ConfigureAwait(false);
        var shadow = await new ShadowPods(client).CreateRunningAsync(spec, defer, output, options.PodCreationTimeout, cancellationToken)
            .ConfigureAwait(false);
        foreach (var o in shadow.Handle.Objects) context.AddResource(o.Kind.ToString(), $"{o.Namespace}/{o.Name}", "Created");

        var heartbeat = new Heartbeat(client, options.HeartbeatInterval, output);
        heartbeat.Track(shadow.Handle.Objects);
        heartbeat.Start();
        context.Defer("stop heartbeats", _ => heartbeat.DisposeAsync().AsTask());

        output.Progress("Connecting", "SSH to the shadow pod");
        var link = await ShadowLink.StartAsync(client, new ShadowLinkOptions
        {
            Namespace = spec.Namespace,
            PodName = shadow.Pod.Metadata.Name!,
            Identity = identity,
            ExpectedHostKeys = shadow.HostKeys.Select(k => SshPublicKey.ParseAuthorizedKey(k.Algorithm + " " + k.Base64Key)).ToList(),
        }, cancellationToken: cancellationToken).ConfigureAwait(false);
        context.Defer("close the SSH link", _ => link.DisposeAsync().AsTask());
        link.Reconnecting += (_, e) => context.ReportReconnecting(e.Cause);
        link.Recovered += (_, _) => context.ReportRecovered();
        link.Failed += (_, e) => context.Fail(e.Cause);
        return new ShadowConnection(shadow, link, heartbeat);
    }
}
