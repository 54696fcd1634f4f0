using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Streaming;
using KtConnect.Tests.Integration.Ssh;

namespace KtConnect.Tests.Integration.Cluster.Tunnel;

/// <summary>
/// KubeSim in-process with one "shadow" pod whose port 22 is a real OpenSSH sshd on loopback (through
/// <see cref="LocalPodNetwork.Map"/>), a KubeClient for it and our per-session key.
/// </summary>
internal sealed class ShadowLab : IAsyncDisposable
{
    public const string Namespace = "default";
    public const string PodName = "kt-connect-shadow-link";

    private ShadowLab(KubeSimServer sim, KubeClient kube, SshdProcess sshd, SshKeyPair identity)
    {
        Sim = sim;
        Kube = kube;
        Sshd = sshd;
        Identity = identity;
    }

    public KubeSimServer Sim { get; }

    public KubeClient Kube { get; }

    public SshdProcess Sshd { get; }

    public SshKeyPair Identity { get; }

    /// <summary>Port-forwards opened through <see cref="CountingTransport"/>.</summary>
    public int PortForwards => Volatile.Read(ref _portForwards);

    private int _portForwards;

    public static async Task<ShadowLab> StartAsync()
    {
        var identity = SshKeyPair.GenerateEcdsa();
        SshdProcess? sshd = null;
        KubeSimServer? sim = null;
        try
        {
            sshd = await SshdProcess.StartAsync(identity, ["GatewayPorts yes", "LogLevel DEBUG1"], ["ecdsa:256"]);
            sim = await KubeSimServer.StartAsync();
            var kube = new KubeClient(new KubeClientConfiguration
            {
                Server = sim.BaseAddress,
                ContextName = "kubesim",
                Namespace = Namespace,
                CertificateAuthorities = new X509Certificate2Collection(sim.CaCertificate),
                Credentials = new StaticCredentials(sim.AdminToken),
            });
            await kube.Pods.CreateAsync(new Pod
            {
                Metadata = new ObjectMeta { Name = PodName },
                Spec = new PodSpec { Containers = [new Container { Name = "shadow", Image = "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow" }] },
            });
            ((LocalPodNetwork)sim.PodNetwork).Map(Namespace, PodName, 22, sshd.EndPoint);
            return new ShadowLab(sim, kube, sshd, identity);
        }
        catch
        {
            if (sim is not null) await sim.DisposeAsync();
            if (sshd is not null) await sshd.DisposeAsync();
            identity.Dispose();
            throw;
        }
    }

    public ShadowLinkOptions Options(int connections = 2, TimeSpan? openWait = null, IReadOnlyList<SshPublicKey>? hostKeys = null) => new()
    {
        Namespace = Namespace,
        PodName = PodName,
        Identity = Identity,
        ExpectedHostKeys = hostKeys ?? Sshd.HostKeys,
        Connections = connections,
        OpenWaitTimeout = openWait ?? TimeSpan.FromSeconds(15),
    };

    /// <summary>The product's transport (a port-forward to the pod's port 22), counted.</summary>
    public async Task<Stream> CountingTransport(CancellationToken ct)
    {
        Interlocked.Increment(ref _portForwards);
        return await Kube.PortForwardAsync(PodName, 22, Namespace, ct);
    }

    public static int FreeTcpPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        Kube.Dispose();
        await Sim.DisposeAsync();
        await Sshd.DisposeAsync();
        Identity.Dispose();
    }
}
