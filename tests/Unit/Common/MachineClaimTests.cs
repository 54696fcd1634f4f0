using System.Diagnostics;
using KtConnect.Engine;

namespace KtConnect.Tests.Unit.Common;

/// <summary>
/// Journal entries on machine-wide objects claim them machine-wide: another KtConnect process (of any home, so with a
/// journal this one cannot read) holding the object refuses the change and keeps the undo of an orphaned entry away.
/// The other process here is python, bound to the claim's abstract socket name as a KtConnect holder would be.
/// </summary>
public sealed class MachineClaimTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "kt-claims-" + Guid.NewGuid().ToString("N"));
    private readonly string _key = "test object " + Guid.NewGuid().ToString("N");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private Dictionary<string, string> Data(string what) => new() { ["what"] = what, [ChangeJournal.ClaimData] = _key };

    private sealed class RecordingHandler : IJournalUndoHandler
    {
        public List<string> Undone { get; } = [];

        public string Kind => "thing";

        public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
        {
            Undone.Add(entry.Data["what"]);
            return Task.CompletedTask;
        }
    }

    private const string HolderScript = """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind("\0" + sys.argv[1])
        except OSError as e:
            print("busy", flush=True)
            sys.exit(3)
        s.listen(1)
        print("held", flush=True)
        sys.stdin.read()
        """;

    /// <summary>Another process claims the key (as a live KtConnect of another home would); "busy" when it cannot.</summary>
    private async Task<(Process Process, string Line)> HoldAsync(bool asNobody = false)
    {
        var psi = new ProcessStartInfo(asNobody ? "setpriv" : "python3") { RedirectStandardInput = true, RedirectStandardOutput = true };
        if (asNobody)
        {
            foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3" }) psi.ArgumentList.Add(a);
        }
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(HolderScript);
        psi.ArgumentList.Add(MachineClaim.NameOf(_key));
        var p = Process.Start(psi)!;
        var line = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return (p, line ?? "");
    }

    private static async Task EndAsync(Process p)
    {
        p.StandardInput.Close();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        p.Dispose();
    }

    private async Task WriteOrphanedAsync(string what)
    {
        Directory.CreateDirectory(_dir);
        // What a crashed session of this home left: its owner has exited.
        using var gone = Process.Start("true")!;
        await gone.WaitForExitAsync();
        await File.WriteAllTextAsync(Path.Combine(_dir, "orphan.json"), $$"""
            {"Id":"orphan","Kind":"thing","OwnerPid":{{gone.Id}},"Time":"2026-01-01T00:00:00+00:00",
             "Data":{"what":"{{what}}","{{ChangeJournal.ClaimData}}":"{{_key}}"},"Description":"{{what}}"}
            """);
    }

    [Fact]
    public async Task While_another_process_holds_the_object_a_change_is_refused_and_an_orphaned_entry_is_left_alone()
    {
        if (!OperatingSystem.IsLinux()) return;
        var journal = new ChangeJournal(_dir);
        await WriteOrphanedAsync("left by a crash");
        var (holder, line) = await HoldAsync();
        try
        {
            Assert.Equal("held", line);
            var e = await Assert.ThrowsAsync<KtException>(() => journal.RecordAsync("thing", Data("mine"), "mine", "s1"));
            Assert.Equal("MachineObjectInUse", e.ErrorId);
            Assert.Contains($"process {holder.Id}", e.Message, StringComparison.Ordinal);
            Assert.Equal(["orphan"], journal.ReadAll().Select(x => x.Id));
            Assert.Equal("MachineObjectInUse", Assert.Throws<KtException>(() => MachineClaims.EnsureFree(_key)).ErrorId);

            var handler = new RecordingHandler();
            var errors = new List<string>();
            Assert.Empty(await journal.UndoAsync([handler], onError: (_, ex) => errors.Add(((KtException)ex).ErrorId)));
            Assert.Empty(handler.Undone);
            Assert.Equal(["MachineObjectInUse"], errors);
            Assert.Single(journal.ReadAll());
        }
        finally
        {
            await EndAsync(holder);
        }

        // The holder is gone: the orphaned entry is undone, and the object can be had.
        var after = new RecordingHandler();
        Assert.Single(await journal.UndoAsync([after]));
        Assert.Equal(["left by a crash"], after.Undone);
        MachineClaims.EnsureFree(_key);
        var entry = await journal.RecordAsync("thing", Data("mine"), "mine", "s1");
        var (other, otherLine) = await HoldAsync();
        await EndAsync(other);
        Assert.Equal("busy", otherLine);
        await journal.CompleteAsync(entry);
        (other, otherLine) = await HoldAsync();
        await EndAsync(other);
        Assert.Equal("held", otherLine);
    }

    [Fact]
    public async Task A_sessions_entries_share_its_claim_and_another_session_is_refused_until_the_last_one_completes()
    {
        if (!OperatingSystem.IsLinux()) return;
        var mine = new ChangeJournal(Path.Combine(_dir, "home-a"));
        var theirs = new ChangeJournal(Path.Combine(_dir, "home-b"));
        var first = await mine.RecordAsync("thing", Data("route 1"), "route 1", "s1");
        var second = await mine.RecordAsync("thing", Data("route 2"), "route 2", "s1");

        // Another session, even of this process and with another home's journal.
        var e = await Assert.ThrowsAsync<KtException>(() => theirs.RecordAsync("thing", Data("theirs"), "theirs", "s2"));
        Assert.Contains("(this process)", e.Message, StringComparison.Ordinal);
        Assert.Empty(theirs.ReadAll());
        await mine.CompleteAsync(first);
        await Assert.ThrowsAsync<KtException>(() => theirs.RecordAsync("thing", Data("theirs"), "theirs", "s2"));

        // Undoing its own live entry (Clear-KtResource -Local on a live session) goes ahead and lets the claim go.
        var handler = new RecordingHandler();
        Assert.Single(await mine.UndoAsync([handler], onlyOrphaned: false));
        Assert.Equal(["route 2"], handler.Undone);
        var entry = await theirs.RecordAsync("thing", Data("theirs"), "theirs", "s2");
        Assert.Equal("MachineObjectInUse", (await Assert.ThrowsAsync<KtException>(() => mine.RecordAsync("thing", Data("again"), "again", "s1"))).ErrorId);
        await theirs.CompleteAsync(entry);
        MachineClaims.EnsureFree(_key);
        Assert.Empty(mine.ReadAll());
        Assert.Empty(theirs.ReadAll());
    }

    [Fact]
    public async Task A_name_another_user_holds_is_no_claim_as_only_root_changes_these_objects()
    {
        // Abstract socket names have no permissions: a user squatting on one must not lock root's sessions and undo out.
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess || !File.Exists("/usr/bin/setpriv") || !File.Exists("/usr/bin/python3")) return;
        var journal = new ChangeJournal(_dir);
        var (squatter, line) = await HoldAsync(asNobody: true);
        try
        {
            Assert.Equal("held", line);
            MachineClaims.EnsureFree(_key);
            await journal.CompleteAsync(await journal.RecordAsync("thing", Data("mine"), "mine", "s1"));
        }
        finally
        {
            await EndAsync(squatter);
        }
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public void Long_keys_get_a_name_a_socket_can_have()
    {
        var name = MachineClaim.NameOf("file " + new string('x', 300));
        Assert.True(name.Length <= 100, name);
        Assert.NotEqual(name, MachineClaim.NameOf("file " + new string('x', 299)));
        Assert.Equal("ktconnect/claim/network device kt0", MachineClaim.NameOf("network device kt0"));
    }
}
