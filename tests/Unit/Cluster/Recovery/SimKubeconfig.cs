using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster.Recovery;

/// <summary>A kubeconfig file pointing at a <see cref="SimCluster"/> (admin token, KubeSim's CA), for code that reads one.</summary>
internal static class SimKubeconfig
{
    public static string Write(SimCluster sim, string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "kubeconfig");
        File.WriteAllText(path, sim.Server.KubeconfigText(sim.Namespace));
        return path;
    }
}
