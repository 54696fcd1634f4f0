using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>Where a shadow pod is on its way to Ready.</summary>
public enum ShadowPodStage
{
    Scheduling,
    PullingImage,
    Starting,
    Ready,
}

/// <summary>One look at a pod: its stage, a status line with a percentage for progress, or the failure that ends the wait.</summary>
public sealed record ShadowPodProgress(ShadowPodStage Stage, string Status, int Percent, ShadowPodException? Failure = null)
{
    public bool IsReady => Stage == ShadowPodStage.Ready && Failure is null;
}

/// <summary>
/// Reads a pod's status the way a person reading <c>kubectl describe</c> would, and turns the states that will not fix
/// themselves in time (image pull failures, unschedulable, crash loops, termination) into one precise error.
/// </summary>
public static class ShadowPodStatus
{
    private static readonly HashSet<string> ImagePullReasons = new(StringComparer.Ordinal)
    {
        "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable", "ImageInspectError",
    };

    private static readonly HashSet<string> CrashReasons = new(StringComparer.Ordinal)
    {
        "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    };

    public static ShadowPodProgress Evaluate(Pod pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var name = pod.Metadata.Name ?? "";
        var status = pod.Status;
        var image = pod.Spec?.Containers.FirstOrDefault(c => c.Name == KtConventions.ContainerName)?.Image
            ?? pod.Spec?.Containers.FirstOrDefault()?.Image ?? "?";
        if (pod.Metadata.DeletionTimestamp is not null)
        {
            return Fail(ShadowPodStage.Starting, new ShadowPodException(ShadowPodErrors.Deleted, KtErrorCategory.OperationStopped,
                $"The shadow pod '{name}' is being deleted while KtConnect waits for it (deleted by someone else, or evicted). Run the command again.",
                name, "Deleted"));
        }
        if (status?.Phase is "Failed" or "Succeeded")
        {
            var terminated = status.ContainerStatuses?.Select(c => c.State?.Terminated).FirstOrDefault(t => t is not null);
            var detail = Join(status.Reason, status.Message, terminated is null ? null : Describe(terminated));
            return Fail(ShadowPodStage.Starting, Crashed(name, status.Reason ?? terminated?.Reason ?? status.Phase,
                $"The shadow pod '{name}' stopped (phase {status.Phase}{Suffix(detail)})."));
        }
        var scheduled = status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
        if (scheduled is { Status: "False", Reason: "Unschedulable" })
        {
            return Fail(ShadowPodStage.Scheduling, new ShadowPodException(ShadowPodErrors.Unschedulable, KtErrorCategory.ResourceUnavailable,
                $"The shadow pod '{name}' cannot be scheduled: \"{scheduled.Message}\". Free capacity or choose nodes that fit with " +
                "--nodeSelector (Connect-KtCluster -NodeSelector), or lower --podQuota.", name, "Unschedulable"));
        }
        foreach (var cs in status?.ContainerStatuses ?? [])
        {
            var waiting = cs.State?.Waiting;
            if (waiting?.Reason is { } reason && ImagePullReasons.Contains(reason))
            {
                return Fail(ShadowPodStage.PullingImage, new ShadowPodException(ShadowPodErrors.ImagePullFailed, KtErrorCategory.ResourceUnavailable,
                    $"The cluster cannot pull the shadow image '{cs.Image ?? image}' ({reason}{Suffix(waiting.Message)}). Use an image the nodes can reach " +
                    "with --image (Connect-KtCluster -Image), and for a private registry give its pull secret with --imagePullSecret (-ImagePullSecret).",
                    name, reason));
            }
            if (waiting?.Reason is { } crash && CrashReasons.Contains(crash))
            {
                var last = cs.LastState?.Terminated;
                return Fail(ShadowPodStage.Starting, Crashed(name, crash,
                    $"The shadow container of '{name}' cannot run ({crash}{Suffix(Join(waiting.Message, last is null ? null : Describe(last)))}). " +
                    "Check that --image is a kt-connect shadow image and read the pod's log (kubectl logs)."));
            }
            if (cs.State?.Terminated is { } t)
            {
                return Fail(ShadowPodStage.Starting, Crashed(name, t.Reason ?? "Terminated",
                    $"The shadow container of '{name}' terminated ({Describe(t)}). Check that --image is a kt-connect shadow image and read the pod's log."));
            }
        }
        if (string.IsNullOrEmpty(pod.Spec?.NodeName) && scheduled?.Status != "True")
        {
            return new ShadowPodProgress(ShadowPodStage.Scheduling, "Scheduling", 20);
        }
        var running = status?.ContainerStatuses?.Any(c => c.State?.Running is not null) == true;
        if (!running)
        {
            var reason = status?.ContainerStatuses?.Select(c => c.State?.Waiting?.Reason).FirstOrDefault(r => r is not null);
            return new ShadowPodProgress(ShadowPodStage.PullingImage, "Pulling image " + image + (reason is null ? "" : " (" + reason + ")"), 50);
        }
        var ready = status?.Conditions?.FirstOrDefault(c => c.Type == "Ready")?.Status == "True";
        if (status?.Phase == "Running" && ready) return new ShadowPodProgress(ShadowPodStage.Ready, "Running", 100);
        return new ShadowPodProgress(ShadowPodStage.Starting, "Starting", 80);
    }

    internal static string StageText(ShadowPodStage stage) => stage switch
    {
        ShadowPodStage.Scheduling => "scheduling (no node accepted it yet)",
        ShadowPodStage.PullingImage => "pulling the image / creating the container",
        ShadowPodStage.Starting => "starting (container running, not ready)",
        _ => "ready",
    };

    private static ShadowPodProgress Fail(ShadowPodStage stage, ShadowPodException e) => new(stage, e.Reason ?? e.ErrorId, 100, e);

    private static ShadowPodException Crashed(string name, string? reason, string message) =>
        new(ShadowPodErrors.Crashed, KtErrorCategory.InvalidOperation, message, name, reason);

    private static string Describe(ContainerStateTerminated t) =>
        Join("exit code " + t.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture), t.Reason, Tail(t.Message)) ?? "";

    private static string? Join(params string?[] parts)
    {
        var kept = parts.Where(p => !string.IsNullOrWhiteSpace(p)).ToArray();
        return kept.Length == 0 ? null : string.Join(": ", kept);
    }

    private static string Suffix(string? detail) => string.IsNullOrWhiteSpace(detail) ? "" : ": " + detail;

    private static string? Tail(string? s) => s is null || s.Length <= 300 ? s?.Trim() : "..." + s[^300..].Trim();
}
