using KtConnect.Engine.Cluster.Tunnel;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// The remote forwards of an exchange or preview (DESIGN.md §2): for each port, <c>tcpip-forward</c> on
/// 0.0.0.0:<c>targetPort</c> in the shadow pod (its sshd runs with GatewayPorts yes), each connection relayed to
/// 127.0.0.1:<c>localPort</c>. Each forward is registered with the session's undo stack as it is made.
/// </summary>
internal static class RemoteForwards
{
    /// <summary>Warns (once per port, unless skipped) about local ports nothing listens on: a warning, not a refusal.</summary>
    public static async Task CheckLocalPortsAsync(IReadOnlyList<PortMapping> mappings, bool skip, IKtOutput output, CancellationToken cancellationToken)
    {
        if (skip) return;
        foreach (var m in mappings.DistinctBy(m => m.LocalPort))
        {
            if (!await LocalRelay.IsListeningAsync(m.LocalPort, cancellationToken).ConfigureAwait(false))
                output.Warning($"Nothing listens on 127.0.0.1:{m.LocalPort} yet: connections to it are closed until a local server runs there.");
        }
    }

    public static Task<IReadOnlyList<LocalRelay>> StartAsync(SessionContext context, ShadowLink link, IReadOnlyList<PortMapping> mappings,
        string serviceName, CancellationToken cancellationToken) => StartAsync(context, link, mappings, serviceName, announce: true, cancellationToken);

    /// <summary>As above; <paramref name="announce"/> false for a replacement shadow (its forwards are listed already).</summary>
    public static async Task<IReadOnlyList<LocalRelay>> StartAsync(SessionContext context, ShadowLink link, IReadOnlyList<PortMapping> mappings,
        string serviceName, bool announce, CancellationToken cancellationToken)
    {
        var relays = new List<LocalRelay>();
        foreach (var m in mappings)
        {
            var relay = new LocalRelay(m.LocalPort, context.Output);
            var forward = await link.ForwardRemoteAsync("0.0.0.0", m.TargetPort, relay.HandleAsync, cancellationToken).ConfigureAwait(false);
            context.Defer($"stop the remote forward of shadow port {m.TargetPort}", _ => forward.DisposeAsync().AsTask());
            var description = m.Describe(serviceName);
            if (announce)
            {
                context.AddLocalPort(description);
                context.Output.Verbose("Forwarding " + description);
            }
            relays.Add(relay);
        }
        return relays;
    }
}
