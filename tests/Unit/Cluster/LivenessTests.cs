using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Cluster.Recovery;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class LivenessTests : IDisposable
{
    private const string Ns = "kt-test";
    private static readonly Uri Server = new("https://10.0.0.1:6443");
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kt-liveness-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static ClusterChange Created(string name) => new()
    {
        Server = ClusterRecovery.ServerKey(Server),
        Namespace = Ns,
        ObjectKind = KtObjectKind.Pod,
        Name = name,
        Change = ClusterChangeKind.Created,
    };

    private static Pod PodBeating(string name, DateTimeOffset? beat)
    {
        var pod = new Pod { Metadata = new ObjectMeta { Name = name, Namespace = Ns, Annotations = new Dictionary<string, string>() } };
        if (beat is { } b) pod.Metadata.Annotations[KtConventions.HeartbeatAnnotation] = KtConventions.FormatUnixSeconds(b);
        return pod;
    }

    [Fact]
    public async Task Local_owners_are_read_for_one_server_and_namespace_and_a_live_owner_wins()
    {
        var journal = new ChangeJournal(_dir);
        var live = "live-" + Guid.NewGuid().ToString("N");
        var dead = "dead-" + Guid.NewGuid().ToString("N");
        await ClusterJournal.RecordAsync(journal, Created("a"), dead);
        await ClusterJournal.RecordAsync(journal, Created("a"), live);
        await ClusterJournal.RecordAsync(journal, Created("b"), dead);
        await ClusterJournal.RecordAsync(journal, Created("c") with { Namespace = "other" }, live);
        await ClusterJournal.RecordAsync(journal, Created("d") with { Server = "https://elsewhere:6443" }, live);
        ChangeJournal.MarkSessionEnded(dead);

        var owners = LocalOwners.Read(journal, Server, Ns);
        Assert.Equal(new LocalOwner(Environment.ProcessId, live, true), owners.Find(KtObjectKind.Pod, "a"));
        Assert.Equal(new LocalOwner(Environment.ProcessId, dead, false), owners.Find(KtObjectKind.Pod, "b"));
        Assert.False(owners.IsLive(KtObjectKind.Pod, "b"));
        Assert.Null(owners.Find(KtObjectKind.ConfigMap, "a"));
        Assert.Null(owners.Find(KtObjectKind.Pod, "c"));
        Assert.Null(owners.Find(KtObjectKind.Pod, "d"));
    }

    [Fact]
    public async Task An_owner_lives_by_its_local_process_else_by_a_heartbeat_younger_than_the_floor()
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        Assert.Equal(TimeSpan.FromMinutes(3), Liveness.Floor);
        Assert.Equal(Liveness.Floor, Liveness.EffectiveThreshold(TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromMinutes(5), Liveness.EffectiveThreshold(TimeSpan.FromMinutes(5)));

        var journal = new ChangeJournal(_dir);
        var live = "live-" + Guid.NewGuid().ToString("N");
        var dead = "dead-" + Guid.NewGuid().ToString("N");
        await ClusterJournal.RecordAsync(journal, Created("mine"), live);
        await ClusterJournal.RecordAsync(journal, Created("crashed"), dead);
        ChangeJournal.MarkSessionEnded(dead);
        var owners = LocalOwners.Read(journal, Server, Ns);

        // A live local owner wins over any heartbeat age; a dead one loses even with a fresh heartbeat.
        Assert.Equal($"owned by a live session on this machine (pid {Environment.ProcessId}, session {live})",
            Liveness.LiveBecause(KtObjectKind.Pod, PodBeating("mine", now.AddHours(-1)), owners, now));
        Assert.Null(Liveness.LiveBecause(KtObjectKind.Pod, PodBeating("crashed", now), owners, now));
        // Unknown here: the heartbeat decides, with the floor as the limit (inclusive); no heartbeat says nothing.
        Assert.Equal("last heartbeat 180 s ago, within 180 s (3 heartbeat periods): its session may be alive on another machine",
            Liveness.LiveBecause(KtObjectKind.Pod, PodBeating("theirs", now - Liveness.Floor), owners, now));
        Assert.Null(Liveness.LiveBecause(KtObjectKind.Pod, PodBeating("theirs", now - Liveness.Floor - TimeSpan.FromSeconds(1)), owners, now));
        Assert.Null(Liveness.LiveBecause(KtObjectKind.Pod, PodBeating("theirs", null), owners, now));
        Assert.Null(Liveness.LiveBecause(KtObjectKind.Pod, PodBeating("mine", now), LocalOwners.None, now.AddMinutes(10)));
    }
}
