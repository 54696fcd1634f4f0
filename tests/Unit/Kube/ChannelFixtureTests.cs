using System.Text;
using System.Text.Json;
using KtConnect.Engine.Kube;

namespace KtConnect.Tests.Unit.Kube;

public sealed class ChannelFixtureTests
{
    private static IEnumerable<JsonElement> ServerFrames(string file) =>
        KubeFixtures.Load(file).GetProperty("frames").EnumerateArray()
            .Where(f => f.GetProperty("dir").GetString() == "in" && f.GetProperty("opcode").GetString() == "binary");

    [Fact]
    public void Port_forward_v4_strips_the_port_prefix_on_both_channels_and_passes_data_through()
    {
        var demux = new PortForwardDemuxer(22);
        var data = new MemoryStream();
        foreach (var frame in ServerFrames("6a-portforward-ws-v4-channel.json"))
        {
            var payload = KubeFixtures.Hex(frame.GetProperty("hex").GetString()!);
            var (offset, length) = demux.Process(payload, messageStart: true, messageEnd: true);
            data.Write(payload, offset, length);
        }
        Assert.Equal(22, demux.DataPort);
        Assert.Equal(22, demux.ErrorPort);
        Assert.Null(demux.Error);
        var text = Encoding.ASCII.GetString(data.ToArray());
        Assert.StartsWith("SSH-2.0-OpenSSH_9.2p1", text, StringComparison.Ordinal);
        var expected = ServerFrames("6a-portforward-ws-v4-channel.json").Where(f => f.GetProperty("channel").GetInt32() == 0)
            .SelectMany(f => KubeFixtures.Hex(f.GetProperty("hex").GetString()!).Skip(1)).Skip(2).ToArray();
        Assert.Equal(expected, data.ToArray());
    }

    [Fact]
    public void Port_forward_frames_split_into_pieces_decode_the_same()
    {
        var whole = new PortForwardDemuxer(22);
        var pieces = new PortForwardDemuxer(22);
        var a = new MemoryStream();
        var b = new MemoryStream();
        foreach (var frame in ServerFrames("6a-portforward-ws-v4-channel.json"))
        {
            var payload = KubeFixtures.Hex(frame.GetProperty("hex").GetString()!);
            var (o, l) = whole.Process(payload, true, true);
            a.Write(payload, o, l);
            for (var i = 0; i < payload.Length; i++)
            {
                var (po, pl) = pieces.Process(payload.AsSpan(i, 1), i == 0, i == payload.Length - 1);
                b.Write(payload, i + po, pl);
            }
        }
        Assert.Equal(a.ToArray(), b.ToArray());
        Assert.Equal(22, pieces.DataPort);
    }

    [Fact]
    public void Port_forward_error_channel_text_becomes_the_error()
    {
        var demux = new PortForwardDemuxer(12345);
        foreach (var frame in ServerFrames("6d-portforward-ws-closed-port-12345.json"))
        {
            var (_, length) = demux.Process(KubeFixtures.Hex(frame.GetProperty("hex").GetString()!), true, true);
            Assert.Equal(0, length);
        }
        Assert.Equal(12345, demux.DataPort);
        Assert.StartsWith("error forwarding port 12345 to pod 30f1f4afac2eb6628db81525d1157bc5b5eccd445a2284e309f0a106dcfa95a5", demux.Error, StringComparison.Ordinal);
        Assert.Contains("connection refused", demux.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_port_prefix_for_another_port_is_a_protocol_error()
    {
        var demux = new PortForwardDemuxer(80);
        var ex = Assert.Throws<KubeProtocolException>(() => demux.Process([0, 0x16, 0x00], true, true));
        Assert.Equal("KubePortForwardProtocol", ex.ErrorId);
    }

    [Theory]
    [InlineData("7a-exec-ws-v5-v4-offer-exit3.json", 3, "out\n", "err\n")]
    [InlineData("7e-exec-ws-v4-exit0.json", 0, "ok\n", "")]
    public void Exec_v4_frames_give_output_and_exit_code(string file, int exitCode, string stdout, string stderr)
    {
        var fx = KubeFixtures.Load(file);
        Assert.Equal("v4.channel.k8s.io", fx.GetProperty("response").GetProperty("negotiated_protocol").GetString());
        var outs = new Dictionary<int, MemoryStream> { [1] = new(), [2] = new(), [3] = new() };
        foreach (var frame in ServerFrames(file))
        {
            var payload = KubeFixtures.Hex(frame.GetProperty("hex").GetString()!);
            outs[payload[0]].Write(payload, 1, payload.Length - 1);
        }
        Assert.Equal(stdout, Encoding.UTF8.GetString(outs[1].ToArray()));
        Assert.Equal(stderr, Encoding.UTF8.GetString(outs[2].ToArray()));
        var (code, status) = ExecProtocol.InterpretStatus(outs[3].ToArray(), ExecProtocol.V4, "p");
        Assert.Equal(exitCode, code);
        Assert.NotNull(status);
        Assert.Null(status.Kind);
    }

    [Fact]
    public void Exec_command_not_found_is_an_exec_failure_not_an_exit_code()
    {
        var status = ServerFrames("7f-exec-ws-v4-command-not-found.json")
            .Select(f => KubeFixtures.Hex(f.GetProperty("hex").GetString()!)).Single(p => p[0] == 3)[1..];
        var ex = Assert.Throws<KubeExecException>(() => ExecProtocol.InterpretStatus(status, ExecProtocol.V4, "sshd-fx"));
        Assert.Equal("KubeExecFailed", ex.ErrorId);
        Assert.Equal("InternalError", ex.Status!.Reason);
        Assert.Equal(500, ex.Status.Code);
        Assert.Contains("no such file or directory", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Exec_v1_plain_text_status_and_empty_status()
    {
        var status = ServerFrames("7c-exec-ws-v1-channel-exit3.json")
            .Select(f => KubeFixtures.Hex(f.GetProperty("hex").GetString()!)).Single(p => p[0] == 3)[1..];
        Assert.Equal(3, ExecProtocol.InterpretStatus(status, "channel.k8s.io", "p").ExitCode);
        Assert.Equal(0, ExecProtocol.InterpretStatus([], ExecProtocol.V4, "p").ExitCode);
    }
}
