using System.Globalization;
using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// Any application image: the KubeSim executable's <c>echo</c> mode on the pod's TCP container ports
/// (80 when none are declared), answering every HTTP request with the pod's name, the request line and
/// its headers (<see cref="EchoServer"/>).
/// </summary>
public sealed class EchoLauncher : IImageLauncher
{
    public string Name => "echo";

    public Task<PodCommand> PrepareAsync(PodLaunchContext context, CancellationToken cancellationToken)
    {
        var ports = context.Spec.ContainerPorts
            .Where(p => string.Equals(p.Protocol, "TCP", StringComparison.OrdinalIgnoreCase))
            .Select(p => p.Port).Distinct().ToList();
        if (ports.Count == 0) ports.Add(80);
        List<string> argv = [.. KubeSimCommand(), "echo", "--name", context.Spec.Name, "--namespace", context.Spec.Namespace];
        foreach (var p in ports) argv.AddRange(["--port", p.ToString(CultureInfo.InvariantCulture)]);
        var env = new Dictionary<string, string> { ["DOTNET_gcServer"] = "0", ["DOTNET_TieredPGO"] = "0" };
        return Task.FromResult(new PodCommand(argv, env, ports));
    }

    /// <summary>How to start this assembly's executable: itself when it is the running apphost, else `dotnet exec KtConnect.KubeSim.dll`.</summary>
    public static IReadOnlyList<string> KubeSimCommand()
    {
        var dll = typeof(EchoServer).Assembly.Location;
        if (Environment.ProcessPath is { } self && Path.GetFileName(self) == Path.GetFileNameWithoutExtension(dll)) return [self];
        var host = Environment.ProcessPath is { } p && Path.GetFileName(p) == "dotnet"
            ? p
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return [host, "exec", dll];
    }
}
