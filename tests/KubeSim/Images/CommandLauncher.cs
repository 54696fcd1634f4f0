using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// An application container that sets <c>command</c>: command + args run as the pod's main process, on the host's
/// programs (pods share the host's file system), e.g. <c>["sh", "-c", "while read l; do echo got $l; done"]</c>.
/// There is no readiness probe, so the pod is Ready as soon as it runs, as a real pod without probes.
/// </summary>
public sealed class CommandLauncher : IImageLauncher
{
    public string Name => "command";

    public Task<PodCommand> PrepareAsync(PodLaunchContext context, CancellationToken cancellationToken)
    {
        var spec = context.Spec;
        if (spec.Command is not { Count: > 0 } command)
            throw new Engine.KtException("SimInvalidCommand", Engine.KtErrorCategory.InvalidArgument, $"Pod {spec.Key} has no command.", target: spec.Key);
        return Task.FromResult(new PodCommand([.. command, .. spec.Args ?? []], new Dictionary<string, string>(), []));
    }
}
