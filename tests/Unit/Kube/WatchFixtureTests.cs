using System.Text;
using System.Text.Json;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Json;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Tests.Unit.Kube;

public sealed class WatchFixtureTests
{
    public static TheoryData<string> Streams => new() { "5b-watch-pods-bookmarks", "5f-watch-too-old-rv-410", "5g-watch-no-rv-initial-added" };

    private static KubeClient ClientFor(int port) => new(new KubeClientConfiguration
    {
        Server = new Uri($"http://127.0.0.1:{port}"),
        ContextName = "raw",
        Namespace = "fixtures",
    });

    /// <summary>The recorded bytes, chunk framing included, served by a raw socket: HttpClient de-chunks, our decoder parses.</summary>
    [Theory]
    [MemberData(nameof(Streams))]
    public async Task Raw_chunked_watch_streams_decode_to_the_recorded_events(string name)
    {
        var raw = await File.ReadAllBytesAsync(KubeFixtures.PathOf(name + ".raw"));
        var head = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nDate: Sat, 21 Nov 2026 14:02:00 GMT\r\n\r\n");
        await using var server = new RawHttpServer([.. head, .. raw]);
        using var client = ClientFor(server.Port);
        var events = new List<WatchEvent<Pod>>();
        await foreach (var ev in client.Pods.WatchAsync(null, new WatchOptions { ResourceVersion = "1263", TimeoutSeconds = 60 }))
            events.Add(ev);
        AssertMatchesRecording(KubeFixtures.Load(name + ".json"), events);
        Assert.Contains("GET /api/v1/namespaces/fixtures/pods?watch=1&resourceVersion=1263&timeoutSeconds=60&allowWatchBookmarks=true ", server.Request, StringComparison.Ordinal);
        Assert.True(client.Clock.IsKnown);
    }

    /// <summary>The de-chunked body fed one byte per read, and in the recorded chunk boundaries: the decoder must not care.</summary>
    [Theory]
    [MemberData(nameof(Streams))]
    public async Task The_decoder_is_indifferent_to_read_boundaries(string name)
    {
        var body = KubeFixtures.Dechunk(await File.ReadAllBytesAsync(KubeFixtures.PathOf(name + ".raw")));
        var events = new List<WatchEvent<Pod>>();
        await foreach (var ev in WatchStreamReader.ReadAsync(new TrickleStream(body, 1), KubeJsonContext.Default.Pod))
            events.Add(ev);
        AssertMatchesRecording(KubeFixtures.Load(name + ".json"), events);
    }

    [Fact]
    public void The_410_error_event_carries_an_expired_status()
    {
        var body = KubeFixtures.Dechunk(File.ReadAllBytes(KubeFixtures.PathOf("5f-watch-too-old-rv-410.raw")));
        var ev = WatchStreamReader.ParseEvent(body.AsSpan().TrimEnd((byte)'\n'), KubeJsonContext.Default.Pod);
        Assert.Equal(WatchEventType.Error, ev.Type);
        Assert.Null(ev.Object);
        Assert.Equal(410, ev.Status!.Code);
        Assert.Equal("Expired", ev.Status.Reason);
        Assert.StartsWith("too old resource version: 1 (", ev.Status.Message, StringComparison.Ordinal);
        var ex = KubeErrorFactory.Create(KubeErrorFactory.FromStatus(ev.Status, new KubeRequestInfo("watch", "pods", "fixtures", null, "s", "c")));
        Assert.IsType<KubeGoneException>(ex);
    }

    [Fact]
    public async Task A_stream_cut_inside_an_event_is_a_decode_error()
    {
        var body = Encoding.UTF8.GetBytes("{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}}\n{\"type\":\"MODIFIED\",\"obj");
        var events = new List<WatchEvent<Pod>>();
        var ex = await Assert.ThrowsAsync<KtConnect.Engine.Kube.KubeProtocolException>(async () =>
        {
            await foreach (var ev in WatchStreamReader.ReadAsync(new MemoryStream(body), KubeJsonContext.Default.Pod)) events.Add(ev);
        });
        Assert.Equal("KubeWatchDecode", ex.ErrorId);
        Assert.Single(events);
    }

