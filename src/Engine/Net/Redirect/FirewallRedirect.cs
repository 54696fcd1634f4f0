using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KtConnect.Engine.Net.Redirect;

public enum FirewallBackend
{
    Nftables,
    Iptables,
}

/// <summary>What to redirect: TCP to these ranges, minus the excludes, to a local port.</summary>
public sealed record RedirectRule(IReadOnlyList<IPNetwork> Cidrs, IReadOnlyList<IPNetwork> Excludes, int Port, uint? BypassMark = null);

/// <summary>
/// Linux redirect mode: a nat/output rule set in a table (nftables) or chain (iptables) of our own that
/// REDIRECTs TCP to the cluster ranges to a transparent listener. Journaled before it is applied; removed
/// on dispose; a crash is undone by <see cref="FirewallUndoHandler"/>. Removing our table never touches
/// anyone else's rules.
/// </summary>
public sealed class FirewallRedirect : IAsyncDisposable
{
    public const string JournalKind = "firewall";
    public const string DefaultTable = "ktconnect";

    private readonly IChangeJournal _journal;
    private readonly JournalEntry _entry;
    private readonly FirewallBackend _backend;
    private readonly string _table;
    private readonly string? _netns;
    private int _disposed;

    private FirewallRedirect(IChangeJournal journal, JournalEntry entry, FirewallBackend backend, string table, string? netns)
    {
        _journal = journal;
        _entry = entry;
        _backend = backend;
        _table = table;
        _netns = netns;
    }

    public FirewallBackend Backend => _backend;

    /// <summary>nftables when `nft` works, else iptables.</summary>
    public static async Task<FirewallBackend> DetectAsync(string? netns, CancellationToken cancellationToken)
    {
        if (ProcessRunner.IsOnPath("nft"))
        {
            var r = await RunAsync(netns, "nft", ["list", "tables"], null, cancellationToken).ConfigureAwait(false);
            if (r.Succeeded) return FirewallBackend.Nftables;
        }
        if (ProcessRunner.IsOnPath("iptables")) return FirewallBackend.Iptables;
        throw new KtException("FirewallNotAvailable", KtErrorCategory.NotInstalled,
            "Redirect mode needs nftables (nft) or iptables; neither works here. Use tun or socks mode.");
    }

