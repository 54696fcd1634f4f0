using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.Engine.Cluster;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Streaming;
using KtConnect.Tests.Unit.Common;
using KtConnect.Tests.Unit.Kube;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class HostKeyAndHeartbeatTests
{
    private const string Ns = "kt-test";

    private static string KeyLine(string algorithm, string comment = "root@shadow")
    {
        var name = Encoding.ASCII.GetBytes(algorithm);
        var blob = new byte[4 + name.Length + 8];
        BinaryPrimitives.WriteUInt32BigEndian(blob, (uint)name.Length);
        name.CopyTo(blob, 4);
        blob.AsSpan(4 + name.Length).Fill(7);
        return $"{algorithm} {Convert.ToBase64String(blob)} {comment}";
    }

    [Fact]
    public void Parser_reads_lines_and_rejects_malformed_ones()
    {
        var keys = HostKeyParser.Parse(KeyLine("ecdsa-sha2-nistp256") + "\n\n# comment\n" + KeyLine("ssh-rsa", "") + "\n");
        Assert.Equal(["ecdsa-sha2-nistp256", "ssh-rsa"], keys.Select(k => k.Algorithm));
        Assert.Equal("ecdsa-sha2-nistp256", Encoding.ASCII.GetString(keys[0].Blob(), 4, 19));
        Assert.Equal("ShadowHostKeyInvalid", Assert.Throws<ShadowPodException>(() => HostKeyParser.Parse("ssh-rsa !!!notbase64")).ErrorId);
        Assert.Throws<ShadowPodException>(() => HostKeyParser.Parse("ssh-rsa"));
        Assert.Throws<ShadowPodException>(() => HostKeyParser.Parse("ssh-ed25519 " + KeyLine("ssh-rsa").Split(' ')[1]));
        Assert.Throws<ShadowPodException>(() => HostKeyParser.Parse("ssh-rsa " + Convert.ToBase64String([0, 0, 0, 200, 1])));
        Assert.Empty(HostKeyParser.Parse(""));
    }

    /// <summary>Runs exec requests locally with the shadow's host key paths redirected to a temp dir.</summary>
    private sealed class RedirectingExec(string dir) : IPodExec
    {
        public ConcurrentQueue<ExecRequest> Requests { get; } = new();

        public Task<IExecProcess> StartAsync(ExecRequest request, JsonObject pod, CancellationToken cancellationToken)
        {
            Requests.Enqueue(request);
            var argv = request.Command.Select(a => a.StartsWith("/etc/ssh/", StringComparison.Ordinal) ? Path.Combine(dir, Path.GetFileName(a)) : a).ToArray();
            return new LocalProcessExec().StartAsync(request with { Command = argv }, pod, cancellationToken);
        }
    }

    [Fact]
    public async Task Host_keys_are_read_through_exec_in_the_standalone_container_tolerating_a_missing_file()
    {
        var dir = Directory.CreateTempSubdirectory("kt-hostkeys-");
        try
        {
            var ecdsa = KeyLine("ecdsa-sha2-nistp256");
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "ssh_host_ecdsa_key.pub"), ecdsa + "\n");
            var exec = new RedirectingExec(dir.FullName);
            await using var sim = await SimCluster.StartAsync(new KubeSimOptions { PodExec = exec });
            var shadows = new ShadowPods(sim.Client);
            var undo = new List<Func<CancellationToken, Task>>();
            var running = await shadows.CreateRunningAsync(ShadowPodTests.Spec("kt-connect-shadow-keys"), (_, u) => undo.Add(u), null, TimeSpan.FromSeconds(30));
            await using var handle = running.Handle;
            Assert.Equal("Running", running.Pod.Status!.Phase);
            Assert.Single(undo);

            var keys = running.HostKeys;
            var key = Assert.Single(keys); // the RSA file is missing: cat exits 1, the ECDSA key still counts
            Assert.Equal(new ShadowHostKey("ecdsa-sha2-nistp256", ecdsa.Split(' ')[1]), key);
            var request = Assert.Single(exec.Requests);
            Assert.Equal("standalone", request.Container);
            Assert.False(request.Stdin);
            Assert.Equal(["cat", "/etc/ssh/ssh_host_ecdsa_key.pub", "/etc/ssh/ssh_host_rsa_key.pub"], request.Command);

            File.Delete(Path.Combine(dir.FullName, "ssh_host_ecdsa_key.pub"));
            var e = await Assert.ThrowsAsync<ShadowPodException>(() => shadows.ReadHostKeysAsync(Ns, handle.Name));
            Assert.Equal("ShadowHostKeyUnavailable", e.ErrorId);
            Assert.Contains("No such file", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task Heartbeat_stamps_every_tracked_object_with_the_server_clock()
    {
        // The server's clock is 3 days ahead of ours: its Date header is all the client may use.
        var serverNow = DateTimeOffset.UtcNow.AddDays(3);
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        sim.Server.Hooks.BeforeRequest = ctx =>
        {
            ctx.Response.Headers.Date = serverNow.ToString("R");
            return Task.FromResult(false);
        };
        using var client = sim.NewClient(new KtConnect.Engine.Kube.StaticCredentials(sim.Server.AdminToken));
        var shadows = new ShadowPods(client);
        await using var handle = await shadows.CreateAsync(ShadowPodTests.Spec("kt-connect-shadow-beat"), null);
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"preview","namespace":"kt-test","labels":{"control-by":"kt"}},"spec":{"ports":[{"port":80}]}}""");
        var output = new RecordingOutput();
        await using var beat = new Heartbeat(client, TimeSpan.FromMilliseconds(50), output);
        beat.Track(handle.Objects);
        beat.Track(new KtObjectRef(KtObjectKind.Service, Ns, "preview"));
        beat.Track(new KtObjectRef(KtObjectKind.Pod, Ns, "gone"));

        serverNow = serverNow.AddMinutes(7);
        beat.Start();
        var expected = serverNow.ToUnixTimeSeconds();
        long? Annotation(ResourceType type, string name) =>
            long.TryParse(sim.Server.Store.Get(type, Ns, name)?["metadata"]?["annotations"]?[KtConventions.HeartbeatAnnotation]?.GetValue<string>(),
                System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null;
        // The client extrapolates the server's (frozen, whole-second) Date between responses: allow a few seconds of it.
        bool Fresh(ResourceType type, string name) => Annotation(type, name) is { } v && v >= expected && v <= expected + 5;
        await Wait.ForAsync(
            () => Task.FromResult(Fresh(ResourceTypes.Pods, handle.Name) && Fresh(ResourceTypes.ConfigMaps, handle.Name) && Fresh(ResourceTypes.Services, "preview")),
            fresh => fresh, $"heartbeats of {expected} to {expected + 5} on the pod, the ConfigMap and the Service",
            _ => $"pod {Annotation(ResourceTypes.Pods, handle.Name)}, ConfigMap {Annotation(ResourceTypes.ConfigMaps, handle.Name)}, Service {Annotation(ResourceTypes.Services, "preview")}");
        Assert.True(expected - DateTimeOffset.UtcNow.ToUnixTimeSeconds() > 86400); // far from our own clock
        // The missing object was reported once and dropped; the loop kept going.
        Assert.DoesNotContain(beat.Targets, t => t.Name == "gone");
        Assert.True(beat.Failures >= 1);
        Assert.Contains(output.Warnings, w => w.Contains("gone", StringComparison.Ordinal));
        await beat.DisposeAsync();
        var beats = beat.Beats;
        Assert.True(beats >= 1);
    }
}
