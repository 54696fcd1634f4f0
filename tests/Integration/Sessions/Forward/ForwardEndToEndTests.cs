using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.Sessions.Forward;

/// <summary>`kt forward` as a user runs it, from the laptop namespace (which reaches only the API server).</summary>
[Collection(ForwardClusterCollection.Name)]
public sealed class ForwardEndToEndTests(ForwardClusterFixture f)
{
    private const int SigTerm = 15;

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_forward_reaches_a_pod_and_survives_the_serving_pod_being_deleted()
    {
        await f.WaitForOrdersAsync();
        var ktBefore = f.KtObjects();
        // Without the forward nothing listens in the laptop.
        Assert.NotEqual(0, (await f.CurlInLaptopAsync("http://127.0.0.1:18080/")).Code);

        var kt = await f.StartKtAsync("forward", "-n", "dev", "orders", "18080:80");
        try
        {
            Assert.Contains("Forward session", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("127.0.0.1:18080 → orders:80 (pod port http)", kt.Stdout, StringComparison.Ordinal);
            var first = await f.CurlInLaptopAsync("http://127.0.0.1:18080/first");
            Assert.True(first.Code == 0, first.Output + kt.Stderr);
            Assert.NotNull(first.Pod);
            Assert.Contains("port: 8080", first.Output, StringComparison.Ordinal);
            Assert.Contains("request: GET /first", first.Output, StringComparison.Ordinal);

            f.Cluster.Store.Delete(ResourceTypes.Pods, "dev", first.Pod!, new DeleteOptions(GracePeriodSeconds: 0));
            var next = await f.CurlInLaptopAsync("http://127.0.0.1:18080/next");
            Assert.True(next.Code == 0, next.Output + kt.Stderr);
            Assert.NotNull(next.Pod);
            Assert.NotEqual(first.Pod, next.Pod);
            Assert.Contains("request: GET /next", next.Output, StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        // Forward changes nothing in the cluster, and nothing listens any more.
        Assert.Equal(ktBefore, f.KtObjects());
        Assert.NotEqual(0, (await f.CurlInLaptopAsync("http://127.0.0.1:18080/")).Code);
        await f.WaitForOrdersAsync();
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl", "socat", "ss")]
    public async Task A_local_port_in_use_is_one_clear_error_and_leaves_nothing()
    {
        var busy = f.Cluster.Laptop.Start(["socat", "TCP-LISTEN:18081,bind=127.0.0.1,reuseaddr,fork", "SYSTEM:true"]);
        try
        {
            await f.Cluster.WaitUntilAsync(() => f.Cluster.RunInLaptopAsync(["sh", "-c", "ss -ltn | grep -q 127.0.0.1:18081"]).GetAwaiter().GetResult().ExitCode == 0,
                "socat to listen");
            var r = await f.Kt.RunAsync(["forward", "-n", "dev", "orders", "18082:80", "18081:80"]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("ForwardPortInUse", r.StandardError, StringComparison.Ordinal);
            // The first listener was closed again by the failed start.
            Assert.NotEqual(0, (await f.CurlInLaptopAsync("http://127.0.0.1:18082/")).Code);
        }
        finally
        {
            busy.Kill();
            await busy.WaitForExitAsync();
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Unknown_services_and_ports_are_refused_with_their_error_ids()
    {
        var r = await f.Kt.RunAsync(["forward", "-n", "dev", "nope", "18083:80"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("ForwardServiceNotFound", r.StandardError, StringComparison.Ordinal);
        r = await f.Kt.RunAsync(["forward", "-n", "dev", "orders", "18083:81"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("ForwardPortNotFound", r.StandardError, StringComparison.Ordinal);
    }
}
