using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Streaming;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// Port-forward and exec sessions replayed frame by frame from 6a-6h and 7a-7h with a raw RFC 6455 client:
/// the handshake answer, then every server frame's opcode, FIN and payload bytes against the recording. The fake
/// sshd behind the pod sends exactly the recorded bytes, so data frames compare byte for byte too.
/// </summary>
public sealed class WebSocketFidelityTests
{
    private const string Pod = "sshd-fx-857b5bc684-5gd56";

    private sealed class Session : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _cts = new();
        private Task _accept = Task.CompletedTask;

        public required SimClient Client { get; init; }

        public static async Task<Session> StartAsync(string? sshdFixture = null, bool v5 = false)
        {
            var network = new LocalPodNetwork();
            var session = new Session { Client = await SimClient.StartAsync(new KubeSimOptions { PodNetwork = network, EnableExecV5 = v5 }) };
            await session.Client.CreateNamespaceAsync("fixtures");
            session.Client.Server.Apply(HttpFidelityTests.PodFromFixture());
            if (sshdFixture is not null)
            {
                session._listener.Start();
                network.Map("fixtures", Pod, 22, (IPEndPoint)session._listener.LocalEndpoint);
                session._accept = session.FakeSshdAsync(Fixtures.Load(sshdFixture)["frames"]!.AsArray(), session._cts.Token);
            }
            return session;
        }

        /// <summary>Sends the recorded banner at once, and after the client's first bytes the recorded reply.</summary>
        private async Task FakeSshdAsync(JsonArray frames, CancellationToken ct)
        {
            var fromPod = frames.Where(f => f!["dir"]!.GetValue<string>() == "in" && f["channel"]?.GetValue<int>() == 0 && f["data_len"]!.GetValue<int>() > 2)
                .Select(f => Convert.FromHexString(f!["data_hex"]!.GetValue<string>())).ToList();
            try
            {
                while (true)
                {
                    var tcp = await _listener.AcceptTcpClientAsync(ct);
                    _ = Task.Run(async () =>
                    {
                        using (tcp)
                        {
                            var s = tcp.GetStream();
                            if (fromPod.Count > 0) await s.WriteAsync(fromPod[0], ct);
                            var buf = new byte[4096];
                            if (await s.ReadAsync(buf, ct) > 0 && fromPod.Count > 1) await s.WriteAsync(fromPod[1], ct);
                            while (await s.ReadAsync(buf, ct) > 0)
                            {
                            }
                        }
                    }, ct);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (SocketException)
            {
            }
            catch (InvalidOperationException) when (ct.IsCancellationRequested)
            {
                // Stopped between two accepts ("Not listening").
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            _listener.Stop();
            await _accept;
            await Client.DisposeAsync();
            _cts.Dispose();
        }
    }

    private static string Protocols(string id) => Fixtures.Load(id)["request"]!["headers"]!["Sec-WebSocket-Protocol"]?.GetValue<string>()!;

    private static void AssertHandshake(string id, RawWebSocket ws)
    {
        var expected = Fixtures.Load(id)["response"]!;
        Assert.Equal(expected["status_line"]!.GetValue<string>(), ws.StatusLine);
        var headers = (JsonObject)expected["headers"]!;
        foreach (var (name, value) in headers)
        {
            if (name == "Sec-WebSocket-Accept") Assert.NotNull(ws.Header(name));
            else if (name == "Sec-WebSocket-Protocol" && value!.GetValue<string>().Length == 0) continue; // see README: Kestrel omits the empty header
            else if (name != "Date") Assert.Equal(value!.GetValue<string>(), ws.Header(name), StringComparer.OrdinalIgnoreCase);
        }
    }

    /// <summary>Plays the recorded session: sends our frames, compares every server frame in order.</summary>
    private static async Task ReplayFramesAsync(string id, RawWebSocket ws, Func<JsonObject, RawWebSocket.Frame, bool>? custom = null)
    {
        foreach (var f in Fixtures.Load(id)["frames"]!.AsArray().Cast<JsonObject>())
        {
            var opcode = f["opcode"]!.GetValue<string>() switch
            {
                "text" => 1,
                "binary" => 2,
                "close" => 8,
                "ping" => 9,
                "pong" => 10,
                var other => throw new InvalidOperationException(other),
            };
            if (f["dir"]!.GetValue<string>() == "out")
            {
                await ws.SendFrameAsync(opcode, Convert.FromHexString(f["hex"]!.GetValue<string>()));
                continue;
            }
            var frame = await ws.ReadFrameAsync();
            Assert.True(frame is not null, $"{id}: connection ended, expected {f["note"]}");
            Assert.Equal(opcode, frame.Opcode);
            Assert.True(frame.Fin);
            if (custom is not null && custom(f, frame)) continue;
            Assert.True(f["hex"]!.GetValue<string>() == frame.Hex, $"{id}: {f["note"]}: expected {f["hex"]}, got {frame.Hex}");
            Assert.Equal(f["frame_hex"]!.GetValue<string>(), frame.WireHex);
        }
    }

    [Theory]
    [InlineData("6a")]
    [InlineData("6b")]
    [InlineData("6e")]
    [InlineData("6g")]
    public async Task Port_forward_sessions_are_frame_identical(string id)
    {
        await using var s = await Session.StartAsync(sshdFixture: id);
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path(id), Protocols(id));
        AssertHandshake(id, ws);
        await ReplayFramesAsync(id, ws);
    }

    [Fact]
    public async Task Port_forward_to_a_closed_port_reports_on_the_error_channel_then_closes_1000()
    {
        await using var s = await Session.StartAsync();
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path("6d"), Protocols("6d"));
        AssertHandshake("6d", ws);
        await ReplayFramesAsync("6d", ws, (expected, actual) =>
        {
            if (expected["channel"]?.GetValue<int>() != 1 || expected["data_len"]!.GetValue<int>() <= 2) return false;
            Assert.Equal(1, actual.Payload[0]);
            Assert.StartsWith("error forwarding port 12345 to pod ", Encoding.UTF8.GetString(actual.Payload, 1, actual.Payload.Length - 1), StringComparison.Ordinal);
            Assert.Contains("connection refused", Encoding.UTF8.GetString(actual.Payload), StringComparison.Ordinal);
            return true;
        });
    }

