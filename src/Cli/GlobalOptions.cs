using KtConnect.Engine.Sessions;

namespace KtConnect.Cli;

/// <summary>The global flags every cluster verb shares (reference/kt-connect.md §1.2), onto any verb's options.</summary>
internal static class GlobalOptions
{
    internal static T Apply<T>(ParsedArgs a, T seed) where T : ShadowOptions
    {
        var options = seed with
        {
            Kubeconfig = a.Get("kubeconfig"),
            Context = a.Get("context"),
            Namespace = a.Get("namespace"),
            ImagePullSecret = a.Get("imagePullSecret"),
            ServiceAccount = a.Get("serviceAccount", "default"),
            NodeSelector = a.Map("nodeSelector"),
            Labels = a.Map("withLabel"),
            Annotations = a.Map("withAnnotation"),
            PodQuota = a.Get("podQuota"),
            UseShadowDeployment = a.Flag("useShadowDeployment"),
            AlwaysPullImage = a.Flag("forceUpdate"),
            PodCreationTimeout = TimeSpan.FromSeconds(a.Int("podCreationTimeout", 60)),
        };
        // The cmdlets' range: 0 would create a shadow only to time it out at once.
        if (options.PodCreationTimeout.TotalSeconds is < 1 or > 3600)
            throw ParsedArgs.Usage($"--podCreationTimeout must be 1 to 3600 seconds, not {options.PodCreationTimeout.TotalSeconds}");
        if (a.Get("image") is { } image) options = options with { Image = image };
        if (a.Get("ipVersion") is { } ipVersion && ipVersion is not ("4" or "6")) throw ParsedArgs.Usage($"--ipVersion must be 4 or 6, not '{ipVersion}'");
        return (T)options;
    }
}
