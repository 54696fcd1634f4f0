using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// One change in the store. <see cref="Object"/> and <see cref="Previous"/> are frozen snapshots: never mutate them.
/// </summary>
public sealed record WatchEvent(string Type, long ResourceVersion, ResourceType ResourceType, string? Namespace, JsonObject Object,
    JsonObject? Previous)
{
    public const string Added = "ADDED";
    public const string Modified = "MODIFIED";
    public const string Deleted = "DELETED";
    public const string Bookmark = "BOOKMARK";
    public const string Error = "ERROR";
}

/// <summary>
/// A live watch on the store: events in resourceVersion order, already filtered by namespace and selectors and
/// translated the way the real watch cache does (an object leaving the selector is DELETED, entering it ADDED).
/// Dispose to stop receiving.
/// </summary>
public sealed class WatchSubscription : IDisposable
{
    private readonly ObjectStore _store;
    private readonly Channel<WatchEvent> _channel = Channel.CreateUnbounded<WatchEvent>(new UnboundedChannelOptions { SingleReader = true });

    internal WatchSubscription(ObjectStore store, ResourceType type, string? ns, LabelSelector labels, FieldSelector fields, bool bookmarks)
    {
        _store = store;
        Type = type;
        Namespace = ns;
        Labels = labels;
        Fields = fields;
        AllowBookmarks = bookmarks;
    }

    public ResourceType Type { get; }

    public string? Namespace { get; }

    public LabelSelector Labels { get; }

    public FieldSelector Fields { get; }

    public bool AllowBookmarks { get; }

    public ChannelReader<WatchEvent> Events => _channel.Reader;

    /// <summary>Queues a BOOKMARK carrying the store's current resourceVersion, in order with the events.</summary>
    public void RequestBookmark() => _store.EnqueueBookmark(this);

    public void Dispose()
    {
        _store.Unsubscribe(this);
        _channel.Writer.TryComplete();
    }

    internal bool Matches(JsonObject obj) => Labels.Matches(obj) && Fields.Matches(obj);

    /// <summary>Called under the store lock: filters, translates and queues one event.</summary>
    internal void Offer(WatchEvent e)
    {
        if (e.ResourceType != Type) return;
        if (Namespace is not null && e.Namespace != Namespace) return;
        var now = Matches(e.Object);
        var before = e.Previous is not null && Matches(e.Previous);
        string? type = e.Type switch
        {
            WatchEvent.Added => now ? WatchEvent.Added : null,
            WatchEvent.Modified => now && before ? WatchEvent.Modified : now ? WatchEvent.Added : before ? WatchEvent.Deleted : null,
            WatchEvent.Deleted => now || before ? WatchEvent.Deleted : null,
            _ => null,
        };
        if (type is null) return;
        _channel.Writer.TryWrite(type == e.Type ? e : e with { Type = type });
    }

    internal void Write(WatchEvent e) => _channel.Writer.TryWrite(e);
}