    [Fact]
    public async Task Port_forward_refuses_the_spdy_protocol_name_with_a_bare_403()
    {
        await using var s = await Session.StartAsync();
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path("6c"), Protocols("6c"));
        Assert.Equal("HTTP/1.1 403 Forbidden", ws.StatusLine);
        Assert.Equal("close", ws.Header("Connection"));
        Assert.Equal("", await ws.ReadBodyAsync());
    }

    [Theory]
    [InlineData("6h")]
    [InlineData("7h")]
    public async Task Missing_parameters_are_plain_text_400s(string id)
    {
        await using var s = await Session.StartAsync();
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path(id), Protocols(id));
        var expected = Fixtures.Load(id)["response"]!;
        Assert.Equal(expected["status_line"]!.GetValue<string>(), ws.StatusLine);
        Assert.Equal("text/plain; charset=utf-8", ws.Header("Content-Type"));
        Assert.Equal(expected["body"]!.GetValue<string>(), await ws.ReadBodyAsync());
    }

    [Theory]
    [InlineData("7b")]
    [InlineData("7e")]
    public async Task Exec_sessions_are_frame_identical(string id)
    {
        await using var s = await Session.StartAsync();
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path(id), Protocols(id));
        AssertHandshake(id, ws);
        await ReplayFramesAsync(id, ws);
    }

    [Theory]
    [InlineData("7a")]
    [InlineData("7c")]
    [InlineData("7d")]
    public async Task Exec_with_output_on_two_channels_and_exit_3_matches_frame_for_frame(string id)
    {
        await using var s = await Session.StartAsync();
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path(id), Protocols(id));
        AssertHandshake(id, ws);
        var recorded = Fixtures.Load(id)["frames"]!.AsArray().Cast<JsonObject>().Where(f => f["dir"]!.GetValue<string>() == "in").ToList();
        var frames = new List<RawWebSocket.Frame>();
        while (await ws.ReadFrameAsync() is { } f)
        {
            frames.Add(f);
            if (f.Opcode == 8) break;
        }
        await ws.SendFrameAsync(8, [0x03, 0xe8]);
        Assert.Equal(recorded.Count, frames.Count);
        // stdout and stderr are separate pipes, so only the order within each channel is fixed.
        Assert.Equal(recorded[0]["frame_hex"]!.GetValue<string>(), frames[0].WireHex);
        Assert.Equal(recorded[^2]["frame_hex"]!.GetValue<string>(), frames[^2].WireHex);
        Assert.Equal(recorded[^1]["frame_hex"]!.GetValue<string>(), frames[^1].WireHex);
        Assert.Equal(recorded.Skip(1).SkipLast(2).Select(f => f["frame_hex"]!.GetValue<string>()).Order(),
            frames.Skip(1).SkipLast(2).Select(f => f.WireHex).Order());
    }

    [Fact]
    public async Task Exec_of_a_missing_binary_is_a_500_InternalError_status()
    {
        await using var s = await Session.StartAsync();
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server, Fixtures.Path("7f"), Protocols("7f"));
        AssertHandshake("7f", ws);
        await ReplayFramesAsync("7f", ws, (expected, actual) =>
        {
            if (expected["channel"]?.GetValue<int>() != 3) return false;
            var want = JsonNode.Parse(expected["data_text"]!.GetValue<string>());
            var got = JsonNode.Parse(Encoding.UTF8.GetString(actual.Payload, 1, actual.Payload.Length - 1));
            Assert.Empty(Fixtures.ShapeDifferences(want, got));
            Assert.Equal("InternalError", got!["reason"]!.GetValue<string>());
            Assert.Equal(500, got["code"]!.GetValue<int>());
            Assert.Contains("\"/no/such/binary\": stat /no/such/binary: no such file or directory", got["message"]!.GetValue<string>(), StringComparison.Ordinal);
            return true;
        });
    }

    [Fact]
    public async Task Exec_v5_when_enabled_lets_the_client_close_stdin()
    {
        await using var s = await Session.StartAsync(v5: true);
        await using var ws = await RawWebSocket.ConnectAsync(s.Client.Server,
            $"/api/v1/namespaces/fixtures/pods/{Pod}/exec?command=cat&stdin=true&stdout=true", "v5.channel.k8s.io, v4.channel.k8s.io");
        Assert.Equal("v5.channel.k8s.io", ws.Header("Sec-WebSocket-Protocol"));
        Assert.Equal("01", (await ws.ReadFrameAsync())!.Hex);
        await ws.SendFrameAsync(2, [0, .. "abc"u8]);
        await ws.SendFrameAsync(2, [255, 0]);
        var output = new StringBuilder();
        RawWebSocket.Frame? f;
        while ((f = await ws.ReadFrameAsync()) is { Opcode: 2 } && f.Payload[0] == 1) output.Append(Encoding.UTF8.GetString(f.Payload, 1, f.Payload.Length - 1));
        Assert.Equal("abc", output.ToString());
        Assert.Equal(3, f!.Payload[0]);
        Assert.Equal("""{"metadata":{},"status":"Success"}""", Encoding.UTF8.GetString(f.Payload, 1, f.Payload.Length - 1));
        Assert.Equal(8, (await ws.ReadFrameAsync())!.Opcode);
    }
}
