using KtConnect.Engine.Cluster;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Unit.Kube;
using Microsoft.AspNetCore.Http;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class SharedShadowTests
{
    private const string Ns = "kt-test";

    private static ShadowPodSpec Spec(int user, bool deployment = false) => ShadowPodTests.Spec("ignored", deployment) with
    {
        AuthorizedKey = $"ssh-rsa AAAA{user} user{user}",
        PrivateKey = $"-----BEGIN RSA PRIVATE KEY-----\nuser{user}\n-----END RSA PRIVATE KEY-----\n",
    };

    private static string? RefCount(KubeSimServer server, ResourceType type) =>
        server.Store.Get(type, Ns, KtConventions.SharedShadowName)?["metadata"]?["annotations"]?[KtConventions.RefCountAnnotation]?.GetValue<string>();

    [Fact]
    public async Task Joiners_get_the_creators_keys_and_the_last_release_deletes_everything()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        var undo = new List<Func<CancellationToken, Task>>();
        var first = await shadows.AcquireSharedAsync(Spec(1), (_, u) => undo.Add(u));
        var second = await shadows.AcquireSharedAsync(Spec(2), null);
        Assert.True(first.Created);
        Assert.False(second.Created);
        Assert.Equal(2, second.RefCountAfterAcquire);
        Assert.Equal("ssh-rsa AAAA1 user1", second.AuthorizedKey);
        Assert.Contains("user1", second.PrivateKey, StringComparison.Ordinal);
        Assert.Equal("2", RefCount(sim.Server, ResourceTypes.Pods));
        var cm = await sim.Client.ConfigMaps.GetAsync(KtConventions.SharedShadowName, Ns);
        Assert.Equal(["authorized", "privateKey"], cm.Data!.Keys.Order());

        await undo.Single()(CancellationToken.None);
        Assert.False(first.DeletedOnRelease);
        // The joiner keeps the shared shadow alive on its own after the creator left (ktctl's defect §1.9.6).
        sim.Server.Store.Mutate(ResourceTypes.Pods, Ns, KtConventions.SharedShadowName, pod =>
        {
            pod["metadata"]!["annotations"]![KtConventions.HeartbeatAnnotation] = "1";
            return pod;
        });
        await using (var beat = new Heartbeat(sim.Client))
        {
            beat.Track(second.Objects);
            Assert.Equal(2, await beat.BeatOnceAsync());
        }
        Assert.NotEqual("1", sim.Server.Store.Get(ResourceTypes.Pods, Ns, KtConventions.SharedShadowName)!["metadata"]!["annotations"]![KtConventions.HeartbeatAnnotation]!.GetValue<string>());
        Assert.Equal("1", RefCount(sim.Server, ResourceTypes.Pods));
        await first.DisposeAsync(); // already released: no second decrement
        Assert.Equal("1", RefCount(sim.Server, ResourceTypes.Pods));
        await second.ReleaseAsync(CancellationToken.None);
        Assert.True(second.DeletedOnRelease);
        Assert.Equal(0, ShadowPodTests.KtObjects(sim.Server));
    }

    [Fact]
    public async Task Joining_a_shared_shadow_whose_users_all_crashed_stamps_its_heartbeat_at_once()
    {
        // Its heartbeat is old; a clean on any machine before the joiner's first beat (one interval) must not find it stale.
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        await shadows.AcquireSharedAsync(Spec(1), null);
        sim.Server.Store.Mutate(ResourceTypes.Pods, Ns, KtConventions.SharedShadowName, pod =>
        {
            pod["metadata"]!["annotations"]![KtConventions.HeartbeatAnnotation] = "1";
            return pod;
        });
        await shadows.AcquireSharedAsync(Spec(2), null);
        var stamped = sim.Server.Store.Get(ResourceTypes.Pods, Ns, KtConventions.SharedShadowName)!["metadata"]!["annotations"]![KtConventions.HeartbeatAnnotation]!.GetValue<string>();
        Assert.True(long.Parse(stamped, System.Globalization.CultureInfo.InvariantCulture) >= sim.Client.Clock.UtcNow.ToUnixTimeSeconds() - 60);
        Assert.Equal("2", RefCount(sim.Server, ResourceTypes.Pods));
    }

    [Fact]
    public async Task A_cancel_that_lands_while_the_join_is_in_flight_leaves_the_count_as_it_was()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        await shadows.AcquireSharedAsync(Spec(1), null);
        using var cancel = new CancellationTokenSource();
        // The user presses Ctrl+C just as the joiner's count + 1 reaches the server, which applies it all the same.
        sim.Server.Hooks.BeforeRequest = async http =>
        {
            if (http.Request.Method == "PATCH")
            {
                // The whole request is in when the cancel lands, and the server goes on to apply it.
                http.Request.EnableBuffering();
                await http.Request.Body.CopyToAsync(Stream.Null);
                http.Request.Body.Position = 0;
                http.RequestAborted = CancellationToken.None;
                await cancel.CancelAsync();
                await Task.Delay(300);
            }
            return false;
        };
        var undo = new List<Func<CancellationToken, Task>>();
        try
        {
            await shadows.AcquireSharedAsync(Spec(2), (_, u) => undo.Add(u), cancel.Token);
        }
        catch (OperationCanceledException)
        {
        }
        sim.Server.Hooks.BeforeRequest = null;
        await Wait.UntilAsync(() => RefCount(sim.Server, ResourceTypes.Pods) == "2", "the server to apply the join");
        foreach (var u in undo) await u(CancellationToken.None);
        Assert.Equal("1", RefCount(sim.Server, ResourceTypes.Pods));
    }

    /// <summary>Compile-time check: a session's Defer is what creation and acquisition take.</summary>
    internal static DeferUndo Adapt(KtConnect.Engine.Sessions.SessionContext context) => context.Defer;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Concurrent_acquire_and_release_keep_an_exact_count(bool deployment)
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        // kt-connect's minimal RBAC has no 'update': counting must work with get + patch alone.
        sim.Server.Hooks.Authorize = i => i.Verb != "update";
        var type = deployment ? ResourceTypes.Deployments : ResourceTypes.Pods;
        var shadows = new ShadowPods(sim.Client);
        var leases = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => shadows.AcquireSharedAsync(Spec(i, deployment), null))));
        Assert.Single(leases, l => l.Created);
        Assert.Equal("8", RefCount(sim.Server, type));
        Assert.All(leases, l => Assert.Equal(leases.Single(x => x.Created).AuthorizedKey, l.AuthorizedKey));
        if (deployment) Assert.All(leases, l => Assert.Matches("^[a-zA-Z]{20}$", l.Target));

        // Half leave while three more join.
        var more = Task.WhenAll(Enumerable.Range(10, 3).Select(i => Task.Run(() => shadows.AcquireSharedAsync(Spec(i, deployment), null))));
        await Task.WhenAll(leases.Take(4).Select(l => Task.Run(() => l.ReleaseAsync(CancellationToken.None))));
        var joined = await more;
        Assert.Equal("7", RefCount(sim.Server, type));
        Assert.DoesNotContain(leases.Take(4), l => l.DeletedOnRelease);

        await Task.WhenAll(leases.Skip(4).Concat(joined).Select(l => Task.Run(() => l.ReleaseAsync(CancellationToken.None))));
        Assert.Single(leases.Skip(4).Concat(joined), l => l.DeletedOnRelease);
        Assert.Equal(0, ShadowPodTests.KtObjects(sim.Server));
    }

    [Fact]
    public async Task The_shared_pod_is_waited_for_like_a_private_one()
    {
        await using var sim = await SimCluster.StartAsync();
        var shadows = new ShadowPods(sim.Client);
        await using var lease = await shadows.AcquireSharedAsync(Spec(1), null);
        var pod = await shadows.WaitRunningAsync(lease, null, TimeSpan.FromSeconds(30));
        Assert.Equal(KtConventions.SharedShadowName, pod.Metadata.Name);
        Assert.Equal("Running", pod.Status!.Phase);
        await lease.ReleaseAsync(CancellationToken.None);
        Assert.True(lease.DeletedOnRelease);
        Assert.Equal(0, ShadowPodTests.KtObjects(sim.Server));
    }
}
