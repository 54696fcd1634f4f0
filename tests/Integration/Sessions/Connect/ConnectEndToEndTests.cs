using System.Net;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.KubeSim;

namespace KtConnect.Tests.Integration.Sessions.Connect;

/// <summary>
/// `kt connect` as a user runs it: a separate process in a laptop namespace that reaches only the API server,
/// against a simulated cluster whose pods are real processes. What is checked is what a user would see.
/// </summary>
[Collection(ConnectClusterCollection.Name)]
public sealed class ConnectEndToEndTests(ConnectClusterFixture f)
{
    private const int SigInt = 2;
    private const int SigTerm = 15;
    private const int SigHup = 1;

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

    /// <summary>
    /// Two homes on one machine (`sudo` against `sudo -E`, two users): each has its own journal, but the firewall table
    /// and resolv.conf are the machine's. A kt of the other home must neither take them from a live session of this home
    /// nor undo them in its clean, though its own journal says a session of its home changed them before it crashed.
    /// </summary>
    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_kt_of_another_home_neither_takes_nor_undoes_the_firewall_table_and_resolv_conf_of_a_live_session()
    {
        var before = f.Cluster.Snapshot("dev");
        var laptopBefore = await f.LaptopStateAsync();
        var firewallBefore = (await f.Cluster.RunInLaptopAsync(["nft", "list", "ruleset"])).EnsureSuccess().StandardOutput;
        var other = new KtRunner(f.Cluster);
        KtProcess? live = null;
        try
        {
            // The other home's session dies with its table and resolv.conf in place, journalled in that home only.
            var crashed = new KtProcess(other.Start(["connect", "-n", "dev", "--mode", "redirect"]));
            await crashed.WaitForAsync("Press Ctrl+C", TimeSpan.FromMinutes(2));
            await KtRunner.KillAsync(crashed.Process);

            // A session of this home takes them over: what the crashed one held went with its process.
            live = await f.StartKtAsync("connect", "-n", "dev", "--mode", "redirect");
            var held = await f.LaptopStateAsync();
            var firewallHeld = (await f.Cluster.RunInLaptopAsync(["nft", "list", "ruleset"])).EnsureSuccess().StandardOutput;
            Assert.Contains("table inet ktconnect", firewallHeld, StringComparison.Ordinal);

            var clean = await other.RunAsync(["clean", "-n", "dev"]);
            Assert.Contains($"is in use by a live KtConnect session (process {live.Process.Id})", clean.StandardOutput + clean.StandardError,
                StringComparison.Ordinal);
            var refused = await other.RunAsync(["connect", "-n", "dev", "--mode", "redirect"]);
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("(MachineObjectInUse)", refused.StandardError, StringComparison.Ordinal);
            Assert.Equal(held, await f.LaptopStateAsync());
            Assert.Equal(firewallHeld, (await f.Cluster.RunInLaptopAsync(["nft", "list", "ruleset"])).EnsureSuccess().StandardOutput);
            var (code, output) = await CurlInLaptop("http://orders.dev/");
            Assert.True(code == 0 && output.Contains("orders-", StringComparison.Ordinal), output + live.Stderr);
        }
        finally
        {
            if (live is not null) Assert.Equal(0, await live.SignalAndWaitAsync(SigInt));
        }

        // With the live session gone, the other home's clean finishes its crashed session's entries (nothing is left to undo).
        var after = await other.RunAsync(["clean", "-n", "dev"]);
        Assert.True(after.ExitCode == 0, after.StandardOutput + after.StandardError);
        Assert.Empty(Directory.GetFiles(Path.Combine(other.Home, ".kt", "journal"), "*.json"));
        Directory.Delete(other.Home, recursive: true);
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before: " + before.Diff(f.Cluster.Snapshot("dev")));
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
        Assert.Equal(firewallBefore, (await f.Cluster.RunInLaptopAsync(["nft", "list", "ruleset"])).EnsureSuccess().StandardOutput);
    }

