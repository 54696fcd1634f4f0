using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine.Net.Redirect;

namespace KtConnect.Engine.Net.MacOS;

/// <summary>
/// macOS redirect mode: rules in a pf anchor of our own. Outgoing TCP to the cluster ranges is routed to lo0
/// (pf's rdr only applies to inbound packets) and there redirected to the transparent listener; excludes come
/// first as "no rdr". The listener asks pf for each connection's original destination with DIOCNATLOOK.
/// Rule text and the ioctl structure are pure and unit-tested; loading uses pfctl through an injectable
/// <see cref="CommandRunner"/>.
/// <para>
/// The default anchor is a child of <c>com.apple</c>: the stock /etc/pf.conf references <c>"com.apple/*"</c> with
/// both <c>rdr-anchor</c> and <c>anchor</c>, so our rules are evaluated without editing the main ruleset (which
/// would replace whatever the user or another product loaded). <see cref="ApplyAsync"/> checks that reference
/// first and refuses with <c>PfAnchorNotReferenced</c> rather than loading rules pf would never look at.
/// </para>
/// <para>
/// Journal (kind <c>firewall</c>, undone by <see cref="FirewallUndoHandler"/>): <c>backend=pf, anchor</c> is
/// recorded before the anchor is loaded; <c>backend=pf-token, token</c> right after <c>pfctl -E</c> returned the
/// token (it cannot be known earlier; a crash in between leaves one enable reference, i.e. pf stays enabled with
/// our anchor already flushed by the first entry's undo — no traffic is redirected).
/// </para>
/// </summary>
public sealed class PfRedirect : IAsyncDisposable
{
    public const string DefaultAnchor = "com.apple/ktconnect";

    /// <summary>The machine-wide name of our anchor.</summary>
    public static string ClaimKey(string anchor) => "pf anchor " + anchor;

    public const string PfctlPath = "/sbin/pfctl";
    public const string AnchorBackend = "pf";
    public const string TokenBackend = "pf-token";

    private readonly IChangeJournal _journal;
    private readonly JournalEntry _anchorEntry;
    private readonly CommandRunner _run;
    private readonly string _anchor;
    private JournalEntry? _tokenEntry;
    private string? _token;
    private int _disposed;

    private PfRedirect(IChangeJournal journal, JournalEntry anchorEntry, CommandRunner run, string anchor)
    {
        _journal = journal;
        _anchorEntry = anchorEntry;
        _run = run;
        _anchor = anchor;
    }

    public string Anchor => _anchor;

    /// <summary>The enable reference pfctl -E handed out (released on dispose); null until then.</summary>
    public string? EnableToken => _token;

    /// <summary>
    /// Checks that the main ruleset evaluates <paramref name="anchor"/>, journals, loads the anchor's rules and
    /// enables pf with a reference of our own. Everything is undone on failure and on dispose.
    /// </summary>
    public static async Task<PfRedirect> ApplyAsync(RedirectRule rule, IChangeJournal journal, string anchor = DefaultAnchor,
        string? sessionId = null, CommandRunner? runner = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rule);
        ArgumentNullException.ThrowIfNull(journal);
        ValidateAnchor(anchor);
        var run = runner ?? CommandRunners.Process;
        var nat = (await run(PfctlPath, ["-s", "nat"], null, cancellationToken).ConfigureAwait(false)).EnsureSuccess("FirewallApplyFailed");
        var filter = (await run(PfctlPath, ["-s", "rules"], null, cancellationToken).ConfigureAwait(false)).EnsureSuccess("FirewallApplyFailed");
        var missing = MissingAnchorReferences(anchor, nat.StandardOutput, filter.StandardOutput);
        if (missing.Count > 0)
        {
            throw new KtException("PfAnchorNotReferenced", KtErrorCategory.InvalidOperation,
                $"pf's main ruleset does not evaluate anchor '{anchor}' (missing: {string.Join(", ", missing)}). " +
                "The stock /etc/pf.conf has rdr-anchor \"com.apple/*\" and anchor \"com.apple/*\"; reload it with " +
                "'sudo pfctl -f /etc/pf.conf', or add those lines for our anchor, or use tun mode.", target: anchor);
        }

