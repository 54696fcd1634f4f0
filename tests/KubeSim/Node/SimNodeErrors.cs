using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// The image is unknown to the catalog: the node never created anything for the pod. ErrorId is the
/// kubelet's reason, "ErrImagePull"; a control plane reports it in the container's waiting state and
/// turns repeats into "ImagePullBackOff".
/// </summary>
public sealed class SimImagePullException(string image, string podKey)
    : KtException(ReasonErrImagePull, KtErrorCategory.ObjectNotFound,
        $"Failed to pull image \"{image}\" for pod {podKey}: the simulated registry does not know it.", target: image)
{
    public const string ReasonErrImagePull = "ErrImagePull";

    public string Image { get; } = image;

    public string PodKey { get; } = podKey;
}
