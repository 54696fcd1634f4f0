using System.Text;
using KtConnect.Engine;
using KtConnect.KubeSim.Host;
using KtConnect.KubeSim.Node;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>
/// One node shared by the read-only tests: two echo pods behind Service "echo" (80 → 8080) and a
/// headless "echo-headless", a client pod, a shadow pod (sshd) with an authorized key from a volume,
/// a Service "self" whose only endpoint is the client (hairpin), the kube-dns Service, and a laptop.
/// </summary>
public sealed class SimNodeFixture : IAsyncLifetime
{
    public const string EchoIp = "10.96.0.20";
    public const string SelfIp = "10.96.0.21";

    public SimNode Node { get; private set; } = null!;

    public SimLaptop Laptop { get; private set; } = null!;

    public string KeyDirectory { get; } = Path.Combine(Path.GetTempPath(), "ktsim-test-key-" + Guid.NewGuid().ToString("N")[..8]);

    public string PrivateKeyPath => Path.Combine(KeyDirectory, "id_ed25519");

    public static bool CanRun => NetNs.Available && new[] { "sshd", "dnsmasq", "nginx", "nft", "curl" }.All(ProcessRunner.IsOnPath);

    public async Task InitializeAsync()
    {
        if (!CanRun) return;
        Node = await SimNode.StartAsync();
        try
        {
            Directory.CreateDirectory(KeyDirectory);
            (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-N", "", "-t", "ed25519", "-f", PrivateKeyPath])).EnsureSuccess();
            var publicKey = await File.ReadAllBytesAsync(PrivateKeyPath + ".pub");

            var shadow = new PodSpecLite("default", "kt-connect-shadow-abcde", "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow:v0.3.7",
                [new ContainerPortLite(22)], new Dictionary<string, string>(),
                new Dictionary<string, IReadOnlyDictionary<string, byte[]>> { ["/root/authorized"] = new Dictionary<string, byte[]> { ["authorized"] = publicKey } });
            var specs = new[]
            {
                PodSpecLite.Create("default", "echo-7d9f8-aaaaa", "ktconnect/echo:1.0", 8080),
                PodSpecLite.Create("default", "echo-7d9f8-bbbbb", "ktconnect/echo:1.0", 8080),
                PodSpecLite.Create("default", "client", "busybox:1.36", 80) with { Env = new Dictionary<string, string> { ["MY_VAR"] = "from-spec" } },
                shadow,
            };
            await Task.WhenAll(specs.Select(s => Node.StartPodAsync(s)));
            await Task.WhenAll(specs.Select(s => Node.WaitPodReadyAsync(s.Key)));
            await Node.SetServicesAsync(Services());
            Laptop = await Node.CreateLaptopAsync();
        }
        catch
        {
            // xunit does not dispose a fixture whose initialisation failed: leave nothing behind.
            await DisposeAsync();
            throw;
        }
    }

    public string PodIp(string name) => Node.GetPod("default/" + name)!.Ip;

    public IReadOnlyList<ServiceLite> Services()
    {
        string[] echo = [PodIp("echo-7d9f8-aaaaa"), PodIp("echo-7d9f8-bbbbb")];
        return
        [
            new ServiceLite("default", "echo", EchoIp, [new ServicePortLite(80, 8080, "TCP", "http")], echo),
            new ServiceLite("default", "echo-headless", null, [new ServicePortLite(8080, 8080)], echo, Headless: true),
            new ServiceLite("default", "self", SelfIp, [new ServicePortLite(80, 80)], [PodIp("client")]),
            new ServiceLite("kube-system", "kube-dns", "10.96.0.10", [new ServicePortLite(53, 53, "UDP", "dns")], []),
        ];
    }

    /// <summary>curl from the client pod; returns (exit code, body).</summary>
    public async Task<(int Code, string Body)> CurlFromClientAsync(params string[] args)
    {
        var r = await Node.RunInPodAsync("default/client", ["curl", "-sS", "--connect-timeout", "5", "--max-time", "15", .. args]);
        return (r.ExitCode, r.StandardOutput + r.StandardError);
    }

    public async Task DisposeAsync()
    {
        if (Node is not null) await Node.DisposeAsync();
        try { Directory.Delete(KeyDirectory, recursive: true); } catch (IOException) { }
    }

    public static string Utf8(MemoryStream s) => Encoding.UTF8.GetString(s.ToArray());
}

[CollectionDefinition(Name)]
public sealed class SimNodeCollection : ICollectionFixture<SimNodeFixture>
{
    public const string Name = "KubeSim node";
}