        // One redirect per anchor: a second session would replace the first one's rules (and its stop would flush them).
        var holder = journal.ReadAll().FirstOrDefault(e => e.Kind == FirewallRedirect.JournalKind && e.Data.GetValueOrDefault("backend") == AnchorBackend
            && e.Data.GetValueOrDefault("anchor") == anchor && !ChangeJournal.IsOrphaned(e));
        if (holder is not null)
        {
            throw new KtException("RedirectInUse", KtErrorCategory.ResourceBusy,
                $"Another redirect-mode session (process {holder.OwnerPid}) uses pf anchor '{anchor}'. Stop it first, or use tun or socks mode.", target: anchor);
        }
        var entry = await journal.RecordAsync(FirewallRedirect.JournalKind,
            new Dictionary<string, string> { ["backend"] = AnchorBackend, ["anchor"] = anchor, [ChangeJournal.ClaimData] = ClaimKey(anchor) }, $"pf anchor {anchor}", sessionId,
            cancellationToken).ConfigureAwait(false);
        var redirect = new PfRedirect(journal, entry, run, anchor);
        try
        {
            foreach (var args in LoadCommands(anchor))
            {
                if (args is [_, _, "-F", _])
                {
                    await FlushAsync(run, anchor, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                var stdin = args.Contains("-f") ? AnchorRules(rule) : null;
                var r = (await run(PfctlPath, args, stdin, cancellationToken).ConfigureAwait(false)).EnsureSuccess("FirewallApplyFailed");
                if (args is ["-E"])
                {
                    // pfctl writes its messages, the token among them, to stderr; look at both.
                    redirect._token = ParseEnableToken(r.StandardError + "\n" + r.StandardOutput)
                        ?? throw new KtException("FirewallApplyFailed", KtErrorCategory.ProtocolError,
                            "pfctl -E did not print an enable token; pf was enabled but the reference cannot be released.");
                    redirect._tokenEntry = await journal.RecordAsync(FirewallRedirect.JournalKind,
                        new Dictionary<string, string> { ["backend"] = TokenBackend, ["token"] = redirect._token }, $"pf enable reference {redirect._token}",
                        sessionId, CancellationToken.None).ConfigureAwait(false);
                }
            }
            return redirect;
        }
        catch
        {
            await redirect.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Which references to <paramref name="anchor"/> the main ruleset lacks, given `pfctl -s nat` and
    /// `pfctl -s rules` output: "rdr-anchor" (for the rdr rules) and "anchor" (for the route-to rules).
    /// A reference is the anchor itself or a "parent/*" wildcard, which evaluates the parent's direct children.
    /// </summary>
    public static IReadOnlyList<string> MissingAnchorReferences(string anchor, string natRules, string filterRules)
    {
        ArgumentNullException.ThrowIfNull(natRules);
        ArgumentNullException.ThrowIfNull(filterRules);
        var missing = new List<string>();
        if (!References("rdr-anchor", anchor, natRules)) missing.Add("rdr-anchor");
        if (!References("anchor", anchor, filterRules)) missing.Add("anchor");
        return missing;
    }

    private static bool References(string keyword, string anchor, string rules)
    {
        foreach (var raw in rules.Split('\n'))
        {
            var line = raw.Trim();
            if (!line.StartsWith(keyword + " \"", StringComparison.Ordinal)) continue;
            var start = keyword.Length + 2;
            var end = line.IndexOf('"', start);
            if (end < 0) continue;
            var name = line[start..end];
            if (name == anchor) return true;
            if (name.EndsWith("/*", StringComparison.Ordinal))
            {
                var parent = name[..^1];
                if (anchor.StartsWith(parent, StringComparison.Ordinal) && !anchor[parent.Length..].Contains('/', StringComparison.Ordinal)
                    && anchor.Length > parent.Length) return true;
            }
        }
        return false;
    }

    /// <summary>The anchor's rules (`pfctl -a ANCHOR -f -`).</summary>
    public static string AnchorRules(RedirectRule rule, string loopbackV4 = "127.0.0.1", string loopbackV6 = "::1")
    {
        ArgumentNullException.ThrowIfNull(rule);
        var port = rule.Port.ToString(CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        foreach (var e in rule.Excludes) sb.Append("no rdr on lo0 ").Append(Family(e)).Append(" proto tcp from any to ").Append(e).Append('\n');
        foreach (var c in rule.Cidrs)
        {
            var lo = Family(c) == "inet6" ? loopbackV6 : loopbackV4;
            sb.Append("rdr on lo0 ").Append(Family(c)).Append(" proto tcp from any to ").Append(c).Append(" -> ").Append(lo).Append(" port ").Append(port).Append('\n');
        }
        foreach (var e in rule.Excludes) sb.Append("pass out quick ").Append(Family(e)).Append(" proto tcp from any to ").Append(e).Append('\n');
        foreach (var c in rule.Cidrs)
        {
            var lo = Family(c) == "inet6" ? loopbackV6 : loopbackV4;
            sb.Append("pass out route-to (lo0 ").Append(lo).Append(") ").Append(Family(c)).Append(" proto tcp from any to ").Append(c).Append(" keep state\n");
        }
        return sb.ToString();
    }

    /// <summary>
    /// pfctl invocations: flush what a crashed earlier run may have left in the anchor, load it, enable pf with a
    /// reference (token) so that we never disable pf for others.
    /// </summary>
    public static IReadOnlyList<string[]> LoadCommands(string anchor) =>
    [
        ["-a", anchor, "-F", "all"],
        ["-a", anchor, "-f", "-"],
        ["-E"],
    ];

    /// <summary>pfctl invocations that undo <see cref="LoadCommands"/> (flush our anchor, release our enable token).</summary>
    public static IReadOnlyList<string[]> UnloadCommands(string anchor, string? enableToken)
    {
        var list = new List<string[]> { new[] { "-a", anchor, "-F", "all" } };
        if (enableToken is not null) list.Add(["-X", enableToken]);
        return list;
    }

    /// <summary>Reads the token pfctl -E prints ("Token : 1234").</summary>
    public static string? ParseEnableToken(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach (var line in output.Split('\n'))
        {
            var t = line.Trim();
            if (t.StartsWith("Token", StringComparison.Ordinal) && t.Contains(':', StringComparison.Ordinal)) return t[(t.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        return null;
    }

    /// <summary>Undoes a journaled pf change (after a crash): flushes the anchor or releases the enable token. Idempotent.</summary>
    public static async Task UndoAsync(IReadOnlyDictionary<string, string> data, CommandRunner? runner, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(data);
        var run = runner ?? CommandRunners.Process;
        switch (data["backend"])
        {
            case AnchorBackend:
                ValidateAnchor(data["anchor"]);
                await FlushAsync(run, data["anchor"], cancellationToken).ConfigureAwait(false);
                break;
            case TokenBackend:
                await ReleaseAsync(run, data["token"], cancellationToken).ConfigureAwait(false);
                break;
            default:
                throw new ArgumentException($"Not a pf journal entry: backend '{data["backend"]}'.", nameof(data));
        }
    }

    private static async Task FlushAsync(CommandRunner run, string anchor, CancellationToken cancellationToken)
    {
        var r = await run(PfctlPath, UnloadCommands(anchor, null)[0], null, cancellationToken).ConfigureAwait(false);
        // An anchor that no longer exists is already undone.
        if (!r.Succeeded && !r.StandardError.Contains("does not exist", StringComparison.OrdinalIgnoreCase)) r.EnsureSuccess("FirewallRemoveFailed");
    }

    private static async Task ReleaseAsync(CommandRunner run, string token, CancellationToken cancellationToken)
    {
        if (token.Length == 0 || !token.All(char.IsAsciiDigit))
            throw new KtException("FirewallRemoveFailed", KtErrorCategory.InvalidData, $"'{token}' is not a pf enable token.");
        // A token pf no longer knows (released already, or pf restarted) makes pfctl fail; that is the undone state,
        // and pfctl gives no distinct message for it, so a failed release is not an error here.
        await run(PfctlPath, ["-X", token], null, cancellationToken).ConfigureAwait(false);
    }

    private static void ValidateAnchor(string anchor)
    {
        if (string.IsNullOrEmpty(anchor) || anchor.Length > 64 || anchor.StartsWith('/') || anchor.EndsWith('/') || anchor.Contains("//", StringComparison.Ordinal)
            || !anchor.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '/'))
        {
            throw new KtException("FirewallTableNameInvalid", KtErrorCategory.InvalidArgument,
                $"pf anchor name '{anchor}' must be 1-64 letters, digits, '.', '_', '-' in '/'-separated parts.", target: anchor);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // Rules first: once the anchor is empty nothing is redirected, whatever happens to the token.
        await FlushAsync(_run, _anchor, CancellationToken.None).ConfigureAwait(false);
        await _journal.CompleteAsync(_anchorEntry, CancellationToken.None).ConfigureAwait(false);
        if (_token is not null)
        {
            // Released even when journalling it failed: pf would otherwise keep our enable reference until reboot.
            await ReleaseAsync(_run, _token, CancellationToken.None).ConfigureAwait(false);
            if (_tokenEntry is not null) await _journal.CompleteAsync(_tokenEntry, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private static string Family(IPNetwork n) => n.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 ? "inet6" : "inet";
}

