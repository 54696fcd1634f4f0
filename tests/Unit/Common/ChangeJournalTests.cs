using System.Diagnostics;
using KtConnect.Engine;

namespace KtConnect.Tests.Unit.Common;

public sealed class ChangeJournalTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kt-journal-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private sealed class RecordingHandler(string kind) : IJournalUndoHandler
    {
        public List<string> Undone { get; } = [];

        public string Kind => kind;

        public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
        {
            Undone.Add(entry.Data["what"]);
            return Task.CompletedTask;
        }
    }

    [Fact]
    public async Task Recorded_entries_survive_a_new_instance_and_complete_removes_them()
    {
        var journal = new ChangeJournal(_dir);
        var a = await journal.RecordAsync("route", new Dictionary<string, string> { ["what"] = "10.96.0.0/16" }, "route 10.96.0.0/16 via kt0");
        await journal.RecordAsync("dns", new Dictionary<string, string> { ["what"] = "resolv.conf" }, "resolver");

        var reread = new ChangeJournal(_dir).ReadAll();
        Assert.Equal(["route", "dns"], reread.Select(e => e.Kind));
        Assert.Equal(Environment.ProcessId, reread[0].OwnerPid);
        Assert.Equal("route 10.96.0.0/16 via kt0", reread[0].Description);

        await journal.CompleteAsync(a);
        Assert.Equal(["dns"], journal.ReadAll().Select(e => e.Kind));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public async Task Undo_skips_live_owners_and_undoes_orphans_last_change_first()
    {
        var journal = new ChangeJournal(_dir);
        await journal.RecordAsync("route", new Dictionary<string, string> { ["what"] = "mine" }, "live");
        // Entries written by a process that has exited since: the pid of a finished child.
        using var child = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await child.WaitForExitAsync();
        WriteForeign(child.Id, "first", 1);
        WriteForeign(child.Id, "second", 2);

        var handler = new RecordingHandler("route");
        var undone = await journal.UndoAsync([handler]);

        Assert.Equal(["second", "first"], handler.Undone);
        Assert.Equal(2, undone.Count);
        Assert.Equal(["mine"], journal.ReadAll().Select(e => e.Data["what"]));

        // Forced (Clear-KtResource -Local on our own journal) also takes the live one.
        await journal.UndoAsync([handler], onlyOrphaned: false);
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task An_entry_whose_undo_fails_stays_and_the_error_is_reported()
    {
        var journal = new ChangeJournal(_dir);
        await journal.RecordAsync("route", new Dictionary<string, string> { ["what"] = "x" }, "x");
        var failing = new FailingHandler();
        var errors = new List<string>();
        var undone = await journal.UndoAsync([failing], onlyOrphaned: false, onError: (e, ex) => errors.Add(ex.Message));
        Assert.Empty(undone);
        Assert.Equal(["boom"], errors);
        Assert.Single(journal.ReadAll());
    }

    private sealed class FailingHandler : IJournalUndoHandler
    {
        public string Kind => "route";

        public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken) => throw new IOException("boom");
    }

    [Fact]
    public async Task An_entry_with_our_pid_but_another_start_time_was_left_by_an_earlier_process()
    {
        var journal = new ChangeJournal(_dir);
        var mine = await journal.RecordAsync("route", new Dictionary<string, string> { ["what"] = "mine" }, "mine", "s1");
        Assert.False(ChangeJournal.IsOrphaned(mine));
        // A container's pid 1 restarted, or Windows reused the pid: same pid, another process.
        var earlier = mine.OwnerStartTime!.Value.AddMinutes(-10);
        Assert.True(ChangeJournal.IsOrphaned(mine with { OwnerStartTime = earlier, OwnerIdentity = null }));
        Assert.False(ChangeJournal.IsOrphaned(mine with { OwnerStartTime = null, OwnerIdentity = null }));
        if (!OperatingSystem.IsLinux()) return;
        // Linux: the identity decides. Another boot or another start tick is another process ...
        Assert.True(ChangeJournal.IsOrphaned(mine with { OwnerIdentity = "another-boot/1" }));
        // ... and a start time moved by a wall-clock step is still this one.
        Assert.False(ChangeJournal.IsOrphaned(mine with { OwnerStartTime = earlier }));
    }

    [Fact]
    public async Task A_live_process_whose_start_time_moved_with_the_clock_still_owns_its_entries_on_linux()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        try
        {
            var identity = ProcessIdentity.Of(sleeper.Id, out var exited);
            Assert.NotNull(identity);
            Assert.False(exited);
            var entry = new JournalEntry
            {
                Id = "x", Kind = "route", OwnerPid = sleeper.Id, Time = DateTimeOffset.UtcNow, Data = new Dictionary<string, string>(),
                // What Process.StartTime said before the clock was set back an hour.
                OwnerStartTime = new DateTimeOffset(sleeper.StartTime.ToUniversalTime(), TimeSpan.Zero).AddHours(1),
                OwnerIdentity = identity,
            };
            Assert.False(ChangeJournal.IsOrphaned(entry));
            // Without the identity (an entry from an older kt) the start times decide, as before.
            Assert.True(ChangeJournal.IsOrphaned(entry with { OwnerIdentity = null }));
            // The same pid started at another tick is another process.
            Assert.True(ChangeJournal.IsOrphaned(entry with { OwnerIdentity = identity + "0" }));

            sleeper.Kill();
            await sleeper.WaitForExitAsync();
            Assert.True(ChangeJournal.IsOrphaned(entry));
        }
        finally
        {
            if (!sleeper.HasExited) sleeper.Kill();
        }
    }

    private void WriteForeign(int pid, string what, int order)
    {
        Directory.CreateDirectory(_dir);
        var json = $$"""
            {"Id":"foreign-{{order}}","Kind":"route","OwnerPid":{{pid}},"Time":"2026-01-01T00:00:0{{order}}+00:00",
             "Data":{"what":"{{what}}"},"Description":"{{what}}"}
            """;
        File.WriteAllText(Path.Combine(_dir, $"foreign-{order}.json"), json);
    }
}
