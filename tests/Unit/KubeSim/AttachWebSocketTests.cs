using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Streaming;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// pods/attach over WebSocket at the byte level, with a raw RFC 6455 client and an in-memory main process behind
/// <see cref="IPodAttach"/>: the ready frame, output written after attaching (not before), stdin and resize reaching
/// the process, the Success status when the attach ends, v5's stdin close, and the answers before the upgrade.
/// </summary>
public sealed class AttachWebSocketTests
{
    private const string Ns = "att";
    private const string PodPath = "/api/v1/namespaces/att/pods/main/attach";

    /// <summary>A main process: output goes to the attachers of the moment; records stdin, resizes and ends of input.</summary>
    private sealed class FakeMainProcess : IPodAttach
    {
        private readonly List<Session> _sessions = [];

        public bool Running { get; set; } = true;

        public bool Tty { get; set; }

        public StringBuilder Stdin { get; } = new();

        public List<(int Width, int Height)> Resizes { get; } = [];

        public int InputEnds { get; private set; }

        public AttachRequest? LastRequest { get; private set; }

        public Task<IAttachSession> AttachAsync(AttachRequest request, JsonObject pod, CancellationToken cancellationToken)
        {
            LastRequest = request;
            if (!Running) throw AttachStartException.NotRunning(request);
            var s = new Session(this, request.Stdout, request.Stderr && !Tty);
            lock (_sessions) _sessions.Add(s);
            return Task.FromResult<IAttachSession>(s);
        }

        public void Write(bool stderr, string text)
        {
            lock (_sessions)
            {
                foreach (var s in _sessions) (stderr ? s.Err : s.Out)?.Writer.TryWrite(Encoding.UTF8.GetBytes(text));
            }
        }

        public void Exit()
        {
            lock (_sessions)
            {
                foreach (var s in _sessions) s.Detach();
            }
        }

        public sealed class Session(FakeMainProcess owner, bool stdout, bool stderr) : IAttachSession
        {
            public Channel<byte[]>? Out { get; } = stdout ? Channel.CreateUnbounded<byte[]>() : null;

            public Channel<byte[]>? Err { get; } = stderr ? Channel.CreateUnbounded<byte[]>() : null;

            public bool Tty => owner.Tty;

            public ChannelReader<byte[]>? Stdout => Out?.Reader;

            public ChannelReader<byte[]>? Stderr => Err?.Reader;

            public Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
            {
                lock (owner.Stdin) owner.Stdin.Append(Encoding.UTF8.GetString(data.Span));
                return Task.CompletedTask;
            }

            public void EndStdin()
            {
                owner.InputEnds++;
                Detach(); // stdin without stdinOnce: the attacher's output ends with its input
            }

            public Task ResizeAsync(int width, int height, CancellationToken cancellationToken)
            {
                lock (owner.Resizes) owner.Resizes.Add((width, height));
                return Task.CompletedTask;
            }

            public void Detach()
            {
                Out?.Writer.TryComplete();
                Err?.Writer.TryComplete();
            }

            public ValueTask DisposeAsync()
            {
                lock (owner._sessions) owner._sessions.Remove(this);
                Detach();
                return ValueTask.CompletedTask;
            }
        }
    }

