using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Api;
using Microsoft.AspNetCore.Http;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>Watch, port-forward and exec through KubeSim, and the failures that must be fast and clear.</summary>
public sealed class KubeSimStreamTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private static Pod PodOf(string name, string? hostAnnotation = null) => new()
    {
        Metadata = new ObjectMeta
        {
            Name = name,
            Labels = new() { ["app"] = "w" },
            Annotations = hostAnnotation is null ? null : new() { ["kubesim.ktconnect.io/host"] = hostAnnotation },
        },
        Spec = new PodSpec { Containers = [new Container { Name = "c", Image = "busybox" }] },
    };

    [Fact]
    public async Task Watch_delivers_changes_and_a_bookmark_before_the_server_ends_it()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { BookmarkBeforeTimeout = TimeSpan.FromSeconds(1) });
        var list = await sim.Client.Pods.ListAsync();
        using var cts = new CancellationTokenSource(Deadline);
        var events = new List<WatchEvent<Pod>>();
        var watch = Task.Run(async () =>
        {
            // Long enough that the three changes below are made before the bookmark (a second before the end), even on a
            // loaded machine: a delete made after the server ended the watch has no event in it.
            await foreach (var ev in sim.Client.Pods.WatchAsync(null, new WatchOptions { ResourceVersion = list.Metadata.ResourceVersion, TimeoutSeconds = 8 }, cts.Token))
                events.Add(ev);
        });
        // Changes made after the list's resourceVersion are replayed even if the watch starts later.
        await sim.Client.Pods.CreateAsync(PodOf("p"));
        await sim.Client.Pods.PatchAsync("p", KubePatch.Merge("""{"metadata":{"labels":{"step":"2"}}}"""));
        await sim.Client.Pods.DeleteAsync("p", options: new DeleteOptions { GracePeriodSeconds = 0 });
        await watch; // the server ends the stream at timeoutSeconds
        // KubeSim's stand-in kubelet also modifies the pod (bind, Running), so look for our change among the events.
        var types = events.Select(e => e.Type).ToList();
        Assert.Equal(WatchEventType.Added, types[0]);
        Assert.Contains(events, e => e.Type == WatchEventType.Modified && e.Object!.Metadata.GetLabel("step") == "2");
        Assert.Equal(WatchEventType.Deleted, types[^2]);
        Assert.Equal(WatchEventType.Bookmark, types[^1]);
        var rvs = events.Select(e => long.Parse(e.Object!.Metadata.ResourceVersion!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(rvs.Order(), rvs);
        Assert.Contains(sim.Server.Hooks.Requests, r => r.PathAndQuery.Contains("allowWatchBookmarks=true", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_watch_from_a_compacted_resource_version_gets_the_410_error_event()
    {
        await using var sim = await SimCluster.StartAsync();
        using var cts = new CancellationTokenSource(Deadline);
        var events = new List<WatchEvent<Pod>>();
        await foreach (var ev in sim.Client.Pods.WatchAsync(null, new WatchOptions { ResourceVersion = "1", TimeoutSeconds = 5 }, cts.Token))
            events.Add(ev);
        var error = Assert.Single(events);
        Assert.Equal(WatchEventType.Error, error.Type);
        Assert.Equal(410, error.Status!.Code);
        Assert.Equal("Expired", error.Status.Reason);
    }

    [Fact]
    public async Task The_watcher_relists_after_an_error_event_and_resumes()
    {
        await using var sim = await SimCluster.StartAsync();
        await sim.Client.Pods.CreateAsync(PodOf("keep"));
        await sim.Client.Pods.CreateAsync(PodOf("vanishes"));
        var injected = 0;
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (ctx.Request.Query["watch"] != "1" || Interlocked.Exchange(ref injected, 1) != 0) return false;
            // While "the watch cache is behind": the object disappears and the server answers with an in-stream 410.
            sim.Server.Store.Delete(KtConnect.KubeSim.Store.ResourceTypes.Pods, "kt-test", "vanishes");
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync("""{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (800)","reason":"Expired","code":410}}""" + "\n");
            return true;
        };
        await using var watcher = sim.Client.Pods.CreateWatcher(options: new ListOptions { LabelSelector = "app=w" },
            watcherOptions: new WatcherOptions { WatchTimeoutSeconds = 30 }).Start();
        using var cts = new CancellationTokenSource(Deadline);
        var seen = new List<string>();
        await foreach (var ev in watcher.ReadAllAsync(cts.Token))
        {
            // KubeSim's stand-in kubelet may modify the pods (bind, Running) at any time; only the set changes matter here.
            if (ev.Type == WatchEventType.Modified) continue;
            seen.Add(ev.Type + " " + ev.Object!.Metadata.Name);
            if (seen.Count == 3) await sim.Client.Pods.CreateAsync(PodOf("later"), cancellationToken: cts.Token);
            if (ev.Type == WatchEventType.Added && ev.Object.Metadata.Name == "later") break;
        }
        Assert.Equal(["Added keep", "Added vanishes", "Deleted vanishes", "Added later"], seen);
        Assert.Equal(2, watcher.ListCount);
        Assert.True(watcher.WatchCount >= 2);
        Assert.Equal(["keep", "later"], watcher.Snapshot.Select(p => p.Metadata.Name!).Order());
    }

    [Fact]
    public async Task The_watcher_restarts_when_the_server_ends_the_stream_without_relisting()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { BookmarkBeforeTimeout = TimeSpan.Zero });
        var received = new List<string>();
        var done = new TaskCompletionSource();
        await using var watcher = sim.Client.Pods.CreateWatcher(watcherOptions: new WatcherOptions { WatchTimeoutSeconds = 1 }, onEvent: (ev, _) =>
        {
            lock (received) received.Add(ev.Type + " " + ev.Object!.Metadata.Name);
            if (ev.Object.Metadata.Name == "second") done.TrySetResult();
            return ValueTask.CompletedTask;
        }).Start();
        await watcher.Synced.WaitAsync(Deadline);
        await sim.Client.Pods.CreateAsync(PodOf("first"));
        // Wait until at least one more watch request has started after the first stream ended.
        await Wait.UntilAsync(() => watcher.WatchCount >= 3, "a third watch request", Deadline);
        await sim.Client.Pods.CreateAsync(PodOf("second"));
        await done.Task.WaitAsync(Deadline);
        string[] added;
        // Under the lock: the pods' later status updates may still be arriving.
        lock (received) added = received.Where(r => !r.StartsWith("Modified", StringComparison.Ordinal)).ToArray();
        Assert.Equal(["Added first", "Added second"], added);
        Assert.Equal(1, watcher.ListCount);
        Assert.True(watcher.WatchCount >= 3);
    }

    [Fact]
    public async Task A_failing_callback_stops_the_watcher_with_its_exception()
    {
        await using var sim = await SimCluster.StartAsync();
        await sim.Client.Pods.CreateAsync(PodOf("p"));
        var calls = 0;
        await using var watcher = sim.Client.Pods.CreateWatcher(onEvent: (_, _) =>
        {
            calls++;
            throw new KtConnect.Engine.KtException("ConsumerBroke", KtConnect.Engine.KtErrorCategory.InvalidOperation, "consumer broke");
        }).Start();
        var ex = await Assert.ThrowsAsync<KtConnect.Engine.KtException>(() => watcher.Completion.WaitAsync(Deadline));
        Assert.Equal("ConsumerBroke", ex.ErrorId);
        Assert.Equal(1, calls);
        Assert.Equal(1, watcher.ListCount);
    }

    [Fact]
    public async Task A_forbidden_watch_stops_the_watcher_with_the_error()
    {
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.Authorize = info => info.Resource != "pods";
        await using var watcher = sim.Client.Pods.CreateWatcher().Start();
        var ex = await Assert.ThrowsAsync<KubeForbiddenException>(() => watcher.Completion.WaitAsync(Deadline));
        Assert.Equal("list", ex.Verb);
        await Assert.ThrowsAsync<KubeForbiddenException>(() => watcher.Synced);
    }

    [Fact]
    public async Task Port_forward_carries_bytes_both_ways_and_surfaces_the_error_channel()
    {
        await using var sim = await SimCluster.StartAsync();
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var port = ((IPEndPoint)echo.LocalEndpoint).Port;
        var serve = Task.Run(async () =>
        {
            using var c = await echo.AcceptTcpClientAsync();
            var s = c.GetStream();
            await s.WriteAsync("HELLO\n"u8.ToArray());
            var buf = new byte[4096];
            int n;
            while ((n = await s.ReadAsync(buf)) > 0) await s.WriteAsync(buf.AsMemory(0, n));
        });
        await sim.Client.Pods.CreateAsync(PodOf("target", "127.0.0.1"));

        await using (var stream = await sim.Client.PortForwardAsync("target", port))
        {
            Assert.Equal("v4.channel.k8s.io", stream.Protocol);
            Assert.Equal("HELLO\n", await ReadExactlyAsync(stream, 6));
            await stream.WriteAsync("ping-pong"u8.ToArray());
            Assert.Equal("ping-pong", await ReadExactlyAsync(stream, 9));
        }
        await serve.WaitAsync(Deadline);

        var missing = await Assert.ThrowsAsync<KubeNotFoundException>(() => sim.Client.PortForwardAsync("no-such-pod", 22));
        Assert.Contains("no-such-pod", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Port_forward_to_a_closed_pod_port_surfaces_the_error_channel()
    {
        await using var sim = await SimCluster.StartAsync();
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await sim.Client.Pods.CreateAsync(PodOf("target", "127.0.0.1"));
        await using var refused = await sim.Client.PortForwardAsync("target", port);
        var ex = await Assert.ThrowsAsync<KubePortForwardException>(async () =>
        {
            var buf = new byte[16];
            while (await refused.ReadAsync(buf) > 0)
            {
            }
        });
        Assert.Equal("KubePortForwardFailed", ex.ErrorId);
        Assert.Contains("connection refused", ex.Message, StringComparison.Ordinal);
        Assert.Equal(port, ex.Port);
    }

    private static async Task<string> ReadExactlyAsync(Stream s, int count)
    {
        var buf = new byte[count];
        await s.ReadExactlyAsync(buf).AsTask().WaitAsync(Deadline);
        return Encoding.ASCII.GetString(buf);
    }

    [Fact]
    public async Task Exec_v4_returns_output_and_exit_codes()
    {
        await using var sim = await SimCluster.StartAsync();
        await sim.Client.Pods.CreateAsync(PodOf("box"));
        var result = await sim.Client.RunAsync("box", ["sh", "-c", "echo out; echo err 1>&2; exit 3"]);
        Assert.Equal(3, result.ExitCode);
        Assert.Equal("out\n", result.Stdout);
        Assert.Equal("err\n", result.Stderr);
        Assert.Equal(ExecProtocol.V4, result.Protocol);
        Assert.Equal("NonZeroExitCode", result.Status!.Reason);

        var ok = await sim.Client.RunAsync("box", ["echo", "ok"]);
        Assert.Equal(0, ok.ExitCode);
        Assert.Equal("ok\n", ok.Stdout);

        var ex = await Assert.ThrowsAsync<KubeExecException>(() => sim.Client.RunAsync("box", ["/no/such/binary"]));
        Assert.Contains("no such file or directory", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_v5_sends_stdin_and_half_closes_it()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { EnableExecV5 = true });
        await sim.Client.Pods.CreateAsync(PodOf("box"));
        var input = new byte[300_000];
        Random.Shared.NextBytes(input);
        using var stdout = new MemoryStream();
        var result = await sim.Client.ExecAsync(new ExecRequest("box", ["cat"]) { Stdin = true }, new MemoryStream(input), stdout)
            .WaitAsync(Deadline);
        Assert.Equal(ExecProtocol.V5, result.Protocol);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(input, stdout.ToArray());

        var wc = await sim.Client.RunAsync("box", ["wc", "-c"], stdin: "hello"u8.ToArray()).WaitAsync(Deadline);
        Assert.Equal("5", wc.Stdout.Trim());
    }

    [Fact]
    public async Task An_unreachable_server_fails_fast_with_one_clear_error()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        using var client = new KubeClient(new KubeClientConfiguration
        {
            Server = new Uri($"https://127.0.0.1:{port}"),
            ContextName = "gone-ctx",
            SourceFile = "/home/u/.kube/config",
        });
        var ex = await Assert.ThrowsAsync<KubeConnectionException>(() => client.Pods.ListAsync().WaitAsync(Deadline));
        Assert.Equal("KubeServerUnreachable", ex.ErrorId);
        Assert.Contains($"https://127.0.0.1:{port}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("gone-ctx", ex.Message, StringComparison.Ordinal);
        Assert.Contains("/home/u/.kube/config", ex.Message, StringComparison.Ordinal);
        var pf = await Assert.ThrowsAsync<KubeConnectionException>(() => client.PortForwardAsync("p", 22).WaitAsync(Deadline));
        Assert.Contains("gone-ctx", pf.Message, StringComparison.Ordinal);
    }

    /// <summary>Credentials that take their time, as an exec plugin running a login does, then hand out the admin token.</summary>
    private sealed class SlowCredentials(string token, TimeSpan delay) : IKubeCredentials
    {
        public X509Certificate2? CurrentClientCertificate => null;

        public async ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken)
        {
            await Task.Delay(delay, cancellationToken);
            setHeader("Authorization", "Bearer " + token);
        }

        public ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken) => ValueTask.FromResult(false);
    }

    [Fact]
    public async Task Credentials_slower_than_the_request_timeout_are_waited_for_by_requests_and_port_forwards()
    {
        // An exec plugin has its own bound (a login may take minutes); the request's 30 s are for the server.
        await using var sim = await SimCluster.StartAsync();
        using var client = sim.NewClient(new SlowCredentials(sim.Server.AdminToken, TimeSpan.FromMilliseconds(800)),
            new KubeClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(300), StreamConnectTimeout = TimeSpan.FromMilliseconds(300) });
        Assert.Equal(sim.Namespace, (await client.Namespaces.GetAsync(sim.Namespace).WaitAsync(Deadline)).Metadata.Name);
        // The WebSocket upgrade too: the server answers (no such pod), where before the credentials' wait timed it out.
        var e = await Assert.ThrowsAnyAsync<KtConnect.Engine.KtException>(() => client.PortForwardAsync("no-such-pod", 22).WaitAsync(Deadline));
        Assert.NotEqual("KubeRequestTimeout", e.ErrorId);
    }

    [Fact]
    public async Task A_server_that_accepts_but_never_answers_times_out()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        using var client = new KubeClient(new KubeClientConfiguration { Server = new Uri($"http://127.0.0.1:{port}"), ContextName = "slow" },
            options: new KubeClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(500) });
        var ex = await Assert.ThrowsAsync<KubeRequestTimeoutException>(() => client.Pods.GetAsync("x").WaitAsync(Deadline));
        Assert.Equal("KubeRequestTimeout", ex.ErrorId);
        Assert.Contains("slow", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tls_mismatch_is_a_tls_error_naming_the_server()
    {
        await using var sim = await SimCluster.StartAsync();
        // Not trusting KubeSim's CA: the system store does not know it.
        using var untrusting = sim.NewClient(new StaticCredentials(sim.Server.AdminToken), trustCa: false);
        var ex = await Assert.ThrowsAsync<KubeTlsException>(() => untrusting.Namespaces.ListAsync().WaitAsync(Deadline));
        Assert.Equal("KubeTlsFailure", ex.ErrorId);
        Assert.Contains(sim.Server.BaseAddress.ToString().TrimEnd('/'), ex.Message, StringComparison.Ordinal);
        Assert.Contains("kubesim-ctx", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<KubeTlsException>(() => untrusting.PortForwardAsync("p", 22).WaitAsync(Deadline));

        // Plain HTTP to the HTTPS port.
        using var plain = new KubeClient(new KubeClientConfiguration { Server = new Uri("http://" + sim.Server.BaseAddress.Authority), ContextName = "plain" },
            options: new KubeClientOptions { RequestTimeout = TimeSpan.FromSeconds(5) });
        var plainEx = await Assert.ThrowsAnyAsync<KtConnect.Engine.KtException>(() => plain.Namespaces.ListAsync().WaitAsync(Deadline));
        Assert.Contains("plain", plainEx.Message, StringComparison.Ordinal);
    }
}
