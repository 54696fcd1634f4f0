namespace KtConnect.Tests.Integration.Connect;

/// <summary>
/// `kt connect` as a user runs it: a separate process in a laptop namespace that reaches only the API server,
/// against a simulated cluster whose pods are real processes. What is checked is what a user would see.
/// </summary>
[Collection(ConnectClusterCollection.Name)]
public sealed class ConnectEndToEndTests(ConnectClusterFixture f)
{
    private const int SigInt = 2;
    private const int SigTerm = 15;

    private async Task<(int Code, string Output)> CurlInLaptop(params string[] args)
    {
        var r = await f.Cluster.RunInLaptopAsync(["curl", "-sS", "--connect-timeout", "5", "--max-time", "20", .. args]);
        return (r.ExitCode, r.StandardOutput + r.StandardError);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Socks_mode_reaches_services_by_name_and_stop_leaves_the_cluster_as_it_was()
    {
        var before = f.Cluster.Snapshot("dev");
        var laptopBefore = await f.LaptopStateAsync();
        // Without the tunnel the laptop cannot reach the cluster at all.
        Assert.NotEqual(0, (await CurlInLaptop($"http://{f.OrdersClusterIp}/")).Code);

        var kt = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2223");
        try
        {
            Assert.Contains("Connect session", kt.Stdout, StringComparison.Ordinal);
            Assert.Contains("127.0.0.1:2223", kt.Stdout, StringComparison.Ordinal);
            foreach (var url in new[] { "http://orders.dev.svc.cluster.local/", "http://orders/", "http://orders.dev/", $"http://{f.OrdersClusterIp}/", $"http://{f.OrdersPodIps[0]}:8080/" })
            {
                var (code, output) = await CurlInLaptop("--socks5-hostname", "127.0.0.1:2223", url);
                Assert.True(code == 0, $"{url}: {output}\n{kt.Stderr}");
                Assert.Contains("orders-", output, StringComparison.Ordinal);
            }
            // HTTP CONNECT on the same port.
            var (connectCode, connectOutput) = await CurlInLaptop("-p", "-x", "http://127.0.0.1:2223", "http://orders.dev.svc.cluster.local/");
            Assert.True(connectCode == 0, connectOutput);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }

        Assert.Contains("everything was restored", kt.Stderr, StringComparison.Ordinal);
        Assert.True(before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, before.Diff(f.Cluster.Snapshot("dev")).ToString());
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
    }

    [LinuxRootTheory("sshd", "dnsmasq", "nginx", "nft", "curl")]
    [InlineData("tun")]
    [InlineData("redirect")]
    public async Task Names_cluster_ips_and_pod_ips_work_other_names_resolve_as_before_and_ctrl_c_restores_everything(string mode)
    {
        var before = f.Cluster.Snapshot("dev");
        var laptopBefore = await f.LaptopStateAsync();
        Assert.Contains("192.0.2.7", (await f.Cluster.RunInLaptopAsync(["getent", "hosts", "intranet.example"])).StandardOutput, StringComparison.Ordinal);

        var kt = await f.StartKtAsync("connect", "-n", "dev", "--mode", mode);
        try
        {
            Assert.Contains("route", kt.Stdout, StringComparison.Ordinal);
            var local = await f.Cluster.RunInLaptopAsync(["getent", "hosts", "intranet.example"]);
            Assert.True(local.StandardOutput.Contains("192.0.2.7", StringComparison.Ordinal), "a name only the laptop's resolver knows: " + local.StandardOutput + local.StandardError);
            var cluster = await f.Cluster.RunInLaptopAsync(["getent", "hosts", "orders.dev.svc.cluster.local"]);
            Assert.Contains(f.OrdersClusterIp, cluster.StandardOutput, StringComparison.Ordinal);
            foreach (var url in new[] { "http://orders/", "http://orders.dev/", "http://orders.dev.svc/", "http://orders.dev.svc.cluster.local/",
                         $"http://{f.OrdersClusterIp}/", $"http://{f.OrdersPodIps[1]}:8080/" })
            {
                var (code, output) = await CurlInLaptop(url);
                Assert.True(code == 0, $"{url}: {output}\n{kt.Stderr}");
                Assert.Contains("orders-", output, StringComparison.Ordinal);
            }
            Assert.NotEqual(laptopBefore, await f.LaptopStateAsync());
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigInt));
        }

        Assert.True(before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, before.Diff(f.Cluster.Snapshot("dev")).ToString());
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task After_SIGKILL_kt_clean_restores_the_resolver_and_removes_the_shadow()
    {
        var before = f.Cluster.Snapshot("dev");
        var laptopBefore = await f.LaptopStateAsync();
        var kt = await f.StartKtAsync("connect", "-n", "dev");
        await KtConnect.KubeSim.Cluster.KtRunner.KillAsync(kt.Process);

        // A crash leaves the resolver pointed at a server that is gone, and the shadow pod in the cluster.
        Assert.NotEqual(laptopBefore, await f.LaptopStateAsync());
        Assert.False(before.Diff(f.Cluster.Snapshot("dev")).IsEmpty);

        // Heartbeats are unix seconds: make sure the last one is in the past before asking for threshold 0.
        await Task.Delay(TimeSpan.FromSeconds(1.1));
        var dry = await f.Kt.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0", "--dryRun"]);
        Assert.True(dry.ExitCode == 0, dry.StandardError);
        Assert.Contains("local: would undo", dry.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("cluster: would delete pod dev/kt-connect-shadow-", dry.StandardOutput, StringComparison.OrdinalIgnoreCase);
        Assert.NotEqual(laptopBefore, await f.LaptopStateAsync());

        var clean = await f.Kt.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0"]);
        Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before");
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task An_unknown_namespace_is_one_clear_error_and_changes_nothing()
    {
        var before = f.Cluster.Snapshot();
        var r = await f.Kt.RunAsync(["connect", "-n", "nope", "--mode", "socks"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("NamespaceNotFound", r.StandardError, StringComparison.Ordinal);
        Assert.Single(r.StandardError.Trim().Split('\n'), l => l.StartsWith("kt:", StringComparison.Ordinal));
        Assert.True(before.Diff(f.Cluster.Snapshot()).IsEmpty);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task An_unknown_context_is_one_clear_error()
    {
        var r = await f.Kt.RunAsync(["connect", "--context", "nope", "--mode", "socks"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("KubeContextNotFound", r.StandardError, StringComparison.Ordinal);
    }
}
