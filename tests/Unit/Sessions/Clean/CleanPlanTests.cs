using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Sessions.Clean;

namespace KtConnect.Tests.Unit.Sessions.Clean;

public sealed class CleanPlanTests
{
    private static JournalEntry Entry(KtObjectKind kind, string name, ClusterChangeKind change) => new()
    {
        Id = Guid.NewGuid().ToString("N"),
        Kind = ClusterChange.JournalKind,
        OwnerPid = 1,
        Time = DateTimeOffset.UnixEpoch,
        Data = new ClusterChange { Server = "https://10.0.0.1:6443", Namespace = "dev", ObjectKind = kind, Name = name, Change = change }.ToData(),
    };

    private static CleanupAction Action(CleanupActionKind kind, string name) => new(kind, "dev", name, "heartbeat stale");

    /// <summary>A crashed session of this machine whose heartbeat is old is found by the journal and by the heartbeat: each step once.</summary>
    [Fact]
    public void Steps_the_journal_takes_are_not_proposed_again_by_the_stale_plan()
    {
        var stale = new CleanupPlan("dev", DateTimeOffset.UnixEpoch, TimeSpan.Zero,
        [
            Action(CleanupActionKind.RestoreServiceSelector, "orders") with { Selector = new Dictionary<string, string> { ["app"] = "orders" } },
            Action(CleanupActionKind.UnlockService, "pay"),
            Action(CleanupActionKind.DeletePod, "orders-kt-exchange-abcde"),
            Action(CleanupActionKind.DeleteConfigMap, "orders-kt-exchange-abcde"),
            Action(CleanupActionKind.DeletePod, "kt-connect-shadow-zzzzz"),
        ]);
        IReadOnlyList<JournalEntry> journal =
        [
            Entry(KtObjectKind.Service, "orders", ClusterChangeKind.SelectorChanged),
            Entry(KtObjectKind.Service, "orders", ClusterChangeKind.Locked),
            Entry(KtObjectKind.Pod, "orders-kt-exchange-abcde", ClusterChangeKind.Created),
            Entry(KtObjectKind.ConfigMap, "orders-kt-exchange-abcde", ClusterChangeKind.Created),
        ];

        var left = Cleaner.WithoutJournalled(stale, journal);

        // Another session's lock and a shadow no entry here knows stay in the plan.
        Assert.Equal(["UnlockService pay", "DeletePod kt-connect-shadow-zzzzz"], left.Actions.Select(a => $"{a.Kind} {a.Name}"));
        Assert.Equal(stale.Threshold, left.Threshold);
    }
}