    /// <summary>
    /// Behind a corporate proxy, NO_PROXY usually names the internal ranges as CIDR blocks. kubectl (Go) honours them;
    /// .NET 10's own reading ignores them, and kt sent its API requests for a server given by address to the proxy.
    /// </summary>
    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_NO_PROXY_block_holding_the_api_servers_address_sends_kt_there_directly_as_kubectl_does()
    {
        var server = IPAddress.Parse(new Uri(f.Cluster.ServerUrl).Host.Trim('[', ']'));
        var bytes = server.GetAddressBytes();
        Array.Clear(bytes, 2, bytes.Length - 2);
        var block = $"{new IPAddress(bytes)}/16";
        // Nothing listens at the proxy's address: what goes through it fails.
        var proxied = new Dictionary<string, string> { ["HTTPS_PROXY"] = "http://127.0.0.1:9" };
        var viaProxy = await f.Kt.RunAsync(["clean", "-n", "dev", "--dryRun"], environment: proxied);
        Assert.Equal(1, viaProxy.ExitCode);

        var direct = await f.Kt.RunAsync(["clean", "-n", "dev", "--dryRun"],
            environment: new Dictionary<string, string>(proxied) { ["NO_PROXY"] = "intranet.example, " + block });
        Assert.True(direct.ExitCode == 0, block + ": " + direct.StandardOutput + direct.StandardError);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_tun_device_deleted_under_the_session_ends_it_failed_and_everything_is_restored()
    {
        var before = f.Cluster.Snapshot("dev");
        var laptopBefore = await f.LaptopStateAsync();
        var kt = await f.StartKtAsync("connect", "-n", "dev", "--mode", "tun");
        try
        {
            var deleted = await f.Cluster.RunInLaptopAsync(["ip", "link", "delete", "kt0"]);
            Assert.True(deleted.ExitCode == 0, deleted.StandardError);
            await kt.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        }
        finally
        {
            if (!kt.Process.HasExited) await kt.SignalAndWaitAsync(SigInt);
        }

        Assert.NotEqual(0, kt.Process.ExitCode);
        Assert.Contains("The tun device kt0 stopped delivering packets", kt.Stderr, StringComparison.Ordinal);
        Assert.True(before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, before.Diff(f.Cluster.Snapshot("dev")).ToString());
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Ktctls_disableTunRoute_and_includeDomains_give_the_device_and_dns_without_routes_and_a_stub_domain()
    {
        var laptopBefore = await f.LaptopStateAsync();
        Assert.DoesNotContain(ConnectClusterFixture.StubAddress,
            (await f.Cluster.RunInLaptopAsync(["getent", "hosts", ConnectClusterFixture.StubName])).StandardOutput, StringComparison.Ordinal);

        var kt = await f.StartKtAsync("connect", "-n", "dev", "--disableTunRoute", "--includeDomains", "corp.internal", "--clusterDomain", "cluster.local",
            "--dnsCacheTtl", "0", "--skipCleanup");
        try
        {
            var routes = await f.Cluster.RunInLaptopAsync(["ip", "-o", "route", "show", "table", "all", "dev", "kt0"]);
            Assert.True(routes.ExitCode == 0, routes.StandardError);
            Assert.DoesNotContain("10.96.", routes.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain("10.244.", routes.StandardOutput, StringComparison.Ordinal);
            // Names still resolve (DNS goes through SSH, not through the routes), the stub domain too.
            Assert.Contains(f.OrdersClusterIp, (await f.Cluster.RunInLaptopAsync(["getent", "hosts", "orders.dev.svc.cluster.local"])).StandardOutput,
                StringComparison.Ordinal);
            Assert.Contains(ConnectClusterFixture.StubAddress, (await f.Cluster.RunInLaptopAsync(["getent", "hosts", ConnectClusterFixture.StubName])).StandardOutput,
                StringComparison.Ordinal);
            Assert.Contains("192.0.2.7", (await f.Cluster.RunInLaptopAsync(["getent", "hosts", "intranet.example"])).StandardOutput, StringComparison.Ordinal);
            // Without routes the cluster's addresses are not reached; with one added by hand, they are.
            Assert.NotEqual(0, (await CurlInLaptop($"http://{f.OrdersClusterIp}/")).Code);
            (await f.Cluster.RunInLaptopAsync(["ip", "route", "add", f.OrdersClusterIp + "/32", "dev", "kt0"])).EnsureSuccess();
            var (code, output) = await CurlInLaptop($"http://{f.OrdersClusterIp}/");
            Assert.True(code == 0, output + kt.Stderr);
            Assert.Contains("orders-", output, StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigInt));
        }

        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Dns_mode_hosts_writes_the_services_into_the_hosts_file_follows_them_and_leaves_the_resolver_alone()
    {
        var laptopBefore = await f.LaptopStateAsync();
        var hostsFile = Path.Combine(f.Cluster.Laptop.EtcDirectory, "hosts");
        var resolvFile = Path.Combine(f.Cluster.Laptop.EtcDirectory, "resolv.conf");
        var resolvBefore = await File.ReadAllTextAsync(resolvFile);

        var kt = await f.StartKtAsync("connect", "-n", "dev", "--dnsMode", "hosts:kube-system");
        try
        {
            var hosts = await File.ReadAllTextAsync(hostsFile);
            Assert.Contains($"{f.OrdersClusterIp} orders orders.dev orders.dev.svc orders.dev.svc.cluster.local", hosts, StringComparison.Ordinal);
            Assert.Contains("kube-dns.kube-system.svc.cluster.local", hosts, StringComparison.Ordinal);
            Assert.StartsWith("127.0.0.1\tlocalhost\n", hosts, StringComparison.Ordinal);
            Assert.Equal(resolvBefore, await File.ReadAllTextAsync(resolvFile));
            var (code, output) = await CurlInLaptop("http://orders/");
            Assert.True(code == 0, output + kt.Stderr);
            Assert.Contains("orders-", output, StringComparison.Ordinal);

            // A Service made while connected is written within a refresh; one deleted goes.
            f.Cluster.Apply(SimClusterFixture.Service("dev", "late", "app=orders", 80, 8080));
            await f.Cluster.WaitUntilAsync(() => File.ReadAllText(hostsFile).Contains("late.dev.svc.cluster.local", StringComparison.Ordinal),
                "the new Service in the hosts file", TimeSpan.FromSeconds(60));
            Assert.Contains("orders-", (await CurlInLaptop("http://late/")).Output, StringComparison.Ordinal);
            f.Cluster.Store.Delete(ResourceTypes.Services, "dev", "late");
            await f.Cluster.WaitUntilAsync(() => !File.ReadAllText(hostsFile).Contains("late.dev", StringComparison.Ordinal),
                "the deleted Service out of the hosts file", TimeSpan.FromSeconds(60));
        }
        finally
        {
            // The terminal closed: SIGHUP restores too (the hosts file must not keep names nothing answers).
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigHup));
        }

        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task IngressIp_answers_the_namespaces_ingress_hosts_with_the_address_given()
    {
        // The "ingress controller" here is the orders Service itself: its ClusterIP is routed by the session. The last
        // host would be refused by a real API server; KubeSim stores it, and kt must not trust hosts into resolver files.
        f.Cluster.Apply("""
            {"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"shop","namespace":"dev"},
             "spec":{"rules":[{"host":"shop.example.test","http":{"paths":[{"path":"/","pathType":"Prefix",
               "backend":{"service":{"name":"orders","port":{"number":80}}}}]}},{"host":"*.apps.example.test"},{"host":"bad_host$.example.test"}]}}
            """);
        try
        {
            var kt = await f.StartKtAsync("connect", "-n", "dev", "--ingressIp", f.OrdersClusterIp);
            try
            {
                foreach (var url in new[] { "http://shop.example.test/", "http://web.apps.example.test/" })
                {
                    var (code, output) = await CurlInLaptop(url);
                    Assert.True(code == 0, $"{url}: {output}\n{kt.Stderr}");
                    Assert.Contains("orders-", output, StringComparison.Ordinal);
                }
                Assert.Contains("bad_host$.example.test", kt.Stderr, StringComparison.Ordinal);
                Assert.Contains("192.0.2.7", (await f.Cluster.RunInLaptopAsync(["getent", "hosts", "intranet.example"])).StandardOutput, StringComparison.Ordinal);
            }
            finally
            {
                Assert.Equal(0, await kt.SignalAndWaitAsync(SigInt));
            }
            Assert.NotEqual(0, (await f.Cluster.RunInLaptopAsync(["getent", "hosts", "shop.example.test"])).ExitCode);
        }
        finally
        {
            f.Cluster.Store.Delete(ResourceTypes.Ingresses, "dev", "shop");
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "curl")]
    public async Task Ktctls_disableTunDevice_is_socks_mode_on_the_proxyAddr_given_and_writes_the_hosts_file_in_hosts_mode()
    {
        var laptopBefore = await f.LaptopStateAsync();
        var hostsFile = Path.Combine(f.Cluster.Laptop.EtcDirectory, "hosts");
        var kt = await f.StartKtAsync("connect", "-n", "dev", "--disableTunDevice", "--proxyAddr", "127.0.0.3", "--proxyPort", "2226", "--dnsMode", "hosts");
        try
        {
            Assert.Contains("127.0.0.3:2226", kt.Stdout, StringComparison.Ordinal);
            var (code, output) = await CurlInLaptop("--socks5-hostname", "127.0.0.3:2226", "http://orders/");
            Assert.True(code == 0, output + kt.Stderr);
            Assert.Contains("orders-", output, StringComparison.Ordinal);
            Assert.NotEqual(0, (await CurlInLaptop("--socks5-hostname", "127.0.0.1:2226", "http://orders/")).Code);
            // As ktctl: the names are in the hosts file, so a client that resolves them itself asks the proxy for the ClusterIP.
            Assert.Contains($"{f.OrdersClusterIp} orders orders.dev", await File.ReadAllTextAsync(hostsFile), StringComparison.Ordinal);
            (code, output) = await CurlInLaptop("--socks5", "127.0.0.3:2226", "http://orders/");
            Assert.True(code == 0, output + kt.Stderr);
            Assert.Contains("orders-", output, StringComparison.Ordinal);
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task When_the_shadows_ssh_sessions_are_killed_the_session_reconnects_and_new_connections_work()
    {
        var kt = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2224");
        try
        {
            Assert.Equal(0, (await CurlInLaptop("--socks5-hostname", "127.0.0.1:2224", "http://orders/")).Code);
            var shadow = f.Cluster.Pods("dev", "kt-role=shadow-connect").Single()["metadata"]!["name"]!.GetValue<string>();
            var killed = await KillSshSessionsAsync(f.Cluster.Node.GetPod("dev/" + shadow)!.NetNsName);
            Assert.True(killed > 0, "no sshd session process found in the shadow pod");

            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("reconnecting", StringComparison.Ordinal), "kt to notice the dropped link",
                TimeSpan.FromSeconds(60));
            (int Code, string Output) last = (-1, "");
            await f.Cluster.WaitUntilAsync(() =>
            {
                last = CurlInLaptop("--socks5-hostname", "127.0.0.1:2224", "http://orders/").GetAwaiter().GetResult();
                return last.Code == 0;
            }, "a new connection to succeed after the reconnect", TimeSpan.FromSeconds(60));
            Assert.Contains("orders-", last.Output, StringComparison.Ordinal);
            // New connections work as soon as the link is back; the Recovered event (and its message) follows on its own task.
            await f.Cluster.WaitUntilAsync(() => kt.Stderr.Contains("Reconnected", StringComparison.Ordinal), "kt to say it reconnected",
                TimeSpan.FromSeconds(30));
        }
        finally
        {
            Assert.Equal(0, await kt.SignalAndWaitAsync(SigTerm));
        }
    }

    /// <summary>
    /// Kills the per-connection sshd processes ("sshd: root@notty", "sshd: root [priv]") of one network namespace; the
    /// listener stays. The pid namespace is the host's, so processes are chosen by namespace, never by name alone.
    /// </summary>
    private static async Task<int> KillSshSessionsAsync(string netns)
    {
        var pids = await KtConnect.Engine.ProcessRunner.RunAsync("ip", ["netns", "pids", netns]);
        var n = 0;
        foreach (var pid in pids.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string cmdline;
            try
            {
                cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
            }
            catch (IOException)
            {
                continue;
            }
            if (!cmdline.StartsWith("sshd: root", StringComparison.Ordinal)) continue;
            (await KtConnect.Engine.ProcessRunner.RunAsync("kill", ["-KILL", pid])).EnsureSuccess();
            n++;
        }
        return n;
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
        // The crashed session's shadow is this machine's journal entry; the heartbeat plan does not name it a second time.
        Assert.Contains("journal: would undo delete Pod dev/kt-connect-shadow-", dry.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("cluster: would Delete Pod dev/kt-connect-shadow-", dry.StandardOutput, StringComparison.Ordinal);
        Assert.NotEqual(laptopBefore, await f.LaptopStateAsync());

        var clean = await f.Kt.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0"]);
        Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
        Assert.Equal(laptopBefore, await f.LaptopStateAsync());
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before");
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task After_SIGKILL_in_hosts_mode_kt_clean_removes_the_hosts_block_even_after_it_was_rewritten()
    {
        var laptopBefore = await f.LaptopStateAsync();
        var hostsFile = Path.Combine(f.Cluster.Laptop.EtcDirectory, "hosts");
        var kt = await f.StartKtAsync("connect", "-n", "dev", "--dnsMode", "hosts");
        try
        {
            // The block is rewritten once (a new Service), so the journal has moved on from its first entry.
            f.Cluster.Apply(SimClusterFixture.Service("dev", "crashy", "app=orders", 80, 8080));
            await f.Cluster.WaitUntilAsync(() => File.ReadAllText(hostsFile).Contains("crashy.dev", StringComparison.Ordinal),
                "the new Service in the hosts file", TimeSpan.FromSeconds(60));
            await KtConnect.KubeSim.Cluster.KtRunner.KillAsync(kt.Process);
            Assert.Contains("crashy.dev", await File.ReadAllTextAsync(hostsFile), StringComparison.Ordinal);

            var clean = await f.Kt.RunAsync(["clean", "-n", "dev", "--localOnly"]);
            Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
            Assert.Equal(laptopBefore, await f.LaptopStateAsync());
        }
        finally
        {
            f.Cluster.Store.Delete(ResourceTypes.Services, "dev", "crashy");
            // The shadow the killed kt left: the next tests' cluster snapshots must not see it.
            await Task.Delay(TimeSpan.FromSeconds(1.1));
            (await f.Kt.RunAsync(["clean", "-n", "dev", "--thresholdInMinus", "0"])).EnsureSuccess();
        }
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

    [LinuxRootTheory("sshd", "dnsmasq", "nginx", "nft", "curl")]
    [InlineData("tun")]
    [InlineData("redirect")]
    public async Task A_route_conflict_is_reported_before_anything_is_changed(string mode)
    {
        var before = f.Cluster.Snapshot();
        (await f.Cluster.RunInLaptopAsync(["ip", "route", "add", "10.96.7.0/24", "dev", "lo"])).EnsureSuccess();
        try
        {
            var laptopBefore = await f.LaptopStateAsync();
            var firewallBefore = (await f.Cluster.RunInLaptopAsync(["nft", "list", "ruleset"])).EnsureSuccess().StandardOutput;
            var r = await f.Kt.RunAsync(["connect", "-n", "dev", "--mode", mode]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("(RouteConflict)", r.StandardError, StringComparison.Ordinal);
            Assert.Contains("10.96.7.0/24", r.StandardError, StringComparison.Ordinal);
            Assert.True(before.Diff(f.Cluster.Snapshot()).IsEmpty, before.Diff(f.Cluster.Snapshot()).ToString());
            Assert.Equal(laptopBefore, await f.LaptopStateAsync());
            Assert.Equal(firewallBefore, (await f.Cluster.RunInLaptopAsync(["nft", "list", "ruleset"])).EnsureSuccess().StandardOutput);
        }
        finally
        {
            await f.Cluster.RunInLaptopAsync(["ip", "route", "del", "10.96.7.0/24", "dev", "lo"]);
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl", "runuser")]
    public async Task Without_root_tun_mode_is_refused_with_the_way_out_and_changes_nothing()
    {
        var before = f.Cluster.Snapshot();
        var id = Guid.NewGuid().ToString("N")[..8];
        var kubeconfig = Path.Combine(Path.GetTempPath(), "ktcon-kubeconfig-" + id);
        File.Copy(f.Kt.Kubeconfig, kubeconfig);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(kubeconfig, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        // A copy of kt that nobody can read: the checkout may sit below a directory only root may enter (mktemp -d).
        var ktDir = Path.Combine(Path.GetTempPath(), "ktcon-kt-" + id);
        var builtKt = KtConnect.KubeSim.Cluster.KtRunner.FindKtDll()!;
        CopyDirectory(Path.GetDirectoryName(builtKt)!, ktDir);
        try
        {
            var r = await f.Cluster.RunInLaptopAsync(["runuser", "-u", "nobody", "--", "env", "HOME=/tmp", "KUBECONFIG=" + kubeconfig,
                "dotnet", Path.Combine(ktDir, Path.GetFileName(builtKt)), "connect", "-n", "dev"]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("ConnectNeedsPrivileges", r.StandardError, StringComparison.Ordinal);
            Assert.Contains("--mode socks", r.StandardError, StringComparison.Ordinal);
            Assert.True(before.Diff(f.Cluster.Snapshot()).IsEmpty);
        }
        finally
        {
            File.Delete(kubeconfig);
            Directory.Delete(ktDir, recursive: true);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task An_unknown_context_is_one_clear_error()
    {
        var r = await f.Kt.RunAsync(["connect", "--context", "nope", "--mode", "socks"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("KubeContextNotFound", r.StandardError, StringComparison.Ordinal);
    }
}