    private static async Task<(SimClient Client, FakeMainProcess Main)> StartAsync(bool v5 = false, bool runPods = true)
    {
        var main = new FakeMainProcess();
        var client = await SimClient.StartAsync(new KubeSimOptions { PodAttach = main, EnableExecV5 = v5, RunPods = runPods });
        await client.CreateNamespaceAsync(Ns);
        client.Server.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"main","namespace":"att"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}""");
        if (runPods) await WaitForNodeAsync(client);
        return (client, main);
    }

    private static Task WaitForNodeAsync(SimClient client) =>
        Wait.UntilAsync(() => client.Server.Store.Get(KtConnect.KubeSim.Store.ResourceTypes.Pods, Ns, "main")?["spec"]?["nodeName"] is not null,
            "the pod to be bound to the node");

    private static async Task<RawWebSocket.Frame> NextAsync(RawWebSocket ws) =>
        await ws.ReadFrameAsync() ?? throw new IOException("connection ended");

    private static string Text(RawWebSocket.Frame f) => Encoding.UTF8.GetString(f.Payload, 1, f.Payload.Length - 1);

    [Fact]
    public async Task V4_attach_streams_output_from_then_on_takes_stdin_and_resize_and_ends_with_Success()
    {
        var (c, main) = await StartAsync();
        await using var client = c;
        main.Write(false, "before attaching\n"); // nobody attached: not replayed later

        await using var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?container=c&stdin=true&stdout=true&stderr=true", "v4.channel.k8s.io");
        Assert.Equal("HTTP/1.1 101 Switching Protocols", ws.StatusLine);
        Assert.Equal("v4.channel.k8s.io", ws.Header("Sec-WebSocket-Protocol"));
        Assert.Equal(new AttachRequest(Ns, "main", "c", true, true, true, false), main.LastRequest);
        var ready = await NextAsync(ws);
        Assert.Equal("8201" + "01", Convert.ToHexStringLower(ready.Wire)); // binary, FIN, [1]: the empty ready frame on stdout

        main.Write(false, "out\n");
        var stdout = await NextAsync(ws);
        Assert.Equal("8205016f75740a", Convert.ToHexStringLower(stdout.Wire)); // [1] "out\n"
        main.Write(true, "err\n");
        Assert.Equal([2, .. "err\n"u8], (await NextAsync(ws)).Payload);

        await ws.SendFrameAsync(2, [0, .. "typed\n"u8]);
        await ws.SendFrameAsync(2, [4, .. """{"Width":120,"Height":40}"""u8, (byte)'\n']);
        await Wait.UntilAsync(() => main.Stdin.ToString() == "typed\n" && main.Resizes.Count == 1, "the typed line and one resize");
        Assert.Equal((120, 40), main.Resizes[0]);

        main.Exit();
        var status = await NextAsync(ws);
        Assert.Equal(3, status.Payload[0]);
        Assert.Equal("""{"metadata":{},"status":"Success"}""", Text(status));
        var close = await NextAsync(ws);
        Assert.Equal(8, close.Opcode);
        Assert.Equal("03e8", close.Hex);
        Assert.Equal(0, main.InputEnds);
    }

    [Fact]
    public async Task V5_stdin_close_ends_the_attachers_input_and_so_the_attach()
    {
        var (c, main) = await StartAsync(v5: true);
        await using var client = c;
        await using var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdin=true&stdout=true", "v5.channel.k8s.io, v4.channel.k8s.io");
        Assert.Equal("v5.channel.k8s.io", ws.Header("Sec-WebSocket-Protocol"));
        Assert.Equal("01", (await NextAsync(ws)).Hex);
        await ws.SendFrameAsync(2, [0, .. "abc"u8]);
        await ws.SendFrameAsync(2, [255, 0]);
        var status = await NextAsync(ws);
        Assert.Equal("""{"metadata":{},"status":"Success"}""", Text(status));
        Assert.Equal(8, (await NextAsync(ws)).Opcode);
        Assert.Equal("abc", main.Stdin.ToString());
        Assert.Equal(1, main.InputEnds);
    }

    [Fact]
    public async Task A_tty_container_has_no_stderr_channel_and_the_legacy_protocol_no_status()
    {
        var (c, main) = await StartAsync();
        await using var client = c;
        main.Tty = true;
        await using var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true&stderr=true", "channel.k8s.io");
        Assert.Equal("channel.k8s.io", ws.Header("Sec-WebSocket-Protocol"));
        Assert.Equal("01", (await NextAsync(ws)).Hex);
        main.Write(true, "not on a channel of its own\n"); // with a tty, stderr is the terminal's (stdout)
        main.Write(false, "on the terminal\r\n");
        Assert.Equal([1, .. "on the terminal\r\n"u8], (await NextAsync(ws)).Payload);
        main.Exit();
        Assert.Equal(8, (await NextAsync(ws)).Opcode); // v1 sends no Success status
    }

    [Fact]
    public async Task The_client_closing_detaches_without_a_status()
    {
        var (c, main) = await StartAsync();
        await using var client = c;
        await using var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true", "v4.channel.k8s.io");
        Assert.Equal("01", (await NextAsync(ws)).Hex);
        await ws.SendFrameAsync(8, [0x03, 0xe8]);
        var answer = await NextAsync(ws);
        Assert.Equal(8, answer.Opcode);
        main.Write(false, "after the client left\n");
        Assert.Null(await ws.ReadFrameAsync());
    }

    [Fact]
    public async Task Answers_before_the_upgrade_are_the_servers()
    {
        var (c, main) = await StartAsync();
        await using var client = c;

        await using (var ws = await RawWebSocket.ConnectAsync(c.Server, "/api/v1/namespaces/att/pods/nosuch/attach?stdout=true", "v4.channel.k8s.io"))
        {
            Assert.Equal("HTTP/1.1 404 Not Found", ws.StatusLine);
            var body = JsonNode.Parse(await ws.ReadBodyAsync())!;
            Assert.Equal("pods \"nosuch\" not found", body["message"]!.GetValue<string>());
            Assert.Equal("NotFound", body["reason"]!.GetValue<string>());
        }
        await using (var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true&container=x", "v4.channel.k8s.io"))
        {
            Assert.Equal("HTTP/1.1 400 Bad Request", ws.StatusLine);
            Assert.Equal("container x is not valid for pod main", JsonNode.Parse(await ws.ReadBodyAsync())!["message"]!.GetValue<string>());
        }
        await using (var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true", null, upgrade: false))
        {
            Assert.Equal("HTTP/1.1 400 Bad Request", ws.StatusLine);
            Assert.Equal("Upgrade request required", JsonNode.Parse(await ws.ReadBodyAsync())!["message"]!.GetValue<string>());
        }
        await using (var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?tty=true", "v4.channel.k8s.io"))
        {
            Assert.Equal("HTTP/1.1 400 Bad Request", ws.StatusLine);
            Assert.Equal("you must specify at least 1 of stdin, stdout, stderr", await ws.ReadBodyAsync());
        }
        main.Running = false;
        await using (var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true", "v4.channel.k8s.io"))
        {
            // The kubelet's own error (Kubelet.GetAttach), passed through by the apiserver's proxy: 500, plain text.
            Assert.Equal("HTTP/1.1 500 Internal Server Error", ws.StatusLine);
            Assert.StartsWith("text/plain", ws.Header("Content-Type"), StringComparison.Ordinal);
            Assert.Equal("container c not found in pod main_att", await ws.ReadBodyAsync());
        }

        c.Server.Hooks.Authorize = info => info.ResourceWithSubresource != "pods/attach";
        await using (var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true", "v4.channel.k8s.io"))
        {
            Assert.Equal("HTTP/1.1 403 Forbidden", ws.StatusLine);
            Assert.Contains("cannot get resource \"pods/attach\" in API group \"\" in the namespace \"att\"",
                JsonNode.Parse(await ws.ReadBodyAsync())!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_pod_without_a_node_cannot_be_attached()
    {
        var (c, _) = await StartAsync(runPods: false);
        await using var client = c;
        var (status, body, _) = await c.PostAsync(PodPath + "?stdout=true", "");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("pod main does not have a host assigned", body!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Without_a_main_process_seam_every_attach_is_the_kubelets_container_not_found()
    {
        await using var c = await SimClient.StartAsync();
        await c.CreateNamespaceAsync(Ns);
        c.Server.Apply("""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"main","namespace":"att"},"spec":{"nodeName":"kubesim-node","containers":[{"name":"c","image":"busybox"}]}}""");
        await using var ws = await RawWebSocket.ConnectAsync(c.Server, PodPath + "?stdout=true", "v4.channel.k8s.io");
        Assert.Equal("HTTP/1.1 500 Internal Server Error", ws.StatusLine);
        Assert.Equal("container c not found in pod main_att", await ws.ReadBodyAsync());
    }
}
