using System.Globalization;
using System.Net;

namespace KtConnect.Engine.Net.Routes;

/// <summary>
/// Adds routes for cluster ranges through a device: reads the table first and refuses with one
/// <see cref="RouteConflictException"/> listing every conflict (unless overridden), journals each route
/// before adding it, and removes them all when disposed (every exit path of the owner).
/// </summary>
public sealed class RouteSet : IAsyncDisposable
{
    public const string JournalKind = "route";

    private readonly IRouteTable _table;
    private readonly IChangeJournal _journal;
    private readonly List<(IPNetwork Cidr, JournalEntry Entry)> _added = [];
    private readonly string _device;
    private int _disposed;

    private RouteSet(IRouteTable table, IChangeJournal journal, string device)
    {
        _table = table;
        _journal = journal;
        _device = device;
    }

    public IReadOnlyList<IPNetwork> Routes => _added.Select(a => a.Cidr).ToList();

    public static async Task<RouteSet> AddAsync(IRouteTable table, IChangeJournal journal, string device, IEnumerable<IPNetwork> cidrs,
        IEnumerable<IPAddress> apiServerAddresses, bool ignoreConflicts, string? sessionId = null, IReadOnlyDictionary<string, string>? extraData = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentException.ThrowIfNullOrEmpty(device);
        var list = cidrs.Distinct().ToList();
        var existing = await table.ReadAsync(cancellationToken).ConfigureAwait(false);
        if (!ignoreConflicts)
        {
            var conflicts = RouteConflicts.Find(list, existing, apiServerAddresses, device);
            if (conflicts.Count > 0) throw new RouteConflictException(conflicts);
        }
        var set = new RouteSet(table, journal, device);
        try
        {
            foreach (var cidr in list)
            {
                var data = new Dictionary<string, string>(extraData ?? new Dictionary<string, string>())
                {
                    ["platform"] = table.Platform,
                    ["cidr"] = cidr.ToString(),
                    ["device"] = device,
                    [ChangeJournal.ClaimData] = MachineClaim.KeyOf("network device " + device, table.Namespace),
                };
                var entry = await journal.RecordAsync(JournalKind, data, $"route {cidr} dev {device}", sessionId, cancellationToken).ConfigureAwait(false);
                try
                {
                    await table.AddAsync(cidr, device, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    await journal.CompleteAsync(entry, CancellationToken.None).ConfigureAwait(false);
                    throw;
                }
                set._added.Add((cidr, entry));
            }
            return set;
        }
        catch
        {
            await set.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        List<Exception>? errors = null;
        for (var i = _added.Count - 1; i >= 0; i--)
        {
            var (cidr, entry) = _added[i];
            try
            {
                await _table.RemoveAsync(cidr, _device, CancellationToken.None).ConfigureAwait(false);
                await _journal.CompleteAsync(entry, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is KtException or IOException)
            {
                // The entry stays in the journal, so the next start or Clear-KtResource -Local retries it.
                (errors ??= []).Add(e);
            }
        }
        _added.Clear();
        if (errors is not null) throw new AggregateException("Some routes could not be removed; they stay journaled.", errors);
    }
}

/// <summary>Undoes journaled routes after a crash (kind "route").</summary>
public sealed class RouteUndoHandler : IJournalUndoHandler
{
    private readonly Func<JournalEntry, IRouteTable> _tableFor;

    /// <param name="tableFor">The table to use for an entry (tests pass one that runs inside their namespace).</param>
    public RouteUndoHandler(Func<JournalEntry, IRouteTable>? tableFor = null) =>
        _tableFor = tableFor ?? (_ => RouteTables.ForCurrentOs());

    public string Kind => RouteSet.JournalKind;

    public Task UndoAsync(JournalEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var cidr = IPNetwork.Parse(entry.Data["cidr"]);
        return _tableFor(entry).RemoveAsync(cidr, entry.Data["device"], cancellationToken);
    }
}

public static class RouteTables
{
    /// <summary>The routing table of the OS we run on.</summary>
    public static IRouteTable ForCurrentOs()
    {
        if (OperatingSystem.IsLinux()) return new LinuxRouteTable();
        if (OperatingSystem.IsMacOS()) return new MacRouteTable();
        if (OperatingSystem.IsWindows()) return new WindowsRouteTable();
        throw new KtException("RoutesNotSupported", KtErrorCategory.NotImplemented,
            $"Routes are not supported on {System.Runtime.InteropServices.RuntimeInformation.OSDescription}.");
    }

    internal static string Format(int value) => value.ToString(CultureInfo.InvariantCulture);
}
