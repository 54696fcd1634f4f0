using System.Net;
using KtConnect.Engine.Cluster.Tunnel;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.Linux;
using KtConnect.KubeSim.Host;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Tests.Integration.Cluster.Tunnel;

namespace KtConnect.Tests.Integration.Sessions.Tunnel;

/// <summary>
/// Tun mode end to end: a "laptop" namespace (ktcon-) with a tun device served by our user-space stack, a route for a
/// fake cluster range (10.96.0.0/16) into it, and the stack's dialer = <see cref="SshFlowDialer"/> over the shadow link.
/// sshd runs in the root namespace, so a test wrapper maps 10.96.x.y:port onto 127.0.0.1:port before the
/// direct-tcpip (no 10.x address is ever added to the root namespace).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TunModeTests
{
    [LinuxRootFact("sshd", "ssh-keygen", "curl", "ip")]
    public async Task Curl_in_a_namespace_reaches_a_cluster_address_through_tun_stack_and_shadow_link()
    {
        await using var lab = await ShadowLab.StartAsync();
        var body = string.Concat(Enumerable.Repeat("0123456789abcdef", 64 * 1024)); // 1 MiB
        await using var http = new TinyHttpServer(body);
        await using var link = await ShadowLink.StartAsync(lab.Kube, lab.Options());
        await using var laptop = await NetNs.CreateAsync("ktcon-");
        var tun = "ktc" + Guid.NewGuid().ToString("N")[..8];
        var device = await LinuxTunDevice.CreateAsync(tun, StackOptions.RecommendedMtu, ["198.18.0.1/32"], laptop.Name);
        var dialer = new LoopbackMappingDialer(new SshFlowDialer(link));
        await using var stack = new UserSpaceStack(device, dialer, new StackOptions { Mtu = StackOptions.RecommendedMtu });
        stack.Start();
        await laptop.ExecAsync(default, "ip", "route", "add", "10.96.0.0/16", "dev", tun);

        var ok = await laptop.RunAsync(["curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
            $"http://10.96.7.7:{http.Port}/tun"], timeout: TimeSpan.FromSeconds(60));
        Assert.True(ok.ExitCode == 0, ok.StandardError);
        Assert.Equal($"200 {body.Length}", ok.StandardOutput.Trim());
        Assert.Contains(new IPEndPoint(IPAddress.Parse("10.96.7.7"), http.Port), dialer.Dialed);

        // A destination sshd cannot connect to: the open is refused, the stack answers the SYN with a RST (curl exit 7).
        var refused = await laptop.RunAsync(["curl", "-sS", "--max-time", "30", $"http://10.96.7.8:{ShadowLab.FreeTcpPort()}/"],
            timeout: TimeSpan.FromSeconds(60));
        Assert.Equal(7, refused.ExitCode);
    }

    /// <summary>Maps the fake cluster range onto loopback (same port), then dials through the shadow link.</summary>
    private sealed class LoopbackMappingDialer(SshFlowDialer inner) : IFlowDialer
    {
        public System.Collections.Concurrent.ConcurrentQueue<IPEndPoint> Dialed { get; } = new();

        public Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
        {
            Dialed.Enqueue(destination);
            return inner.DialAsync(new IPEndPoint(IPAddress.Loopback, destination.Port), cancellationToken);
        }
    }
}
