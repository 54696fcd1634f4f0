using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.KubeSim;

[Collection(SimNodeCollection.Name)]
public sealed class SimNodeTests(SimNodeFixture fx)
{
    private static readonly string[] EchoPods = ["echo-7d9f8-aaaaa", "echo-7d9f8-bbbbb"];

    [LinuxRootTheory("sshd", "dnsmasq", "nginx", "nft", "curl")]
    [InlineData("http://echo/")]
    [InlineData("http://echo.default/")]
    [InlineData("http://echo.default.svc.cluster.local/")]
    [InlineData("http://" + SimNodeFixture.EchoIp + "/")]
    public async Task A_pod_reaches_the_echo_service_by_name_and_cluster_ip(string url)
    {
        var (code, body) = await fx.CurlFromClientAsync(url);

        Assert.True(code == 0, body);
        Assert.Contains(EchoPods, pod => body.Contains("pod: " + pod + "\n", StringComparison.Ordinal));
        Assert.Contains("request: GET / HTTP/1.1\n", body, StringComparison.Ordinal);
        Assert.Contains("port: 8080\n", body, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task The_service_spreads_connections_over_both_endpoints_and_the_echo_reports_headers()
    {
        // 40 fresh connections (the server closes each); with random choice both pods answer.
        var urls = Enumerable.Repeat("http://echo/", 40).ToArray();
        var (code, body) = await fx.CurlFromClientAsync(["-H", "Connection: close", "-H", "X-Probe: 42", .. urls]);

        Assert.True(code == 0, body);
        Assert.All(EchoPods, pod => Assert.Contains("pod: " + pod + "\n", body, StringComparison.Ordinal));
        Assert.Contains("header: X-Probe: 42\n", body, StringComparison.Ordinal);
        Assert.Contains("header: Host: echo\n", body, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task The_echo_server_keeps_connections_alive_and_takes_request_bodies()
    {
        var body = new string('x', 5000); // over curl's 1 KiB threshold: it sends Expect: 100-continue
        var (code, output) = await fx.CurlFromClientAsync(
            ["-v", "-d", body, "http://echo/one", "-d", body, "http://echo/two"]);

        Assert.True(code == 0, output);
        Assert.Contains("request: POST /one HTTP/1.1\n", output, StringComparison.Ordinal);
        Assert.Contains("request: POST /two HTTP/1.1\n", output, StringComparison.Ordinal);
        Assert.Contains("Re-using existing connection", output, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_pod_reaching_a_service_that_lands_on_itself_gets_an_answer()
    {
        var (code, body) = await fx.CurlFromClientAsync("http://self.default.svc.cluster.local/");

        Assert.True(code == 0, body);
        Assert.Contains("pod: client\n", body, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl", "dig")]
    public async Task Cluster_dns_answers_services_headless_endpoints_and_nothing_else()
    {
        async Task<string> Dig(string name, string type = "A")
        {
            var r = await fx.Node.RunInPodAsync("default/client", ["dig", "+short", "+time=2", "+tries=2", type, .. name.Split(' ')]);
            Assert.True(r.Succeeded, r.StandardError);
            return r.StandardOutput;
        }

        Assert.Equal(SimNodeFixture.EchoIp, (await Dig("echo.default.svc.cluster.local")).Trim());
        Assert.Equal("10.96.0.10", (await Dig("kube-dns.kube-system.svc.cluster.local")).Trim());
        var headless = (await Dig("echo-headless.default.svc.cluster.local")).Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToArray();
        Assert.Equal(EchoPods.Select(fx.PodIp).Order().ToArray(), headless);
        Assert.Equal("", (await Dig("nothing.default.svc.cluster.local")).Trim());
        // Over TCP too: KtConnect's split DNS asks the cluster DNS Service by DNS-over-TCP through the shadow.
        Assert.Equal(SimNodeFixture.EchoIp, (await Dig("+tcp echo.default.svc.cluster.local")).Trim());

        var resolv = await fx.Node.RunInPodAsync("default/client", ["cat", "/etc/resolv.conf"]);
        Assert.Contains("nameserver 10.96.0.10\n", resolv.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("search default.svc.cluster.local svc.cluster.local cluster.local\n", resolv.StandardOutput, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task The_laptop_reaches_the_api_server_address_but_no_pod_or_service()
    {
        using var listener = new TcpListener(IPAddress.Parse(fx.Laptop.ApiServerAddress), 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accept = listener.AcceptTcpClientAsync();

        var api = await fx.Laptop.RunAsync(["curl", "-sS", "--connect-timeout", "3", "--max-time", "3", $"http://{fx.Laptop.ApiServerAddress}:{port}/"]);
        using (var accepted = await accept.WaitAsync(TimeSpan.FromSeconds(30))) Assert.True(accepted.Connected);

        var service = await fx.Laptop.RunAsync(["curl", "-sS", "--connect-timeout", "2", $"http://{SimNodeFixture.EchoIp}/"]);
        var pod = await fx.Laptop.RunAsync(["curl", "-sS", "--connect-timeout", "2", $"http://{fx.PodIp("echo-7d9f8-aaaaa")}:8080/"]);
        var routes = await fx.Laptop.RunAsync(["ip", "-4", "route", "show"]);

        Assert.NotEqual(7, api.ExitCode); // connected (the listener never answers HTTP, so curl times out or sees EOF)
        Assert.NotEqual(0, service.ExitCode);
        Assert.NotEqual(0, pod.ExitCode);
        Assert.DoesNotContain("default", routes.StandardOutput, StringComparison.Ordinal);
        Assert.Single(routes.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task ConnectAsync_into_the_shadow_pod_reads_the_openssh_banner()
    {
        await using var stream = await fx.Node.ConnectAsync("default/kt-connect-shadow-abcde", 22);
        var buffer = new byte[256];
        var filled = 0;
        while (!buffer.AsSpan(0, filled).Contains((byte)'\n'))
        {
            var n = await stream.ReadAsync(buffer.AsMemory(filled)).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.NotEqual(0, n);
            filled += n;
        }

        Assert.StartsWith("SSH-2.0-OpenSSH", Encoding.ASCII.GetString(buffer, 0, filled), StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl", "ssh")]
    public async Task The_shadow_pod_accepts_root_with_the_key_from_its_volume_and_allows_gateway_ports()
    {
        var shadowIp = fx.PodIp("kt-connect-shadow-abcde");
        var r = await fx.Node.RunInPodAsync("default/client",
        [
            "ssh", "-i", fx.PrivateKeyPath, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "root@" + shadowIp, "echo logged-in-as-$(id -un)",
        ], timeout: TimeSpan.FromSeconds(30));
        Assert.True(r.Succeeded, r.StandardError);
        Assert.Equal("logged-in-as-root", r.StandardOutput.Trim());

        // The pod's own /etc/ssh: its sshd_config and the host key sshd presents, readable through exec.
        var config = await fx.Node.RunInPodAsync("default/kt-connect-shadow-abcde", ["cat", "/etc/ssh/sshd_config"]);
        Assert.Contains("GatewayPorts yes\n", config.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Ciphers aes128-ctr,aes192-ctr,aes256-ctr\n", config.StandardOutput, StringComparison.Ordinal);
        var hostKey = (await fx.Node.RunInPodAsync("default/kt-connect-shadow-abcde", ["cat", "/etc/ssh/ssh_host_ecdsa_key.pub"])).StandardOutput.Split(' ')[1];
        var scan = await fx.Node.RunInPodAsync("default/client", ["ssh-keyscan", "-T", "10", "-t", "ecdsa", shadowIp], timeout: TimeSpan.FromSeconds(30));
        Assert.Contains(hostKey, scan.StandardOutput, StringComparison.Ordinal);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl", "ssh")]
    public async Task A_reverse_tunnel_through_the_shadow_listens_on_all_pod_addresses()
    {
        // What exchange and mesh rely on: `ssh -R 0.0.0.0:P:...` binds on the shadow pod's IP (GatewayPorts yes),
        // so another pod reaching shadowIP:P lands on the tunnel's far end (here the client's own echo on :80).
        var shadowIp = fx.PodIp("kt-connect-shadow-abcde");
        using var cts = new CancellationTokenSource();
        var tunnel = fx.Node.ExecAsync("default/client",
        [
            "ssh", "-N", "-i", fx.PrivateKeyPath, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ExitOnForwardFailure=yes", "-R", "0.0.0.0:9000:127.0.0.1:80", "root@" + shadowIp,
        ], null, null, null, cts.Token);
        try
        {
            var r = await Wait.ForAsync(() =>
            {
                Assert.False(tunnel.IsCompleted, "ssh -R ended early");
                return fx.Node.RunInPodAsync("default/echo-7d9f8-aaaaa", ["curl", "-sS", "--connect-timeout", "2", $"http://{shadowIp}:9000/"]);
            }, x => x.Succeeded, "a request through the ssh -R port", x => x.StandardError, poll: TimeSpan.FromMilliseconds(100));
            Assert.Contains("pod: client\n", r.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => tunnel);
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task ExecAsync_returns_stdout_stderr_the_exit_code_and_sees_stdin_and_the_pod_env()
    {
        using var stdout = new MemoryStream();
        using var stderr = new MemoryStream();
        using var stdin = new MemoryStream(Encoding.UTF8.GetBytes("piped\n"));

        var code = await fx.Node.ExecAsync("default/client",
            ["sh", "-c", "echo out-$MY_VAR; echo err >&2; cat; ip -4 -o addr show dev eth0 | wc -l; exit 3"], stdin, stdout, stderr);

        Assert.Equal(3, code);
        Assert.Equal("out-from-spec\npiped\n1\n", SimNodeFixture.Utf8(stdout));
        Assert.Equal("err\n", SimNodeFixture.Utf8(stderr));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task StartExec_hands_back_pipes_and_a_missing_program_fails_before_running()
    {
        await using (var exec = fx.Node.StartExec("default/client", ["tr", "a-z", "A-Z"]))
        {
            await exec.Stdin.WriteAsync("shout\n"u8.ToArray());
            exec.Stdin.Close();
            using var reader = new StreamReader(exec.Stdout);
            Assert.Equal("SHOUT\n", await reader.ReadToEndAsync());
            Assert.Equal(0, await exec.WaitForExitAsync());
        }

        var e = Assert.Throws<KtException>(() => fx.Node.StartExec("default/client", ["no-such-program-here"]));
        Assert.Equal("SimExecNotFound", e.ErrorId);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task An_unknown_image_fails_with_ErrImagePull_and_creates_nothing()
    {
        // Only this node's namespaces: other tests may create and remove their own at the same time.
        async Task<string[]> Mine() => (await ProcessRunner.RunAsync("ip", ["netns", "list"])).StandardOutput
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0])
            .Where(n => n.StartsWith("ktsim-" + fx.Node.Id + "-", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray();
        var before = await Mine();

        var e = await Assert.ThrowsAsync<SimImagePullException>(() =>
            fx.Node.StartPodAsync(PodSpecLite.Create("default", "bad", "unknown/app:1", 80)));

        Assert.Equal("ErrImagePull", e.ErrorId);
        Assert.Null(fx.Node.GetPod("default/bad"));
        Assert.NotEmpty(before);
        Assert.Equal(before, await Mine());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task ConnectAsync_to_a_closed_port_fails_with_a_typed_error()
    {
        var e = await Assert.ThrowsAsync<KtException>(() => fx.Node.ConnectAsync("default/client", 81));
        Assert.Equal("SimPortForwardFailed", e.ErrorId);
    }
}
