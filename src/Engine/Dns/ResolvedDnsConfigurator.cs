using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Dns;

/// <summary>
/// Linux with systemd-resolved: per-link DNS on our link with routing domains (<c>~cluster.local</c> ...), so only
/// those names reach our server and everything else keeps resolved's own routing. Undo is <c>resolvectl revert</c>.
/// </summary>
public sealed class ResolvedDnsConfigurator(DnsSystemPaths paths, IChangeJournal journal, ICommandRunner? runner = null, string resolvectl = "resolvectl")
    : IDnsConfigurator
{
    public const string JournalKind = "dns-resolved";

    private readonly ICommandRunner _runner = runner ?? SystemCommandRunner.Instance;

    public string Kind => JournalKind;

    public string Name => "systemd-resolved";

    public bool IsSplit => true;

    /// <summary>True when systemd-resolved runs and resolvectl is there.</summary>
    public bool IsAvailable => Directory.Exists(paths.ResolvedRuntimeDirectory) && ProcessRunner.IsOnPath(resolvectl);

    public IReadOnlyList<IPEndPoint> OriginalUpstreams() =>
        File.Exists(paths.ResolvedUpstreamConf) ? ResolvConf.Parse(File.ReadAllText(paths.ResolvedUpstreamConf)).Endpoints() : [];

    public void CheckPrerequisites(DnsConfigurationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!Directory.Exists(paths.ResolvedRuntimeDirectory))
            throw new DnsConfigurationException(DnsErrorIds.ResolvedUnavailable, KtErrorCategory.NotInstalled,
                $"systemd-resolved is not running ({paths.ResolvedRuntimeDirectory} does not exist); use the resolv.conf or hosts mode.");
        if (!ProcessRunner.IsOnPath(resolvectl))
            throw new DnsConfigurationException(DnsErrorIds.ResolvedUnavailable, KtErrorCategory.NotInstalled,
                $"'{resolvectl}' was not found on PATH; systemd-resolved cannot be configured.");
        if (string.IsNullOrEmpty(request.LinkName))
            throw new DnsConfigurationException("DnsResolvedLinkMissing", KtErrorCategory.InvalidArgument,
                "systemd-resolved needs a network link to attach the cluster's DNS to, and only tun mode has one: connect with " +
                "--mode tun (-Mode Tun), or keep this mode with --dnsMode hosts (-DnsMode Hosts).");
    }

    /// <summary>The commands <see cref="ApplyAsync"/> runs, in order (public so their shape is unit-tested).</summary>
    public static IReadOnlyList<string[]> ApplyCommands(DnsConfigurationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var link = request.LinkName!;
        var server = request.Server.Port == 53 ? request.Server.Address.ToString() : FormatWithPort(request.Server);
        // "~suffix" is routing-only; plain domains are also search domains, which makes short names work through resolved.
        var domains = request.RoutedSuffixes.Select(s => "~" + s.Trim('.')).Concat(request.SearchDomains.Select(s => s.Trim('.'))).Distinct();
        return
        [
            ["dns", link, server],
            ["domain", link, .. domains],
            // Never the default route for other names: those stay with the machine's own links.
            ["default-route", link, "false"],
        ];
    }

    public static string[] RevertCommand(string link) => ["revert", link];

    private static string FormatWithPort(IPEndPoint ep) =>
        ep.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ep.Address}]:{ep.Port}" : $"{ep.Address}:{ep.Port}";

    public async Task<DnsConfigurationHandle> ApplyAsync(DnsConfigurationRequest request, CancellationToken cancellationToken)
    {
        CheckPrerequisites(request);
        var description = $"systemd-resolved: {string.Join(", ", request.RoutedSuffixes)} on link {request.LinkName} -> {request.Server}";
        var entry = await journal.RecordAsync(JournalKind, new Dictionary<string, string>
        {
            ["link"] = request.LinkName!,
            // The device's routes claim it too, for the same session: its link settings belong to whoever has the device.
            [ChangeJournal.ClaimData] = MachineClaim.KeyOf("network device " + request.LinkName),
            ["resolvectl"] = resolvectl,
        }, description, request.SessionId, cancellationToken).ConfigureAwait(false);
        var handle = new DnsConfigurationHandle(this, entry, description);
        try
        {
            foreach (var args in ApplyCommands(request)) await RunAsync(args, cancellationToken).ConfigureAwait(false);
        }
        catch (KtException)
        {
            try
            {
                await RevertAsync(handle, CancellationToken.None).ConfigureAwait(false);
            }
            catch (KtException)
            {
                // The entry stays in the journal and the next start retries the revert; the first error is the one to report.
            }
            throw;
        }
        return handle;
    }

    public Task RevertAsync(DnsConfigurationHandle handle, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handle);
        return journal.UndoAndCompleteAsync(this, handle.Entry, cancellationToken);
    }

    public async Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var r = await _runner.RunAsync(entry.Data.GetValueOrDefault("resolvectl", resolvectl), RevertCommand(entry.Data["link"]), cancellationToken)
            .ConfigureAwait(false);
        // A link that no longer exists (the tun device went with the crashed process) has nothing left to revert.
        if (!r.Succeeded && !r.StandardError.Contains("Failed to resolve interface", StringComparison.OrdinalIgnoreCase)
            && !r.StandardError.Contains("No such device", StringComparison.OrdinalIgnoreCase))
            throw new DnsConfigurationException(DnsErrorIds.ResolvedCommandFailed, KtErrorCategory.InvalidOperation,
                $"'{r.CommandLine}' failed: {r.StandardError.Trim()}", target: entry.Data["link"]);
    }

    private async Task RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var r = await _runner.RunAsync(resolvectl, args, cancellationToken).ConfigureAwait(false);
        if (r.Succeeded) return;
        var denied = r.StandardError.Contains("Access denied", StringComparison.OrdinalIgnoreCase)
                     || r.StandardError.Contains("Permission denied", StringComparison.OrdinalIgnoreCase)
                     || r.StandardError.Contains("authentication", StringComparison.OrdinalIgnoreCase);
        throw new DnsConfigurationException(denied ? DnsErrorIds.AccessDenied : DnsErrorIds.ResolvedCommandFailed,
            denied ? KtErrorCategory.PermissionDenied : KtErrorCategory.InvalidOperation,
            $"'{r.CommandLine}' failed{(denied ? " (run as root or with CAP_NET_ADMIN)" : "")}: {r.StandardError.Trim()}", target: r.CommandLine);
    }
}
