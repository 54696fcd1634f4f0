using KtConnect.Tests.Unit.Cluster;
using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Connect;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Sessions.Connect;

public sealed class SharedShadowSetupTests
{
    private const string Ns = "kt-test";

    private static ShadowPodSpec SpecForKey(string key) => ShadowPodTests.Spec("kt-connect-shadow-abcde") with { AuthorizedKey = key };

    private static string? RefCount(KubeSimServer server) =>
        server.Store.Get(ResourceTypes.Pods, Ns, KtConventions.SharedShadowName)?["metadata"]?["annotations"]?[KtConventions.RefCountAnnotation]
            ?.GetValue<string>();

    [Fact]
    public async Task Two_users_share_one_pod_and_the_creators_rsa_key_until_the_last_release()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        var undo1 = new List<Func<CancellationToken, Task>>();
        var undo2 = new List<Func<CancellationToken, Task>>();
        var first = await SharedShadowSetup.AcquireAsync(shadows, SpecForKey, (_, u) => undo1.Add(u), "one", CancellationToken.None);
        var second = await SharedShadowSetup.AcquireAsync(shadows, SpecForKey, (_, u) => undo2.Add(u), "two", CancellationToken.None);
        using var id1 = first.Identity;
        using var id2 = second.Identity;
        Assert.True(first.Lease.Created);
        Assert.False(second.Lease.Created);
        Assert.Equal("2", RefCount(sim.Server));
        Assert.Equal("ssh-rsa", id1.KeyType);
        // The joiner logs in with the creator's key, read back from the ConfigMap as ktctl would.
        Assert.Equal(id1.PublicKey.Blob.ToArray(), id2.PublicKey.Blob.ToArray());
        var cm = await sim.Client.ConfigMaps.GetAsync(KtConventions.SharedShadowName, Ns);
        Assert.StartsWith("-----BEGIN RSA PRIVATE KEY-----\n", cm.Data![KtConventions.ConfigMapPrivateKey], StringComparison.Ordinal);
        Assert.Equal(id1.ToAuthorizedKeysLine(), cm.Data[KtConventions.ConfigMapAuthorizedKey]);
        using (var rsa = System.Security.Cryptography.RSA.Create())
        {
            rsa.ImportFromPem(cm.Data[KtConventions.ConfigMapPrivateKey]);
            Assert.Equal(SharedShadowSetup.RsaBits, rsa.KeySize);
        }

        await Assert.Single(undo1)(CancellationToken.None);
        Assert.Equal("1", RefCount(sim.Server));
        Assert.NotNull(await sim.Client.ConfigMaps.TryGetAsync(KtConventions.SharedShadowName, Ns));

        await Assert.Single(undo2)(CancellationToken.None);
        Assert.Null(RefCount(sim.Server));
        Assert.Equal(0, ShadowPodTests.KtObjects(sim.Server));
    }

    [Fact]
    public async Task A_joiner_refuses_a_shared_shadow_without_a_usable_key_and_gives_its_count_back()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        using var other = SshKeyPair.GenerateEcdsa("other");
        // Created by a tool that kept no private key.
        var foreign = await shadows.AcquireSharedAsync(SpecForKey(other.ToAuthorizedKeysLine()), null);
        var undo = new List<Func<CancellationToken, Task>>();
        var e = await Assert.ThrowsAsync<KtException>(() =>
            SharedShadowSetup.AcquireAsync(shadows, SpecForKey, (_, u) => undo.Add(u), "late", CancellationToken.None));
        Assert.Equal("SharedShadowKeyUnusable", e.ErrorId);
        Assert.Contains("no privateKey", e.Message, StringComparison.Ordinal);
        // The session's undo gives the count back, as on every other failed start.
        Assert.Equal("2", RefCount(sim.Server));
        await Assert.Single(undo)(CancellationToken.None);
        Assert.Equal("1", RefCount(sim.Server));
        await foreign.ReleaseAsync(CancellationToken.None);
        Assert.Equal(0, ShadowPodTests.KtObjects(sim.Server));
    }

    [Fact]
    public async Task A_stored_key_that_is_not_the_authorized_one_is_refused()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        using var stored = SshKeyPair.GenerateRsa(SharedShadowSetup.RsaBits, "stored");
        using var authorized = SshKeyPair.GenerateRsa(SharedShadowSetup.RsaBits, "authorized");
        await using var lease = await shadows.AcquireSharedAsync(SpecForKey(authorized.ToAuthorizedKeysLine()) with { PrivateKey = stored.ToPkcs1Pem() }, null);
        Assert.Equal("SharedShadowKeyUnusable", Assert.Throws<KtException>(() => SharedShadowSetup.JoinerIdentity(lease)).ErrorId);
    }

    [Fact]
    public async Task A_creator_that_finds_a_leftover_configmap_logs_in_with_the_key_the_pod_will_mount()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        using var left = SshKeyPair.GenerateRsa(SharedShadowSetup.RsaBits, "left");
        // The last user is leaving: its pod is gone, its ConfigMap not yet.
        await sim.Client.ConfigMaps.CreateAsync(
            (SpecForKey(left.ToAuthorizedKeysLine()) with { Name = KtConventions.SharedShadowName, PrivateKey = left.ToPkcs1Pem() })
                .BuildConfigMap(DateTimeOffset.UtcNow), Ns);
        var access = await SharedShadowSetup.AcquireAsync(shadows, SpecForKey, null, "new", CancellationToken.None);
        using var identity = access.Identity;
        Assert.True(access.Lease.Created);
        Assert.Equal(left.PublicKey.Blob.ToArray(), identity.PublicKey.Blob.ToArray());
        await access.Lease.ReleaseAsync(CancellationToken.None);
        Assert.Equal(0, ShadowPodTests.KtObjects(sim.Server));
    }
}
