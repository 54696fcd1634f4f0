using KtConnect.Engine;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Net.Redirect;
using KtConnect.Engine.Net.Routes;
using KtConnect.Engine.Sessions;

namespace KtConnect.Tests.Unit.Sessions;

public sealed class LocalRecoveryTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kt-recovery-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Every_kind_the_engine_journals_has_exactly_one_handler()
    {
        var kinds = LocalRecovery.Handlers(new ChangeJournal(_dir)).Select(h => h.Kind).ToList();
        Assert.Equal(kinds.Count, kinds.Distinct().Count());
        foreach (var kind in new[] { RouteSet.JournalKind, FirewallRedirect.JournalKind, HostsFileEditor.JournalKind,
                     ResolvedDnsConfigurator.JournalKind, ResolvConfConfigurator.JournalKind, MacResolverConfigurator.JournalKind,
                     WindowsNrptConfigurator.JournalKind })
            Assert.Contains(kind, kinds);
    }

    [Fact]
    public async Task Pending_lists_only_orphaned_entries_of_known_kinds_last_first_and_a_preview_changes_nothing()
    {
        var journal = new ChangeJournal(_dir);
        await journal.RecordAsync(RouteSet.JournalKind, new Dictionary<string, string>(), "mine, live");
        Directory.CreateDirectory(_dir);
        for (var i = 1; i <= 2; i++)
        {
            File.WriteAllText(Path.Combine(_dir, $"dead-{i}.json"), $$"""
                {"Id":"dead-{{i}}","Kind":"{{HostsFileEditor.JournalKind}}","OwnerPid":2147483600,"Time":"2026-01-01T00:00:0{{i}}+00:00","Data":{},"Description":"hosts block {{i}}"}
                """);
        }
        File.WriteAllText(Path.Combine(_dir, "unknown.json"), """
            {"Id":"unknown","Kind":"something-else","OwnerPid":2147483600,"Time":"2026-01-01T00:00:09+00:00","Data":{},"Description":"?"}
            """);

        Assert.Equal(["hosts block 2", "hosts block 1"], LocalRecovery.Pending(journal).Select(e => e.Description));
        Assert.Equal(3, LocalRecovery.Pending(journal, includeLive: true).Count);

        var seen = new List<string>();
        var undone = await LocalRecovery.UndoAsync(journal, shouldProcess: e => { seen.Add(e.Description); return false; });
        Assert.Empty(undone);
        Assert.Equal(["hosts block 2", "hosts block 1"], seen);
        Assert.Equal(4, journal.ReadAll().Count);
    }
}
