using KtConnect.Engine;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.KubeSim;

/// <summary>Tests that create, break and remove their own nodes.</summary>
[Collection(SimNodeCollection.Name)]
public sealed class SimNodeLifecycleTests
{
    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Deleting_a_pod_stops_its_process_and_removes_its_namespace_and_files()
    {
        await using var node = await SimNode.StartAsync();
        var info = await node.StartPodAsync(PodSpecLite.Create("default", "doomed", "ktconnect/echo:1", 8080));
        await node.WaitPodReadyAsync(info.Key);
        Assert.Contains(info.NetNsName, await NetNsListAsync());
        Assert.True(Directory.Exists("/etc/netns/" + info.NetNsName));
        Assert.True(Directory.Exists(info.PodDirectory));
        Assert.True(File.Exists($"/proc/{info.ProcessId}/status"));

        Assert.True(await node.DeletePodAsync(info.Key));

        Assert.DoesNotContain(info.NetNsName, await NetNsListAsync());
        Assert.False(Directory.Exists("/etc/netns/" + info.NetNsName));
        Assert.False(Directory.Exists(info.PodDirectory));
        Assert.False(IsAlive(info.ProcessId));
        Assert.Null(node.GetPod(info.Key));
        Assert.False(await node.DeletePodAsync(info.Key));
        // The kernel removes a veth's peer a moment after the namespace holding the other end is deleted.
        await EventuallyAsync(async () => !(await ProcessRunner.RunAsync("ip", ["-n", node.NodeNetNs, "-o", "link", "show"]))
            .StandardOutput.Contains("ktsp", StringComparison.Ordinal), "the pod's veth peer to be gone from the node");

        // The name can be used again at once, with a fresh namespace.
        var again = await node.StartPodAsync(PodSpecLite.Create("default", "doomed", "ktconnect/echo:1", 8080));
        Assert.NotEqual(info.NetNsName, again.NetNsName);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_delete_while_the_pod_is_starting_waits_for_the_start_and_removes_everything()
    {
        await using var node = await SimNode.StartAsync();
        var starting = node.StartPodAsync(PodSpecLite.Create("default", "racer", "ktconnect/echo:1", 8080));

        Assert.True(await node.DeletePodAsync("default/racer"));

        var info = await starting;
        Assert.Null(node.GetPod("default/racer"));
        Assert.DoesNotContain(info.NetNsName, await NetNsListAsync());
        Assert.False(Directory.Exists(info.PodDirectory));
        Assert.False(IsAlive(info.ProcessId));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Cancelling_an_exec_kills_the_command_and_leaves_the_pod_running()
    {
        await using var node = await SimNode.StartAsync();
        var pod = await node.StartPodAsync(PodSpecLite.Create("default", "p", "ktconnect/echo:1", 8080));
        await node.WaitPodReadyAsync(pod.Key);
        using var cts = new CancellationTokenSource();
        using var started = new SemaphoreSlim(0);
        await using var signal = new SignalingStream(started);

        var exec = node.ExecAsync(pod.Key, ["sh", "-c", "echo started; exec sleep 600"], null, signal, null, cts.Token);
        Assert.True(await started.WaitAsync(TimeSpan.FromSeconds(30)));
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => exec);
        var pids = await Wait.ForAsync(
            async () => (await ProcessRunner.RunAsync("ip", ["netns", "pids", pod.NetNsName])).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            x => x.Length <= 1, "the exec's processes to leave the pod's namespace", x => string.Join(' ', x), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50));
        Assert.Equal([pod.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)], pids);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task A_service_without_endpoints_refuses_and_updates_take_effect_at_once()
    {
        await using var node = await SimNode.StartAsync();
        var a = await node.StartPodAsync(PodSpecLite.Create("default", "a", "ktconnect/echo:1", 8080));
        var client = await node.StartPodAsync(PodSpecLite.Create("default", "client", "ktconnect/echo:1", 80));
        await node.WaitPodReadyAsync(a.Key);
        await node.WaitPodReadyAsync(client.Key);

        await node.SetServicesAsync([new ServiceLite("default", "web", "10.96.5.5", [new ServicePortLite(80, 8080)], [])]);
        var refused = await node.RunInPodAsync(client.Key, ["curl", "-sS", "--connect-timeout", "5", "http://web/"]);
        Assert.Equal(7, refused.ExitCode); // connection refused (TCP reset), not a timeout

        await node.SetServicesAsync([new ServiceLite("default", "web", "10.96.5.5", [new ServicePortLite(80, 8080)], [a.Ip])]);
        var ok = await node.RunInPodAsync(client.Key, ["curl", "-sS", "--connect-timeout", "5", "http://web/"]);
        Assert.True(ok.Succeeded, ok.StandardError);
        Assert.Contains("pod: a\n", ok.StandardOutput, StringComparison.Ordinal);

        await node.SetServicesAsync([]);
        var gone = await node.RunInPodAsync(client.Key, ["curl", "-sS", "--connect-timeout", "5", "http://web/"]);
        Assert.Equal(6, gone.ExitCode); // name no longer resolves
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task The_router_image_runs_nginx_that_serves_routes_written_into_its_conf_d_after_a_sighup()
    {
        await using var node = await SimNode.StartAsync();
        var router = await node.StartPodAsync(PodSpecLite.Create("default", "svc-kt-router", "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-router:v0.3.7", 80));
        var client = await node.StartPodAsync(PodSpecLite.Create("default", "client", "ktconnect/echo:1", 80));
        await node.WaitPodReadyAsync(router.Key);
        await node.WaitPodReadyAsync(client.Key);
        Assert.Equal("nginx", router.Launcher);

        // Written from inside the pod, as the router binary does over exec; the pod's /etc/nginx is its own.
        var write = await node.RunInPodAsync(router.Key,
            ["sh", "-c", "printf 'server { listen 8080; location / { return 200 \"routed\\\\n\"; } }\\n' > /etc/nginx/conf.d/route.conf"]);
        Assert.True(write.Succeeded, write.StandardError);
        Assert.True(File.Exists(node.HostPath(router.Key, "/etc/nginx/conf.d/route.conf")));
        Assert.False(File.Exists("/etc/nginx/conf.d/route.conf") && File.ReadAllText("/etc/nginx/conf.d/route.conf").Contains("routed", StringComparison.Ordinal));
        node.SignalPod(router.Key, 1);

        var r = await Wait.ForAsync(() => node.RunInPodAsync(client.Key, ["curl", "-sS", "--connect-timeout", "2", $"http://{router.Ip}:8080/"]),
            x => x.Succeeded, "a request to the reloaded router", x => x.StandardError, poll: TimeSpan.FromMilliseconds(100));
        Assert.Equal("routed\n", r.StandardOutput);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Sweep_after_a_crash_leaves_no_namespace_process_or_file()
    {
        // A node that is never disposed stands for a run that died: its objects stay behind.
        var node = await SimNode.StartAsync();
        var pod = await node.StartPodAsync(PodSpecLite.Create("default", "left", "ktconnect/echo:1", 8080));
        var shadow = await node.StartPodAsync(PodSpecLite.Create("default", "shadow", "kt-connect-shadow:v1", 22));
        var laptop = await node.CreateLaptopAsync();
        await node.WaitPodReadyAsync(shadow.Key);
        var prefix = SimNode.NamespacePrefix + node.Id + "-";
        Assert.Equal(4, (await NetNsListAsync()).Count(n => n.StartsWith(prefix, StringComparison.Ordinal)));

        await SimNode.SweepAsync(prefix);

        Assert.DoesNotContain(await NetNsListAsync(), n => n.StartsWith(prefix, StringComparison.Ordinal));
        Assert.Empty(Directory.GetDirectories("/etc/netns", prefix + "*"));
        Assert.False(IsAlive(pod.ProcessId));
        Assert.False(IsAlive(shadow.ProcessId));
        await EventuallyAsync(async () => !(await ProcessRunner.RunAsync("ip", ["-o", "link", "show"]))
            .StandardOutput.Contains(laptop.RootInterface, StringComparison.Ordinal), "the laptop's root link to be gone");
        var tables = await ProcessRunner.RunAsync("nft", ["list", "tables"]);
        Assert.DoesNotContain(SimNode.NftTablePrefix, tables.StandardOutput, StringComparison.Ordinal);
        Assert.False(Directory.Exists(node.StateDirectory));
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Stop_from_the_state_directory_removes_what_a_dead_node_recorded()
    {
        var state = Path.Combine(Path.GetTempPath(), "ktsim-state-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var node = await SimNode.StartAsync(new SimNodeOptions { StateDirectory = state });
            var pod = await node.StartPodAsync(PodSpecLite.Create("default", "left", "ktconnect/echo:1", 8080));
            var laptop = await node.CreateLaptopAsync();
            var recorded = SimNodeState.Load(state)!;
            Assert.Contains(node.NodeNetNs, recorded.NetworkNamespaces);
            Assert.Contains(pod.NetNsName, recorded.NetworkNamespaces);
            Assert.Contains(laptop.NetNsName, recorded.NetworkNamespaces);
            Assert.Contains(pod.ProcessId, recorded.ProcessIds);

            await SimNode.StopAsync(state);

            var list = await NetNsListAsync();
            Assert.DoesNotContain(node.NodeNetNs, list);
            Assert.DoesNotContain(pod.NetNsName, list);
            Assert.DoesNotContain(laptop.NetNsName, list);
            Assert.False(Directory.Exists("/etc/netns/" + pod.NetNsName));
            Assert.False(Directory.Exists(Path.Combine(state, "pods")));
            Assert.False(IsAlive(pod.ProcessId));
        }
        finally
        {
            if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
        }
    }

    /// <summary>A write-only stream that releases a semaphore on the first write.</summary>
    private sealed class SignalingStream(SemaphoreSlim signal) : Stream
    {
        private int _signalled;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            if (count > 0 && Interlocked.Exchange(ref _signalled, 1) == 0) signal.Release();
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.Length > 0 && Interlocked.Exchange(ref _signalled, 1) == 0) signal.Release();
            return ValueTask.CompletedTask;
        }
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task After_kill_9_of_the_process_holding_a_node_stop_from_its_state_directory_leaves_nothing()
    {
        var state = Path.Combine(Path.GetTempPath(), "ktsim-state-" + Guid.NewGuid().ToString("N")[..8]);
        var psi = new System.Diagnostics.ProcessStartInfo(Environment.ProcessPath is { } p && Path.GetFileName(p) == "dotnet" ? p : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "exec", typeof(SimNode).Assembly.Location, "node", "--state", state, "--echo", "default/a", "--shadow", "default/s", "--laptop" })
            psi.ArgumentList.Add(a);
        using var host = System.Diagnostics.Process.Start(psi)!;
        var stderr = host.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        try
        {
            while (await host.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(90)) is { } line && line != "ready") lines.Add(line);
            Assert.True(lines.Count == 3, string.Join('\n', lines)); // stderr is read only after exit: it ends with the process
            var podPids = lines.Where(l => l.StartsWith("pod ", StringComparison.Ordinal)).Select(l => int.Parse(l.Split(' ')[4], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var namespaces = SimNodeState.Load(state)!.NetworkNamespaces.ToArray();
            Assert.Equal(4, namespaces.Length); // node, two pods, laptop

            host.Kill(); // SIGKILL: nothing of the node's own cleanup runs
            await host.WaitForExitAsync();
            _ = await stderr;
            Assert.All(podPids, pid => Assert.True(IsAlive(pid))); // the orphans are still there ...

            await SimNode.StopAsync(state);

            var list = await NetNsListAsync();
            Assert.All(namespaces, ns => Assert.DoesNotContain(ns, list)); // ... and now they are gone
            Assert.All(podPids, pid => Assert.False(IsAlive(pid)));
            Assert.All(namespaces, ns => Assert.False(Directory.Exists("/etc/netns/" + ns)));
        }
        finally
        {
            if (!host.HasExited) host.Kill(entireProcessTree: true);
            await SimNode.StopAsync(state);
            if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
        }
    }

    /// <summary>Polls a condition the kernel makes true asynchronously; fails with <paramref name="what"/> after 10 s.</summary>
    private static Task EventuallyAsync(Func<Task<bool>> condition, string what) =>
        Wait.UntilAsync(condition, what, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50));

    private static async Task<string[]> NetNsListAsync() =>
        [.. (await ProcessRunner.RunAsync("ip", ["netns", "list"])).StandardOutput
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0])];

    // A killed child of the test process stays a zombie until reaped; a zombie is dead.
    private static bool IsAlive(int pid)
    {
        var status = $"/proc/{pid}/status";
        if (!File.Exists(status)) return false;
        try
        {
            return !File.ReadAllText(status).Contains("State:\tZ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }
}
