namespace KtConnect.Engine.Dns;

/// <summary>Chooses the resolver configurator for this machine, once, and lists every DNS undo handler for the journal.</summary>
public static class DnsConfigurators
{
    /// <summary>
    /// Linux: systemd-resolved when it runs (per-link routing domains), else resolv.conf; macOS: /etc/resolver;
    /// Windows: NRPT. Anything else is a typed error; the hosts-file mode (<see cref="HostsFileEditor"/>) is chosen
    /// explicitly by the caller.
    /// </summary>
    public static IDnsConfigurator ForThisMachine(IChangeJournal journal, DnsSystemPaths? paths = null, ICommandRunner? runner = null)
    {
        paths ??= DnsSystemPaths.System;
        if (OperatingSystem.IsLinux())
        {
            var resolved = new ResolvedDnsConfigurator(paths, journal, runner);
            return resolved.IsAvailable ? resolved : new ResolvConfConfigurator(paths, journal);
        }
        if (OperatingSystem.IsMacOS()) return new MacResolverConfigurator(paths, journal);
        if (OperatingSystem.IsWindows()) return new WindowsNrptConfigurator(journal, runner);
        throw new DnsConfigurationException(DnsErrorIds.UnsupportedPlatform, KtErrorCategory.NotImplemented,
            "Split DNS is supported on Linux, macOS and Windows only.");
    }

    /// <summary>Every handler that can undo a DNS journal entry (for crash recovery and Clear-KtResource -Local).</summary>
    public static IReadOnlyList<IJournalUndoHandler> UndoHandlers(IChangeJournal journal, DnsSystemPaths? paths = null, ICommandRunner? runner = null)
    {
        paths ??= DnsSystemPaths.System;
        return
        [
            new ResolvedDnsConfigurator(paths, journal, runner),
            new ResolvConfConfigurator(paths, journal),
            new MacResolverConfigurator(paths, journal),
            new WindowsNrptConfigurator(journal, runner),
            new HostsUndoHandler(),
        ];
    }
}
