using System.Diagnostics;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>`KtConnect.KubeSim start --with-node` / `stop`: the whole cluster as its own process, also after a kill -9.</summary>
[Collection(SimClusterCollection.Name)]
public sealed class SimClusterProcessTests
{
    private static readonly string KubeSimDll = typeof(SimCluster).Assembly.Location;

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Start_with_node_serves_a_cluster_whose_pods_run_and_stop_removes_everything_after_a_kill_9()
    {
        var state = Directory.CreateTempSubdirectory("ktsim-proc-").FullName;
        Process? process = null;
        string? prefix = null;
        try
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { KubeSimDll, "start", "--state", state, "--with-node" }) psi.ArgumentList.Add(a);
            process = Process.Start(psi)!;
            using var startup = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var kubeconfig = await process.StandardOutput.ReadLineAsync(startup.Token);
            if (kubeconfig is null) Assert.Fail("no kubeconfig path printed: " + await process.StandardError.ReadToEndAsync(startup.Token));
            Assert.Equal(Path.Combine(state, "kubeconfig"), kubeconfig);
            var laptop = (await File.ReadAllTextAsync(Path.Combine(state, "laptop"))).Trim();
            prefix = laptop[..(laptop.LastIndexOf('-') + 1)];

            // The kubeconfig works from inside the laptop namespace: create a pod there with curl and watch it run.
            var config = await File.ReadAllTextAsync(kubeconfig);
            var server = Line(config, "server: ");
            var token = Line(config, "token: ");
            var ca = Path.Combine(state, "ca.crt");
            await File.WriteAllBytesAsync(ca, Convert.FromBase64String(Line(config, "certificate-authority-data: ")));
            var pod = """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"proc-echo"},"spec":{"containers":[{"name":"c","image":"ktconnect/echo:1.0","ports":[{"containerPort":8080}]}]}}""";
            string[] curl = ["ip", "netns", "exec", laptop, "curl", "-sS", "--cacert", ca, "-H", "Authorization: Bearer " + token];
            var created = await KtConnect.Engine.ProcessRunner.RunAsync(curl[0], [.. curl[1..], "-H", "Content-Type: application/json", "-d", pod,
                server + "/api/v1/namespaces/default/pods"]);
            Assert.True(created.Succeeded, created.StandardError);
            await Wait.ForAsync(async () =>
                {
                    var got = await KtConnect.Engine.ProcessRunner.RunAsync(curl[0], [.. curl[1..], server + "/api/v1/namespaces/default/pods/proc-echo"]);
                    return (JsonNode.Parse(got.StandardOutput)?["status"]?["phase"]?.GetValue<string>()) ?? "";
                }, phase => phase == "Running", "pod proc-echo to run", phase => $"phase '{phase}'", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));
            Assert.NotEmpty(Directory.GetFiles("/var/run/netns", prefix + "p*"));

            // A crash: nothing cleans up behind a kill -9 ...
            process.Kill();
            await process.WaitForExitAsync();
            Assert.NotEmpty(Directory.GetFiles("/var/run/netns", prefix + "*"));

            // ... until `stop` removes what the state directory lists.
            var stop = await KtConnect.Engine.ProcessRunner.RunAsync("dotnet", [KubeSimDll, "stop", "--state", state], timeout: TimeSpan.FromSeconds(60));
            Assert.True(stop.Succeeded, stop.StandardError);
            Assert.Empty(Directory.GetFiles("/var/run/netns", prefix + "*"));
            Assert.Empty(Directory.Exists("/etc/netns") ? Directory.GetDirectories("/etc/netns", prefix + "*") : []);
            // The kernel removes the laptop link's root end shortly after its namespace: poll with a deadline.
            var rootLink = "kts" + prefix["ktsim-".Length..^1] + "l";
            var linkDeadline = DateTime.UtcNow.AddSeconds(10);
            string links;
            while ((links = (await KtConnect.Engine.ProcessRunner.RunAsync("ip", ["-o", "link"])).StandardOutput).Contains(rootLink, StringComparison.Ordinal)
                && DateTime.UtcNow < linkDeadline)
            {
                await Task.Delay(100);
            }
            Assert.DoesNotContain(rootLink, links, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(state, "kubesim.pid")));
        }
        finally
        {
            if (process is { HasExited: false }) process.Kill(entireProcessTree: true);
            process?.Dispose();
            if (prefix is not null) await KtConnect.KubeSim.Node.SimNode.SweepAsync(prefix);
            Directory.Delete(state, recursive: true);
        }
    }

    private static string Line(string text, string key)
    {
        var line = text.Split('\n').First(l => l.TrimStart().StartsWith(key, StringComparison.Ordinal));
        return line.TrimStart()[key.Length..].Trim();
    }
}
