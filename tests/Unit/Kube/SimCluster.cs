using System.Security.Cryptography.X509Certificates;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>A started KubeSim and our client pointed at it (admin token, trusting only KubeSim's CA).</summary>
internal sealed class SimCluster : IAsyncDisposable
{
    private SimCluster(KubeSimServer server, string ns)
    {
        Server = server;
        Namespace = ns;
        Client = NewClient(new StaticCredentials(server.AdminToken));
    }

    public KubeSimServer Server { get; }
    public KubeClient Client { get; }
    public string Namespace { get; }

    public static async Task<SimCluster> StartAsync(KubeSimOptions? options = null, string ns = "kt-test")
    {
        var server = await KubeSimServer.StartAsync(options);
        var cluster = new SimCluster(server, ns);
        await cluster.Client.Namespaces.CreateAsync(new Namespace { Metadata = new ObjectMeta { Name = ns } });
        return cluster;
    }

    public KubeClientConfiguration Configuration(IKubeCredentials credentials, bool trustCa = true) => new()
    {
        Server = new Uri(Server.ServerUrl),
        ContextName = "kubesim-ctx",
        ClusterName = "kubesim",
        Namespace = Namespace,
        CertificateAuthorities = trustCa ? new X509Certificate2Collection(Server.CaCertificate) : null,
        Credentials = credentials,
    };

    public KubeClient NewClient(IKubeCredentials credentials, KubeClientOptions? options = null, bool trustCa = true) =>
        new(Configuration(credentials, trustCa), null, options);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
