using System.Net.WebSockets;
using System.Text;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using Microsoft.AspNetCore.Http;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>PortForwardStream against scripted server frames (served through KubeSim's request hook).</summary>
public sealed class PortForwardStreamTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private static async Task ScriptAsync(HttpContext ctx, params byte[][] frames)
    {
        using var ws = await ctx.WebSockets.AcceptWebSocketAsync("v4.channel.k8s.io");
        foreach (var f in frames) await ws.SendAsync(f, WebSocketMessageType.Binary, true, CancellationToken.None);
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        var buf = new byte[1024];
        try
        {
            while ((await ws.ReceiveAsync(buf, CancellationToken.None)).MessageType != WebSocketMessageType.Close)
            {
            }
        }
        catch (WebSocketException)
        {
        }
    }

    [Fact]
    public async Task Data_before_the_error_is_delivered_then_the_error_is_thrown()
    {
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest) return false;
            await ScriptAsync(ctx, [0, 0x50, 0], [1, 0x50, 0], [0, (byte)'h', (byte)'i'], [1, .. "boom: reset by pod"u8.ToArray()]);
            return true;
        };
        await using var stream = await sim.Client.PortForwardAsync("any", 80);
        var buf = new byte[16];
        var n = await stream.ReadAsync(buf).AsTask().WaitAsync(Deadline);
        Assert.Equal("hi", Encoding.ASCII.GetString(buf, 0, n));
        var ex = await Assert.ThrowsAsync<KubePortForwardException>(() => stream.ReadAsync(buf).AsTask().WaitAsync(Deadline));
        Assert.Contains("boom: reset by pod", ex.Message, StringComparison.Ordinal);
        Assert.Contains("pod any port 80", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_clean_server_close_is_end_of_stream()
    {
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest) return false;
            await ScriptAsync(ctx, [0, 0x50, 0], [1, 0x50, 0], [0, (byte)'x']);
            return true;
        };
        await using var stream = await sim.Client.PortForwardAsync("any", 80);
        var buf = new byte[16];
        Assert.Equal(1, await stream.ReadAsync(buf).AsTask().WaitAsync(Deadline));
        Assert.Equal(0, await stream.ReadAsync(buf).AsTask().WaitAsync(Deadline));
        Assert.Equal(0, await stream.ReadAsync(buf).AsTask().WaitAsync(Deadline));
    }

    [Fact]
    public async Task Data_split_across_frames_and_small_reads_arrives_whole_and_in_order_past_other_channels()
    {
        var payload = Enumerable.Range(0, 180).Select(i => (byte)('a' + i % 26)).ToArray();
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest) return false;
            using var ws = await ctx.WebSockets.AcceptWebSocketAsync("v4.channel.k8s.io");
            async Task Send(byte[] piece, bool end) => await ws.SendAsync(piece, WebSocketMessageType.Binary, end, CancellationToken.None);
            // The data channel's port prefix and first bytes in one message, split inside the prefix.
            await Send([0, 0x50], false);
            await Send([0, .. payload[..10]], true);
            await Send([1, 0x50, 0], true);
            // One data message in three frames, then a channel nobody asked for, then one more data byte.
            await Send([0, .. payload[10..110]], false);
            await Send(payload[110..160], false);
            await Send(payload[160..179], true);
            await Send([5, (byte)'z', (byte)'z'], true);
            await Send([0], true);
            await Send([0, payload[179]], true);
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            var buf = new byte[1024];
            try
            {
                while ((await ws.ReceiveAsync(buf, CancellationToken.None)).MessageType != WebSocketMessageType.Close)
                {
                }
            }
            catch (WebSocketException)
            {
            }
            return true;
        };
        await using var stream = await sim.Client.PortForwardAsync("any", 80);
        var received = new List<byte>();
        var small = new byte[7];
        int n;
        while ((n = await stream.ReadAsync(small).AsTask().WaitAsync(Deadline)) > 0) received.AddRange(small[..n]);
        Assert.Equal(Encoding.ASCII.GetString(payload), Encoding.ASCII.GetString(received.ToArray()));
    }

    [Fact]
    public async Task A_message_whose_first_frame_is_empty_still_starts_with_its_channel_byte()
    {
        // A proxy may re-frame a message so that its first frame carries nothing: the channel byte is then in the next.
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest) return false;
            using var ws = await ctx.WebSockets.AcceptWebSocketAsync("v4.channel.k8s.io");
            async Task Send(byte[] piece, bool end) => await ws.SendAsync(piece, WebSocketMessageType.Binary, end, CancellationToken.None);
            await Send([], false);
            await Send([0, 0x50, 0, .. "hello "u8.ToArray()], true);
            await Send([1, 0x50, 0], true);
            await Send([], false);
            await Send([0, .. "world"u8.ToArray()], true);
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            return true;
        };
        await using var stream = await sim.Client.PortForwardAsync("any", 80);
        using var all = new MemoryStream();
        await stream.CopyToAsync(all).WaitAsync(Deadline);
        Assert.Equal("hello world", Encoding.ASCII.GetString(all.ToArray()));
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_takes_none_and_reports_the_error_channel()
    {
        // As on a socket: relays wait for data this way without holding a buffer; a 0 before EOF would end them.
        var goOn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (!ctx.WebSockets.IsWebSocketRequest) return false;
            using var ws = await ctx.WebSockets.AcceptWebSocketAsync("v4.channel.k8s.io");
            async Task Send(byte[] piece) => await ws.SendAsync(piece, WebSocketMessageType.Binary, true, CancellationToken.None);
            await Send([0, 0x50, 0]);
            await Send([1, 0x50, 0]);
            await goOn.Task;
            await Send([0, .. "data"u8.ToArray()]);
            await Send([1, .. "connection refused"u8.ToArray()]);
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            return true;
        };
        await using var stream = await sim.Client.PortForwardAsync("any", 80);
        var wait = stream.ReadAsync(Memory<byte>.Empty).AsTask();
        await Task.Delay(300);
        Assert.False(wait.IsCompleted);
        goOn.SetResult();
        Assert.Equal(0, await wait.WaitAsync(Deadline));
        var buf = new byte[16];
        Assert.Equal("data", Encoding.ASCII.GetString(buf, 0, await stream.ReadAsync(buf).AsTask().WaitAsync(Deadline)));
        var e = await Assert.ThrowsAsync<KubePortForwardException>(() => stream.ReadAsync(Memory<byte>.Empty).AsTask().WaitAsync(Deadline));
        Assert.Contains("connection refused", e.Message, StringComparison.Ordinal);
    }

    private sealed class Refreshing(string first, string second) : IKubeCredentials
    {
        public int Refreshes { get; private set; }
        public System.Security.Cryptography.X509Certificates.X509Certificate2? CurrentClientCertificate => null;

        public ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken)
        {
            setHeader("Authorization", "Bearer " + (Refreshes == 0 ? first : second));
            return ValueTask.CompletedTask;
        }

        public ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken)
        {
            Refreshes++;
            return ValueTask.FromResult(true);
        }
    }

    [Fact]
    public async Task A_refused_upgrade_keeps_the_status_and_401_refreshes_once()
    {
        await using var sim = await SimCluster.StartAsync();
        var creds = new Refreshing("stale", sim.Server.AdminToken);
        using var client = sim.NewClient(creds);
        await client.Pods.CreateAsync(new Pod
        {
            Metadata = new ObjectMeta { Name = "box" },
            Spec = new PodSpec { Containers = [new Container { Name = "c", Image = "busybox" }] },
        });
        Assert.Equal(1, creds.Refreshes);
        var ok = await client.RunAsync("box", ["echo", "hi"]).WaitAsync(Deadline);
        Assert.Equal("hi\n", ok.Stdout);

        // The same on a WebSocket upgrade: the 401 is read from the refused handshake and the upgrade retried once.
        var wsCreds = new Refreshing("stale", sim.Server.AdminToken);
        using (var wsFirst = sim.NewClient(wsCreds))
        {
            Assert.Equal(0, (await wsFirst.RunAsync("box", ["true"]).WaitAsync(Deadline)).ExitCode);
            Assert.Equal(1, wsCreds.Refreshes);
        }

        sim.Server.Hooks.Authorize = info => info.Subresource != "exec";
        var ex = await Assert.ThrowsAsync<KubeForbiddenException>(() => client.RunAsync("box", ["echo", "hi"]).WaitAsync(Deadline));
        Assert.Contains("pods/exec", ex.ServerMessage, StringComparison.Ordinal);
        Assert.Equal("pods/exec", ex.Resource);
    }
}
