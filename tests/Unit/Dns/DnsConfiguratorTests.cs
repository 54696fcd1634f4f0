using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KtConnect.Engine;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Sessions.Connect;

namespace KtConnect.Tests.Unit.Dns;

/// <summary>resolv.conf, systemd-resolved, /etc/resolver, NRPT and hosts-file modes against files in a temporary root.</summary>
public sealed class DnsConfiguratorTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "ktdns-root-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ChangeJournal _journal;
    private readonly DnsSystemPaths _paths;

    public DnsConfiguratorTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "etc"));
        _journal = new ChangeJournal(Path.Combine(_root, "journal"));
        _paths = new DnsSystemPaths(_root);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static DnsConfigurationRequest Request(int port = 53, string? link = null) => DnsConfigurationRequest.From(
        new SplitDnsOptions { Namespace = "dev", OtherNamespaces = ["other"] }, new IPEndPoint(IPAddress.Parse("127.0.0.77"), port), link, "s1");

    private const string OriginalResolvConf =
        "# managed by NetworkManager\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example lan\noptions edns0 ndots:2\n";

    /// <summary>Makes every entry look as if it had been written by a process that has since died.</summary>
    private async Task SimulateCrashAsync()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await p.WaitForExitAsync();
        var deadPid = p.Id;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(_root, "journal"), "*.json"))
        {
            var node = JsonNode.Parse(await File.ReadAllTextAsync(file))!;
            node["OwnerPid"] = deadPid;
            await File.WriteAllTextAsync(file, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
    }

    [Fact]
    public async Task Resolv_conf_is_rewritten_with_our_server_and_restored_byte_for_byte()
    {
        var path = Path.Combine(_root, "etc", "resolv.conf");
        await File.WriteAllTextAsync(path, OriginalResolvConf);
        var before = await File.ReadAllBytesAsync(path);
        var c = new ResolvConfConfigurator(_paths, _journal);
        Assert.Equal(["192.168.1.1:53", "192.168.1.2:53"], c.OriginalUpstreams().Select(e => e.ToString()));

        var handle = await c.ApplyAsync(Request(), default);
        var now = await File.ReadAllTextAsync(path);
        Assert.StartsWith(ResolvConfConfigurator.Marker, now, StringComparison.Ordinal);
        var parsed = ResolvConf.Parse(now);
        Assert.Equal([IPAddress.Parse("127.0.0.77")], parsed.Nameservers);
        // The machine's search list first (so LAN names resolve exactly as before), the namespace's after it.
        Assert.Equal(["corp.example", "lan", "dev.svc.cluster.local", "svc.cluster.local", "cluster.local"], parsed.Search);
        Assert.Contains("options edns0 ndots:2", now, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(c.BackupPath));
        // While ours is in place the originals are still known.
        Assert.Equal(2, c.OriginalUpstreams().Count);
        Assert.Single(_journal.ReadAll());

        await c.RevertAsync(handle, default);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
        Assert.False(File.Exists(c.BackupPath));
        Assert.Empty(_journal.ReadAll());
    }

    [Fact]
    public async Task Resolv_conf_changes_of_a_crashed_process_are_undone_by_the_next_one()
    {
        var path = Path.Combine(_root, "etc", "resolv.conf");
        var original = Encoding.UTF8.GetBytes(OriginalResolvConf.Replace("\n", "\r\n", StringComparison.Ordinal) + "# no final newline");
        await File.WriteAllBytesAsync(path, original);
        await new ResolvConfConfigurator(_paths, _journal).ApplyAsync(Request(), default);
        Assert.NotEqual(original, await File.ReadAllBytesAsync(path));
        Assert.Contains("\r\n", await File.ReadAllTextAsync(path), StringComparison.Ordinal);

        await SimulateCrashAsync();
        var next = new ChangeJournal(Path.Combine(_root, "journal"));
        var undone = await next.UndoAsync(DnsConfigurators.UndoHandlers(next, _paths));
        Assert.Single(undone);
        Assert.Equal(original, await File.ReadAllBytesAsync(path));
        Assert.Empty(next.ReadAll());
    }

    [Fact]
    public async Task A_resolv_conf_symlink_comes_back_as_the_same_symlink()
    {
        var target = Path.Combine(_root, "stub-resolv.conf");
        await File.WriteAllTextAsync(target, "nameserver 127.0.0.53\n");
        var path = Path.Combine(_root, "etc", "resolv.conf");
        File.CreateSymbolicLink(path, target);
        var c = new ResolvConfConfigurator(_paths, _journal);
        var handle = await c.ApplyAsync(Request(), default);
        Assert.Null(new FileInfo(path).LinkTarget);
        Assert.Equal("nameserver 127.0.0.53\n", await File.ReadAllTextAsync(target));
        await c.RevertAsync(handle, default);
        Assert.Equal(target, new FileInfo(path).LinkTarget);
    }

    [Fact]
    public async Task A_resolv_conf_rewritten_by_someone_else_is_left_alone()
    {
        var path = Path.Combine(_root, "etc", "resolv.conf");
        await File.WriteAllTextAsync(path, OriginalResolvConf);
        var c = new ResolvConfConfigurator(_paths, _journal);
        var handle = await c.ApplyAsync(Request(), default);
        await File.WriteAllTextAsync(path, "nameserver 10.8.0.1\n"); // a VPN client took over
        await c.RevertAsync(handle, default);
        Assert.Equal("nameserver 10.8.0.1\n", await File.ReadAllTextAsync(path));
    }

    [Fact]
    public async Task A_resolv_conf_left_by_a_KtConnect_whose_journal_is_elsewhere_is_restored_to_the_original_it_kept()
    {
        if (!OperatingSystem.IsLinux()) return;
        var c = new ResolvConfConfigurator(_paths, _journal);
        await File.WriteAllTextAsync(_paths.ResolvConf, ResolvConfConfigurator.Marker + " (session other)\nnameserver 127.0.0.153\n");
        await File.WriteAllTextAsync(c.BackupPath, OriginalResolvConf);
        var handle = await c.ApplyAsync(Request(), default);
        Assert.Contains("192.168.1.1", string.Join(",", c.OriginalUpstreams()), StringComparison.Ordinal);
        await c.RevertAsync(handle, default);
        Assert.Equal(OriginalResolvConf, await File.ReadAllTextAsync(_paths.ResolvConf));

        // Without the file it kept, the original is unknown: refused, nothing changed.
        var left = ResolvConfConfigurator.Marker + " (session other)\nnameserver 127.0.0.153\n";
        await File.WriteAllTextAsync(_paths.ResolvConf, left);
        Assert.Equal("DnsResolvConfNotOriginal", Assert.Throws<DnsConfigurationException>(() => c.CheckPrerequisites(Request())).ErrorId);
        var e = await Assert.ThrowsAsync<DnsConfigurationException>(() => c.ApplyAsync(Request(), default));
        Assert.Equal("DnsResolvConfNotOriginal", e.ErrorId);
        Assert.Equal(left, await File.ReadAllTextAsync(_paths.ResolvConf));
        Assert.Empty(_journal.ReadAll());
    }

    [Fact]
    public async Task Resolv_conf_prerequisites_are_typed_errors()
    {
        var c = new ResolvConfConfigurator(_paths, _journal);
        var missing = await Assert.ThrowsAsync<DnsConfigurationException>(() => c.ApplyAsync(Request(), default));
        Assert.Equal("DnsResolvConfMissing", missing.ErrorId);
        await File.WriteAllTextAsync(Path.Combine(_root, "etc", "resolv.conf"), OriginalResolvConf);
        var port = await Assert.ThrowsAsync<DnsConfigurationException>(() => c.ApplyAsync(Request(port: 5353), default));
        Assert.Equal("DnsServerPortNotSupported", port.ErrorId);
        Assert.Empty(_journal.ReadAll());
    }

    [Fact]
    public void The_stub_resolver_is_seen_through_to_resolveds_upstreams()
    {
        File.WriteAllText(Path.Combine(_root, "etc", "resolv.conf"), "nameserver 127.0.0.53\nsearch lan\n");
        Directory.CreateDirectory(Path.Combine(_root, "run", "systemd", "resolve"));
        File.WriteAllText(Path.Combine(_root, "run", "systemd", "resolve", "resolv.conf"), "nameserver 10.0.0.1\nnameserver fe80::1%eth0\n");
        var ups = new ResolvConfConfigurator(_paths, _journal).OriginalUpstreams();
        Assert.Equal(2, ups.Count);
        Assert.Equal(IPAddress.Parse("10.0.0.1"), ups[0].Address);
    }

    private string FakeResolvectl(int exitCode = 0, string stderr = "")
    {
        var script = Path.Combine(_root, "resolvectl");
        File.WriteAllText(script, $"#!/bin/sh\necho \"$@\" >> '{_root}/resolvectl.log'\n{(stderr.Length > 0 ? $"echo '{stderr}' >&2\n" : "")}exit {exitCode}\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(Path.Combine(_root, "run", "systemd", "resolve"));
        return script;
    }

    private string[] ResolvectlCalls() =>
        File.Exists(Path.Combine(_root, "resolvectl.log")) ? File.ReadAllLines(Path.Combine(_root, "resolvectl.log")) : [];

    [Fact]
    public void Resolved_commands_route_only_the_cluster_suffixes_to_our_link()
    {
        var cmds = ResolvedDnsConfigurator.ApplyCommands(Request(port: 5353, link: "ktun0"));
        Assert.Equal(["dns", "ktun0", "127.0.0.77:5353"], cmds[0]);
        Assert.Equal(["domain", "ktun0", "~cluster.local", "~svc", "~dev", "~other", "dev.svc.cluster.local", "svc.cluster.local", "cluster.local"], cmds[1]);
        Assert.Equal(["default-route", "ktun0", "false"], cmds[2]);
        Assert.Equal(["dns", "ktun0", "127.0.0.77"], ResolvedDnsConfigurator.ApplyCommands(Request(link: "ktun0"))[0]);
    }

    [Fact]
    public async Task Resolved_is_configured_with_resolvectl_and_reverted_after_a_crash()
    {
        if (!OperatingSystem.IsLinux()) return;
        var script = FakeResolvectl();
        var c = new ResolvedDnsConfigurator(_paths, _journal, resolvectl: script);
        await c.ApplyAsync(Request(link: "ktun0"), default);
        Assert.Equal(["dns ktun0 127.0.0.77", "domain ktun0 ~cluster.local ~svc ~dev ~other dev.svc.cluster.local svc.cluster.local cluster.local",
            "default-route ktun0 false"], ResolvectlCalls());

        await SimulateCrashAsync();
        var next = new ChangeJournal(Path.Combine(_root, "journal"));
        Assert.Single(await next.UndoAsync(DnsConfigurators.UndoHandlers(next, _paths)));
        Assert.Equal("revert ktun0", ResolvectlCalls()[^1]);
        Assert.Empty(next.ReadAll());
    }

    [Fact]
    public async Task Resolved_prerequisites_and_failures_are_typed_errors()
    {
        if (!OperatingSystem.IsLinux()) return;
        var none = new ResolvedDnsConfigurator(_paths, _journal, resolvectl: "/nonexistent/resolvectl");
        Assert.False(none.IsAvailable);
        var e1 = await Assert.ThrowsAsync<DnsConfigurationException>(() => none.ApplyAsync(Request(link: "ktun0"), default));
        Assert.Equal("DnsResolvedUnavailable", e1.ErrorId);

        var denied = new ResolvedDnsConfigurator(_paths, _journal, resolvectl: FakeResolvectl(1, "Failed to set DNS configuration: Access denied"));
        var e2 = await Assert.ThrowsAsync<DnsConfigurationException>(() => denied.ApplyAsync(Request(link: "ktun0"), default));
        Assert.Equal("DnsConfigurationAccessDenied", e2.ErrorId);
        Assert.Equal(KtErrorCategory.PermissionDenied, e2.Category);
        // The failed revert leaves the entry for the next start to retry.
        Assert.Single(_journal.ReadAll());
    }

    [Theory]
    [InlineData(ConnectMode.Redirect, "DnsResolvedLinkMissing")]
    [InlineData(ConnectMode.Tun, null)]
    public void With_systemd_resolved_redirect_mode_is_refused_before_any_change_and_tun_mode_is_not(ConnectMode mode, string? errorId)
    {
        if (!OperatingSystem.IsLinux()) return;
        var resolved = new ResolvedDnsConfigurator(_paths, _journal, resolvectl: FakeResolvectl());
        Assert.True(resolved.IsAvailable);
        var options = new ConnectOptions { Mode = mode };
        var e = Record.Exception(() => ConnectWorker.CheckDnsBeforeChanges(options, resolved));
        Assert.Equal(errorId, (e as KtException)?.ErrorId);
        if (e is not null) Assert.Contains("--dnsMode hosts", e.Message, StringComparison.Ordinal);
        Assert.Empty(ResolvectlCalls());
        Assert.Empty(_journal.ReadAll());
    }

    [Fact]
    public async Task Mac_resolver_files_are_written_per_suffix_and_removed()
    {
        var c = new MacResolverConfigurator(_paths, _journal);
        var handle = await c.ApplyAsync(Request(port: 5353), default);
        var dir = Path.Combine(_root, "etc", "resolver");
        Assert.Equal(["cluster.local", "dev", "other", "svc"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        var text = await File.ReadAllTextAsync(Path.Combine(dir, "cluster.local"));
        Assert.Contains("nameserver 127.0.0.77\nport 5353\n", text, StringComparison.Ordinal);
        await c.RevertAsync(handle, default);
        Assert.Empty(Directory.GetFiles(dir));

        await File.WriteAllTextAsync(Path.Combine(dir, "svc"), "nameserver 10.0.0.1\n");
        var e = await Assert.ThrowsAsync<DnsConfigurationException>(() => c.ApplyAsync(Request(), default));
        Assert.Equal("DnsResolverFileConflict", e.ErrorId);
    }

    [Fact]
    public void Nrpt_scripts_and_registry_data_name_only_the_cluster_suffixes()
    {
        var add = WindowsNrptConfigurator.AddScript(Request());
        Assert.Contains("Add-DnsClientNrptRule -Namespace '.cluster.local','.svc','.dev','.other' -NameServers '127.0.0.77'", add, StringComparison.Ordinal);
        Assert.Contains("-Comment 'KtConnect:s1'", add, StringComparison.Ordinal);
        var remove = WindowsNrptConfigurator.RemoveScript("KtConnect:it's");
        Assert.Contains("$_.Comment -eq 'KtConnect:it''s'", remove, StringComparison.Ordinal);
        Assert.Contains("Remove-DnsClientNrptRule -Force", remove, StringComparison.Ordinal);
        var id = Guid.Parse("8c2a5cd4-7b7e-4f4a-9b0e-0d7ab3f54c1e");
        var rule = WindowsNrptConfigurator.RegistryRule(Request(), id);
        Assert.Equal(WindowsNrptConfigurator.PolicyKey + @"\{8c2a5cd4-7b7e-4f4a-9b0e-0d7ab3f54c1e}", rule.KeyPath);
        Assert.Equal([".cluster.local", ".svc", ".dev", ".other"], rule.Name);
        Assert.Equal(("127.0.0.77", 8, 2), (rule.GenericDnsServers, rule.ConfigOptions, rule.Version));
        Assert.Equal(["10.0.0.1:53", "[fd00::1]:53"],
            WindowsNrptConfigurator.ParseServerAddresses("10.0.0.1\r\n127.0.0.77\r\nfd00::1\r\n10.0.0.1\r\n", IPAddress.Parse("127.0.0.77"))
                .Select(e => e.ToString()));
    }

    [Fact]
    public async Task Nrpt_rules_are_added_and_removed_through_powershell()
    {
        var runner = new RecordingRunner();
        var c = new WindowsNrptConfigurator(_journal, runner, powershell: "fake-powershell");
        var handle = await c.ApplyAsync(Request(), default);
        await c.RevertAsync(handle, default);
        Assert.Equal(2, runner.Calls.Count);
        Assert.All(runner.Calls, call => Assert.Equal("fake-powershell", call.File));
        Assert.Contains("Add-DnsClientNrptRule", runner.Calls[0].Args[^1], StringComparison.Ordinal);
        Assert.Contains("Remove-DnsClientNrptRule", runner.Calls[1].Args[^1], StringComparison.Ordinal);
        Assert.Empty(_journal.ReadAll());

        runner.Fail = "Access is denied.";
        var e = await Assert.ThrowsAsync<DnsConfigurationException>(() => c.ApplyAsync(Request(), default));
        Assert.Equal("DnsConfigurationAccessDenied", e.ErrorId);
        if (!OperatingSystem.IsWindows())
        {
            var real = new WindowsNrptConfigurator(_journal, runner);
            Assert.Equal("DnsPlatformUnsupported", Assert.Throws<DnsConfigurationException>(() => real.CheckPrerequisites(Request())).ErrorId);
        }
    }

    [Theory]
    [InlineData("127.0.0.1 localhost\n::1 localhost\n")]
    [InlineData("127.0.0.1 localhost\r\n# comment\r\n10.0.0.5 nas nas.lan\r\n")]
    [InlineData("127.0.0.1 localhost\r\n10.0.0.5 nas")]
    [InlineData("127.0.0.1 localhost")]
    [InlineData("")]
    public async Task Hosts_block_keeps_line_endings_and_the_rest_of_the_file(string original)
    {
        var path = Path.Combine(_root, "etc", "hosts");
        var bytes = Encoding.Latin1.GetBytes(original);
        await File.WriteAllBytesAsync(path, bytes);
        var editor = new HostsFileEditor(_paths, _journal);
        var entry = await editor.ApplyAsync("s1", [new HostsEntry(IPAddress.Parse("10.96.0.20"), ["orders", "orders.dev", "orders.dev.svc.cluster.local"])],
            "s1", default);
        var now = await File.ReadAllBytesAsync(path);
        Assert.Equal(bytes, now[..bytes.Length]);
        var added = Encoding.Latin1.GetString(now[bytes.Length..]);
        var crlf = original.Contains("\r\n", StringComparison.Ordinal);
        if (original.Contains('\n', StringComparison.Ordinal))
        {
            var lfOnly = added.Replace("\r\n", "", StringComparison.Ordinal);
            if (crlf) Assert.DoesNotContain('\n', lfOnly);
            else Assert.DoesNotContain('\r', added);
        }
        Assert.Contains("10.96.0.20 orders orders.dev orders.dev.svc.cluster.local", added, StringComparison.Ordinal);

        // The block replaced (the Services changed): one block, the line break added before it only once.
        var next = await editor.ApplyAsync("s1", [new HostsEntry(IPAddress.Parse("10.96.0.21"), ["users"])], "s1", default, replacing: entry);
        await _journal.CompleteAsync(entry);
        var replaced = Encoding.Latin1.GetString(await File.ReadAllBytesAsync(path));
        Assert.DoesNotContain("orders", replaced, StringComparison.Ordinal);
        Assert.Equal(1, replaced.Split(HostsFileEditor.BeginMarker("s1")).Length - 1);
        Assert.Equal(bytes, Encoding.Latin1.GetBytes(replaced)[..bytes.Length]);
        await editor.RevertAsync(next, default);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(path));
        Assert.Empty(_journal.ReadAll());
    }

    [Fact]
    public async Task A_hosts_file_that_is_a_symlink_stays_one_and_its_target_gets_the_block()
    {
        if (OperatingSystem.IsWindows()) return;
        var path = Path.Combine(_root, "etc", "hosts");
        var target = Path.Combine(_root, "dotfiles", "hosts");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        await File.WriteAllTextAsync(target, "127.0.0.1 localhost\n");
        File.Delete(path);
        File.CreateSymbolicLink(path, target);
        var editor = new HostsFileEditor(_paths, _journal);
        var entry = await editor.ApplyAsync("s1", [new HostsEntry(IPAddress.Parse("10.96.0.20"), ["orders"])], "s1", default);
        Assert.Equal(target, new FileInfo(path).LinkTarget);
        Assert.Contains("10.96.0.20 orders", await File.ReadAllTextAsync(target), StringComparison.Ordinal);
        await editor.RevertAsync(entry, default);
        Assert.Equal(target, new FileInfo(path).LinkTarget);
        Assert.Equal("127.0.0.1 localhost\n", await File.ReadAllTextAsync(target));
    }

    [Fact]
    public async Task Processes_editing_one_hosts_file_take_turns()
    {
        var path = Path.Combine(_root, "etc", "hosts");
        await File.WriteAllTextAsync(path, "127.0.0.1 localhost\n");
        var first = await HostsFileLock.AcquireAsync(path, default);
        var second = HostsFileLock.AcquireAsync(path, default);
        var apply = new HostsFileEditor(_paths, _journal).ApplyAsync("s9", [new HostsEntry(IPAddress.Parse("10.96.0.9"), ["x"])], "s9", default);
        await Task.Delay(300);
        Assert.False(second.IsCompleted, "a second holder while the first holds the lock");
        Assert.False(apply.IsCompleted, "an edit while another holds the lock");
        Assert.Equal("127.0.0.1 localhost\n", await File.ReadAllTextAsync(path));
        first.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(30))).Dispose();
        await apply.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("10.96.0.9 x", await File.ReadAllTextAsync(path), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hosts_block_of_a_crashed_process_is_removed_and_a_read_only_file_is_a_typed_error()
    {
        var path = Path.Combine(_root, "etc", "hosts");
        var bytes = Encoding.ASCII.GetBytes("127.0.0.1 localhost\r\n");
        await File.WriteAllBytesAsync(path, bytes);
        var editor = new HostsFileEditor(_paths, _journal);
        await editor.ApplyAsync("s1", [new HostsEntry(IPAddress.Parse("10.96.0.20"), ["orders"])], "s1", default);
        // Someone edits the file after us: their line stays, only our block goes.
        await File.AppendAllTextAsync(path, "10.1.1.1 added-later\r\n");
        await SimulateCrashAsync();
        var next = new ChangeJournal(Path.Combine(_root, "journal"));
        Assert.Single(await next.UndoAsync(DnsConfigurators.UndoHandlers(next, _paths)));
        Assert.Equal("127.0.0.1 localhost\r\n10.1.1.1 added-later\r\n", await File.ReadAllTextAsync(path));

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var e = await Assert.ThrowsAsync<DnsConfigurationException>(() =>
                editor.ApplyAsync("s2", [new HostsEntry(IPAddress.Parse("10.96.0.20"), ["orders"])], "s2", default));
            Assert.Equal("DnsHostsFileReadOnly", e.ErrorId);
            Assert.Empty(_journal.ReadAll());
        }
        File.Delete(path);
        var missing = await Assert.ThrowsAsync<DnsConfigurationException>(() =>
            editor.ApplyAsync("s3", [new HostsEntry(IPAddress.Parse("10.96.0.20"), ["orders"])], "s3", default));
        Assert.Equal("DnsHostsFileMissing", missing.ErrorId);
    }

    private sealed class RecordingRunner : ICommandRunner
    {
        public List<(string File, IReadOnlyList<string> Args)> Calls { get; } = [];

        public string? Fail { get; set; }

        public Task<ProcessResult> RunAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
        {
            Calls.Add((fileName, arguments));
            return Task.FromResult(new ProcessResult(fileName, arguments, Fail is null ? 0 : 1, "", Fail ?? ""));
        }
    }
}