    public static async Task<FirewallRedirect> ApplyAsync(FirewallBackend backend, string table, RedirectRule rule, IChangeJournal journal,
        string? netns = null, string? sessionId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(journal);
        ValidateTableName(table);
        // One redirect per table: a second session would replace the first one's rules (and its stop would remove them).
        var holder = journal.ReadAll().FirstOrDefault(e => e.Kind == JournalKind && e.Data.GetValueOrDefault("table") == table
            && e.Data.GetValueOrDefault("netns") == netns && !ChangeJournal.IsOrphaned(e));
        if (holder is not null)
        {
            throw new KtException("RedirectInUse", KtErrorCategory.ResourceBusy,
                $"Another redirect-mode session (process {holder.OwnerPid}) uses firewall table '{table}'. Stop it first, or use tun or socks mode.", target: table);
        }
        var data = new Dictionary<string, string>
        {
            ["backend"] = backend.ToString(),
            ["table"] = table,
            [ChangeJournal.ClaimData] = ClaimKey(table, netns),
        };
        if (netns is not null) data["netns"] = netns;
        var entry = await journal.RecordAsync(JournalKind, data, $"{backend} redirect table {table}", sessionId, cancellationToken).ConfigureAwait(false);
        var redirect = new FirewallRedirect(journal, entry, backend, table, netns);
        try
        {
            // A table left by an earlier crash of the same name would make the add fail or double the rules.
            await RemoveAsync(backend, table, netns, cancellationToken).ConfigureAwait(false);
            if (backend == FirewallBackend.Nftables)
            {
                (await RunAsync(netns, "nft", ["-f", "-"], NftScript(table, rule), cancellationToken).ConfigureAwait(false)).EnsureSuccess("FirewallApplyFailed");
            }
            else
            {
                foreach (var (tool, args) in IptablesCommands(table, rule))
                    (await RunAsync(netns, tool, args, null, cancellationToken).ConfigureAwait(false)).EnsureSuccess("FirewallApplyFailed");
            }
            return redirect;
        }
        catch
        {
            await redirect.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The machine-wide name of our table (nftables) or chain (iptables), whichever the backend.</summary>
    public static string ClaimKey(string table, string? netns = null) => MachineClaim.KeyOf("firewall table " + table, netns);

    /// <summary>The nftables script: one inet table, a nat output chain, excludes first.</summary>
    public static string NftScript(string table, RedirectRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ValidateTableName(table);
        var sb = new StringBuilder();
        sb.Append("table inet ").Append(table).Append(" {\n");
        sb.Append("  chain output {\n");
        sb.Append("    type nat hook output priority -100; policy accept;\n");
        if (rule.BypassMark is { } mark) sb.Append("    meta mark 0x").Append(mark.ToString("x", CultureInfo.InvariantCulture)).Append(" return\n");
        foreach (var (family, v6) in new[] { ("ip", false), ("ip6", true) })
        {
            var ex = rule.Excludes.Where(c => IsV6(c) == v6).ToList();
            if (ex.Count > 0) sb.Append("    ").Append(family).Append(" daddr { ").Append(string.Join(", ", ex)).Append(" } return\n");
            var cidrs = rule.Cidrs.Where(c => IsV6(c) == v6).ToList();
            if (cidrs.Count > 0)
            {
                sb.Append("    ").Append(family).Append(" daddr { ").Append(string.Join(", ", cidrs)).Append(" } meta l4proto tcp redirect to :")
                    .Append(rule.Port.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        sb.Append("  }\n}\n");
        return sb.ToString();
    }

    /// <summary>iptables/ip6tables commands: our own chain in the nat table, jumped to from OUTPUT.</summary>
    public static IReadOnlyList<(string Tool, string[] Args)> IptablesCommands(string table, RedirectRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ValidateTableName(table);
        var chain = table.ToUpperInvariant();
        var list = new List<(string, string[])>();
        foreach (var (tool, v6) in new[] { ("iptables", false), ("ip6tables", true) })
        {
            var cidrs = rule.Cidrs.Where(c => IsV6(c) == v6).ToList();
            if (cidrs.Count == 0) continue;
            list.Add((tool, ["-w", "-t", "nat", "-N", chain]));
            if (rule.BypassMark is { } mark)
                list.Add((tool, ["-w", "-t", "nat", "-A", chain, "-m", "mark", "--mark", "0x" + mark.ToString("x", CultureInfo.InvariantCulture), "-j", "RETURN"]));
            foreach (var e in rule.Excludes.Where(c => IsV6(c) == v6)) list.Add((tool, ["-w", "-t", "nat", "-A", chain, "-d", e.ToString(), "-j", "RETURN"]));
            foreach (var c in cidrs)
            {
                list.Add((tool, ["-w", "-t", "nat", "-A", chain, "-d", c.ToString(), "-p", "tcp", "-j", "REDIRECT", "--to-ports",
                    rule.Port.ToString(CultureInfo.InvariantCulture)]));
            }
            list.Add((tool, ["-w", "-t", "nat", "-I", "OUTPUT", "-j", chain]));
        }
        return list;
    }

    /// <summary>Removes our table or chain; absent already is fine.</summary>
    public static async Task RemoveAsync(FirewallBackend backend, string table, string? netns, CancellationToken cancellationToken)
    {
        ValidateTableName(table);
        if (backend == FirewallBackend.Nftables)
        {
            var r = await RunAsync(netns, "nft", ["delete", "table", "inet", table], null, cancellationToken).ConfigureAwait(false);
            if (!r.Succeeded && !r.StandardError.Contains("No such file or directory", StringComparison.Ordinal)) r.EnsureSuccess("FirewallRemoveFailed");
            return;
        }
        var chain = table.ToUpperInvariant();
        foreach (var tool in new[] { "iptables", "ip6tables" })
        {
            if (!ProcessRunner.IsOnPath(tool)) continue;
            // Drop every jump to our chain, then the chain; each step may find nothing to do.
            for (var i = 0; i < 16; i++)
            {
                var d = await RunAsync(netns, tool, ["-w", "-t", "nat", "-D", "OUTPUT", "-j", chain], null, cancellationToken).ConfigureAwait(false);
                if (!d.Succeeded) break;
            }
            await RunAsync(netns, tool, ["-w", "-t", "nat", "-F", chain], null, cancellationToken).ConfigureAwait(false);
            await RunAsync(netns, tool, ["-w", "-t", "nat", "-X", chain], null, cancellationToken).ConfigureAwait(false);
        }
    }

    private static void ValidateTableName(string table)
    {
        if (string.IsNullOrEmpty(table) || table.Length > 28 || !table.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            throw new KtException("FirewallTableNameInvalid", KtErrorCategory.InvalidArgument,
                $"Firewall table name '{table}' must be 1-28 letters, digits or underscores.", target: table);
    }

    private static bool IsV6(IPNetwork n) => n.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6;

    private static Task<ProcessResult> RunAsync(string? netns, string tool, string[] args, string? stdin, CancellationToken cancellationToken) =>
        netns is null
            ? ProcessRunner.RunAsync(tool, args, stdin, cancellationToken: cancellationToken)
            : ProcessRunner.RunAsync("ip", ["netns", "exec", netns, tool, .. args], stdin, cancellationToken: cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await RemoveAsync(_backend, _table, _netns, CancellationToken.None).ConfigureAwait(false);
        await _journal.CompleteAsync(_entry, CancellationToken.None).ConfigureAwait(false);
    }
}

/// <summary>Undoes a journaled redirect (kind "firewall") after a crash.</summary>
public sealed class FirewallUndoHandler : IJournalUndoHandler
{
    private readonly CommandRunner? _runner;

    public FirewallUndoHandler(CommandRunner? runner = null)
    {
        _runner = runner;
    }

    public string Kind => FirewallRedirect.JournalKind;

    public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        // macOS pf entries share the kind so that one registered handler undoes every redirect.
        if (entry.Data["backend"] is MacOS.PfRedirect.AnchorBackend or MacOS.PfRedirect.TokenBackend)
            return MacOS.PfRedirect.UndoAsync(entry.Data, _runner, cancellationToken);
        var backend = Enum.Parse<FirewallBackend>(entry.Data["backend"]);
        entry.Data.TryGetValue("netns", out var netns);
        return FirewallRedirect.RemoveAsync(backend, entry.Data["table"], netns, cancellationToken);
    }
}
