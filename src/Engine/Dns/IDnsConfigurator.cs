using System.Net;

namespace KtConnect.Engine.Dns;

/// <summary>What the OS resolver must be told: send these suffixes to our server.</summary>
public sealed record DnsConfigurationRequest
{
    /// <summary>Our split-DNS server.</summary>
    public required IPEndPoint Server { get; init; }

    /// <summary>Suffixes routed to the server (<c>cluster.local</c>, <c>svc</c>, the namespaces).</summary>
    public required IReadOnlyList<string> RoutedSuffixes { get; init; }

    /// <summary>Search domains added after the machine's own (the namespace's search list), for short names.</summary>
    public IReadOnlyList<string> SearchDomains { get; init; } = [];

    /// <summary>The network link to attach per-link settings to (systemd-resolved): usually our tun device.</summary>
    public string? LinkName { get; init; }

    public string? SessionId { get; init; }

    public static DnsConfigurationRequest From(SplitDnsOptions options, IPEndPoint server, string? linkName = null, string? sessionId = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new DnsConfigurationRequest
        {
            Server = server,
            RoutedSuffixes = options.RoutedSuffixes(),
            SearchDomains = options.SearchList(),
            LinkName = linkName,
            SessionId = sessionId,
        };
    }
}

/// <summary>A configuration in force; give it back to <see cref="IDnsConfigurator.RevertAsync"/>.</summary>
public sealed record DnsConfigurationHandle(IDnsConfigurator Configurator, JournalEntry Entry, string Description);

/// <summary>
/// Points the OS resolver at the split-DNS server for the cluster's suffixes, one implementation per OS (chosen once
/// by <see cref="DnsConfigurators.ForThisMachine"/>). Every change is recorded in the journal before it is made and
/// can be undone from the journal entry alone, by this process or, after a crash, by the next one.
/// </summary>
public interface IDnsConfigurator : IJournalUndoHandler
{
    /// <summary>Short name for messages (<c>systemd-resolved</c>, <c>resolv.conf</c>, ...).</summary>
    string Name { get; }

    /// <summary>True when this configurator routes only the given suffixes (so the server's upstream is never asked through it).</summary>
    bool IsSplit { get; }

    /// <summary>The machine's resolvers before any change: the server's upstreams for everything else.</summary>
    IReadOnlyList<IPEndPoint> OriginalUpstreams();

    /// <summary>Checks prerequisites without changing anything; throws <see cref="DnsConfigurationException"/> with a clear id.</summary>
    void CheckPrerequisites(DnsConfigurationRequest request);

    Task<DnsConfigurationHandle> ApplyAsync(DnsConfigurationRequest request, CancellationToken cancellationToken);

    Task RevertAsync(DnsConfigurationHandle handle, CancellationToken cancellationToken);
}

/// <summary>Runs external commands; tests substitute a recorder.</summary>
public interface ICommandRunner
{
    Task<ProcessResult> RunAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken);
}

/// <summary>The real thing: <see cref="ProcessRunner"/>.</summary>
public sealed class SystemCommandRunner : ICommandRunner
{
    public static SystemCommandRunner Instance { get; } = new();

    public Task<ProcessResult> RunAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        ProcessRunner.RunAsync(fileName, arguments, timeout: TimeSpan.FromSeconds(30), cancellationToken: cancellationToken);
}
