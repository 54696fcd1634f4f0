using System.Net;
using KtConnect.Engine.Dns;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions;

namespace KtConnect.Engine.Cluster.Connect;

/// <summary>
/// kt-connect's <c>--dnsMode hosts[:ns1,ns2]</c>: the Services of the connected namespace (and of the namespaces
/// named) written into the hosts file, in a block of this session's own, instead of changing the resolver. Short
/// names work for the connected namespace only. The block follows the Services (re-listed every
/// <see cref="RefreshInterval"/>) and is removed on dispose; it is journaled, so a crash is undone later.
/// </summary>
public sealed class HostsDns : IAsyncDisposable
{
    private readonly KubeClient _client;
    private readonly HostsFileEditor _editor;
    private readonly IChangeJournal _journal;
    private readonly IReadOnlyList<string> _namespaces;
    private readonly string _connected;
    private readonly string _domain;
    private readonly string _blockId;
    private readonly string _sessionId;
    private readonly IKtOutput _output;
    private readonly CancellationTokenSource _stop = new();
    private IReadOnlyList<HostsEntry> _written = [];
    private JournalEntry? _entry;
    private Task _loop = Task.CompletedTask;
    private string? _lastWarning;

    private HostsDns(KubeClient client, HostsFileEditor editor, IChangeJournal journal, IReadOnlyList<string> namespaces, string connected,
        string domain, string blockId, string sessionId, IKtOutput output)
    {
        (_client, _editor, _journal, _namespaces, _connected, _domain, _blockId, _sessionId, _output) =
            (client, editor, journal, namespaces, connected, domain, blockId, sessionId, output);
    }

    public static TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

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
        await hosts.RefreshAsync(cancellationToken).ConfigureAwait(false);
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

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var services = new List<Service>();
        foreach (var ns in _namespaces)
            services.AddRange((await _client.Services.ListAllAsync(ns, cancellationToken: cancellationToken).ConfigureAwait(false)).Items);
        var entries = BuildEntries(services, _connected, _domain);
        if (_entry is not null && Same(entries, _written)) return;
        var previous = _entry;
        _entry = await _editor.ApplyAsync(_blockId, entries, _sessionId, cancellationToken).ConfigureAwait(false);
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
                await Task.Delay(RefreshInterval, cancellationToken).ConfigureAwait(false);
                await RefreshAsync(cancellationToken).ConfigureAwait(false);
                _lastWarning = null;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Say it once per kind of failure; the block keeps the last names until a refresh succeeds.
                var kind = (e as KtException)?.ErrorId ?? e.GetType().Name;
                if (_lastWarning != kind) _output.Warning($"Could not refresh the hosts file: {e.Message}");
                _lastWarning = kind;
            }
        }
    }

    private static bool Same(IReadOnlyList<HostsEntry> a, IReadOnlyList<HostsEntry> b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Address.Equals(p.Second.Address) && p.First.Names.SequenceEqual(p.Second.Names, StringComparer.Ordinal));

    /// <summary>Stops following the Services and removes the block.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
        if (_entry is { } entry)
        {
            _entry = null;
            await _editor.RevertAsync(entry, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
