using System.Net;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Sessions.Connect;

/// <summary>
/// kt-connect's <c>--dnsMode hosts[:ns1,ns2]</c>: the Services of the connected namespace (and of the namespaces
/// named) written into the hosts file, in a block of this session's own, instead of changing the resolver. Short
/// names work for the connected namespace only. A watch per namespace keeps the block in step with the Services; it
/// is journaled, so a crash is undone later, and removed on dispose.
/// </summary>
public sealed class HostsDns : IAsyncDisposable
{
    private readonly HostsFileEditor _editor;
    private readonly IChangeJournal _journal;
    private readonly IReadOnlyList<string> _namespaces;
    private readonly IReadOnlyList<Watcher<Service>> _watchers;
    private readonly string _connected;
    private readonly string _domain;
    private readonly string _blockId;
    private readonly string _sessionId;
    private readonly IKtOutput _output;
    private readonly SemaphoreSlim _changed = new(0);
    private readonly CancellationTokenSource _stop = new();
    private IReadOnlyList<HostsEntry> _written = [];
    private JournalEntry? _entry;
    private Task _loop = Task.CompletedTask;
    private string? _lastWarning;

    private HostsDns(KubeClient client, HostsFileEditor editor, IChangeJournal journal, IReadOnlyList<string> namespaces, string connected,
        string domain, string blockId, string sessionId, IKtOutput output)
    {
        (_editor, _journal, _namespaces, _connected, _domain, _blockId, _sessionId, _output) =
            (editor, journal, namespaces, connected, domain, blockId, sessionId, output);
        _watchers = namespaces.Select(ns => client.Services.CreateWatcher(ns, onEvent: (_, _) =>
        {
            _changed.Release();
            return ValueTask.CompletedTask;
        })).ToList();
    }

    /// <summary>How long changes are gathered before the file is written, and how often the block is checked anyway.</summary>
    public static TimeSpan Debounce { get; set; } = TimeSpan.FromMilliseconds(200);

    public static TimeSpan Resync { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The names the block holds now, one entry per Service.</summary>
    public IReadOnlyList<HostsEntry> Entries => Volatile.Read(ref _written);

    /// <summary>Writes the block for the Services there are now and keeps it in step until disposed.</summary>
    public static async Task<HostsDns> StartAsync(KubeClient client, HostsFileEditor editor, IChangeJournal journal, string connectedNamespace,
        IReadOnlyList<string> otherNamespaces, string clusterDomain, string sessionId, IKtOutput? output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(editor);
        ArgumentNullException.ThrowIfNull(otherNamespaces);
        var namespaces = otherNamespaces.Prepend(connectedNamespace).Distinct(StringComparer.Ordinal).ToList();
        var hosts = new HostsDns(client, editor, journal, namespaces, connectedNamespace, clusterDomain.TrimEnd('.'),
            $"{connectedNamespace}-{sessionId[..Math.Min(8, sessionId.Length)]}", sessionId, output ?? NullOutput.Instance);
        try
        {
            foreach (var w in hosts._watchers)
            {
                w.Start();
                await Task.WhenAny(w.Synced, w.Completion).WaitAsync(cancellationToken).ConfigureAwait(false);
                if (!w.Synced.IsCompleted) await w.Completion.ConfigureAwait(false); // throws the watch's error
            }
            await hosts.WriteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await hosts.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        hosts._loop = Task.Run(() => hosts.RunAsync(hosts._stop.Token), CancellationToken.None);
        return hosts;
    }

    /// <summary>The hosts lines for <paramref name="services"/>: every Service with a ClusterIP, sorted by namespace and name.</summary>
    public static IReadOnlyList<HostsEntry> BuildEntries(IEnumerable<Service> services, string connectedNamespace, string clusterDomain)
    {
        ArgumentNullException.ThrowIfNull(services);
        var domain = clusterDomain.TrimEnd('.');
        var list = new List<HostsEntry>();
        foreach (var svc in services.OrderBy(s => s.Metadata.Namespace, StringComparer.Ordinal).ThenBy(s => s.Metadata.Name, StringComparer.Ordinal))
        {
            if (svc.Spec?.ClusterIP is not { Length: > 0 } ip || ip == "None" || !IPAddress.TryParse(ip, out var address)) continue;
            var (name, ns) = (svc.Metadata.Name!, svc.Metadata.Namespace!);
            List<string> names = ns == connectedNamespace ? [name] : [];
            names.AddRange([$"{name}.{ns}", $"{name}.{ns}.svc", $"{name}.{ns}.svc.{domain}"]);
            list.Add(new HostsEntry(address, names));
        }
        return list;
    }

    /// <summary>Writes the block when the watched Services give other lines than those written.</summary>
    private async Task WriteAsync(CancellationToken cancellationToken)
    {
        var entries = BuildEntries(_watchers.SelectMany(w => w.Snapshot), _connected, _domain);
        if (_entry is not null && Same(entries, _written)) return;
        var previous = _entry;
        _entry = await _editor.ApplyAsync(_blockId, entries, _sessionId, cancellationToken, replacing: previous).ConfigureAwait(false);
        // The new entry covers the same block: the old one is done with.
        if (previous is not null) await _journal.CompleteAsync(previous, CancellationToken.None).ConfigureAwait(false);
        Volatile.Write(ref _written, entries);
        _output.Verbose($"Hosts file: {entries.Count} Service(s) of {string.Join(", ", _namespaces)} in block {_blockId} of {_editor.Path}");
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await _changed.WaitAsync(Resync, cancellationToken).ConfigureAwait(false);
                await Task.Delay(Debounce, cancellationToken).ConfigureAwait(false);
                while (_changed.CurrentCount > 0) await _changed.WaitAsync(cancellationToken).ConfigureAwait(false);
                await WriteAsync(cancellationToken).ConfigureAwait(false);
                _lastWarning = null;
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Said once per kind of failure; the block keeps the last names until a write succeeds.
                var kind = (e as KtException)?.ErrorId ?? e.GetType().Name;
                if (_lastWarning != kind) _output.Warning($"Could not update the hosts file: {e.Message}");
                _lastWarning = kind;
            }
        }
    }

    private static bool Same(IReadOnlyList<HostsEntry> a, IReadOnlyList<HostsEntry> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Address.Equals(p.Second.Address) && p.First.Names.SequenceEqual(p.Second.Names, StringComparer.Ordinal));

    /// <summary>Stops following the Services and removes the block.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _output.Verbose($"The hosts file updater had stopped: {e.Message}");
        }
        foreach (var w in _watchers)
        {
            // A watch that ended with a fault of its own is past mattering here, and must not keep the block in the file.
            try
            {
                await w.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _output.Verbose($"A Service watch of the hosts file updater had failed: {e.Message}");
            }
        }
        if (_entry is { } entry)
        {
            _entry = null;
            await _editor.RevertAsync(entry, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