    [Theory]
    [InlineData("[1,2]")]
    [InlineData("{\"type\":\"ADDED\"}")]
    [InlineData("{\"type\":\"EXPLODED\",\"object\":{}}")]
    [InlineData("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":5}}}")]
    public async Task Malformed_events_are_rejected_with_a_typed_error(string text)
    {
        var ex = await Assert.ThrowsAsync<KtConnect.Engine.Kube.KubeProtocolException>(async () =>
        {
            await foreach (var ev in WatchStreamReader.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(text)), KubeJsonContext.Default.Pod))
            {
            }
        });
        Assert.Equal("KubeWatchDecode", ex.ErrorId);
    }

    [Fact]
    public async Task Pretty_printed_events_without_newline_framing_decode()
    {
        var text = "{\n  \"type\": \"ADDED\",\n  \"object\": {\"metadata\": {\"name\": \"a\", \"resourceVersion\": \"5\"}}\n}{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}";
        var events = new List<WatchEvent<Pod>>();
        await foreach (var ev in WatchStreamReader.ReadAsync(new TrickleStream(Encoding.UTF8.GetBytes(text), 7), KubeJsonContext.Default.Pod)) events.Add(ev);
        Assert.Equal([WatchEventType.Added, WatchEventType.Bookmark], events.Select(e => e.Type));
        Assert.Equal("9", events[1].Object!.Metadata.ResourceVersion);
    }

    [Fact]
    public async Task Braces_and_escaped_quotes_inside_strings_do_not_end_an_event()
    {
        var text = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"annotations\":{\"x\":\"}{ \\\" ]\\\\\"}}}}\n"
            + "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}";
        var events = new List<WatchEvent<Pod>>();
        await foreach (var ev in WatchStreamReader.ReadAsync(new TrickleStream(Encoding.UTF8.GetBytes(text), 3), KubeJsonContext.Default.Pod)) events.Add(ev);
        Assert.Equal(["a", "b"], events.Select(e => e.Object!.Metadata.Name));
        Assert.Equal("}{ \" ]\\", events[0].Object!.Metadata.GetAnnotation("x"));
    }

    private static void AssertMatchesRecording(JsonElement fixture, List<WatchEvent<Pod>> events)
    {
        var recorded = fixture.GetProperty("response").GetProperty("body").EnumerateArray().ToArray();
        Assert.Equal(recorded.Length, events.Count);
        for (var i = 0; i < recorded.Length; i++)
        {
            var type = recorded[i].GetProperty("type").GetString();
            Assert.Equal(type, events[i].Type.ToString().ToUpperInvariant());
            var obj = recorded[i].GetProperty("object");
            if (type == "ERROR")
            {
                Assert.Equal(obj.GetProperty("code").GetInt32(), events[i].Status!.Code);
                continue;
            }
            var meta = obj.GetProperty("metadata");
            Assert.Equal(meta.GetProperty("resourceVersion").GetString(), events[i].Object!.Metadata.ResourceVersion);
            if (meta.TryGetProperty("name", out var n)) Assert.Equal(n.GetString(), events[i].Object!.Metadata.Name);
            // Nothing is lost: the decoded object serialises back to the recorded one.
            var back = JsonSerializer.SerializeToElement(events[i].Object!, KubeJsonContext.Default.Pod);
            if (type != "BOOKMARK") Assert.True(KubeFixtures.JsonEquals(obj, back), $"event {i} did not round-trip");
        }
    }

    /// <summary>Returns at most <c>step</c> bytes per read.</summary>
    private sealed class TrickleStream(byte[] data, int step) : Stream
    {
        private int _pos;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => data.Length;
        public override long Position { get => _pos; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, step), data.Length - _pos);
            Array.Copy(data, _pos, buffer, offset, n);
            _pos += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = Math.Min(Math.Min(buffer.Length, step), data.Length - _pos);
            data.AsSpan(_pos, n).CopyTo(buffer.Span);
            _pos += n;
            return ValueTask.FromResult(n);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
