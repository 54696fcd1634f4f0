using System.Runtime.CompilerServices;
using System.Text.Json;
using KtConnect.Engine.Kube.Json;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

/// <summary>
/// Typed access to one resource: get, list (paged), create, replace, patch, delete, watch and conflict-retrying
/// updates. For namespaced resources a null namespace means the configuration's namespace;
/// <see cref="KubeClient.AllNamespaces"/> (list and watch only) means every namespace. Cluster-scoped
/// resources ignore the namespace.
/// </summary>
public class ResourceClient<T> where T : KubeObject
{
    private readonly KubeClient _client;

    internal ResourceClient(KubeClient client, ResourceDescriptor<T> resource)
    {
        _client = client;
        Resource = resource;
    }

    public ResourceDescriptor<T> Resource { get; }

    internal KubeTransport Transport => _client.Transport;

    internal string? Ns(string? ns, bool allowAll = false)
    {
        if (!Resource.Namespaced) return null;
        if (ns is null) return _client.Configuration.Namespace;
        if (ns.Length == 0 && !allowAll)
            throw new ArgumentException("A namespace is required for a single " + Resource.Kind + ".", nameof(ns));
        return ns;
    }

    public async Task<T> GetAsync(string name, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var n = Ns(ns);
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Get, Resource.Path(n, name),
            Transport.Info("get", Resource.QualifiedName, n, name)), cancellationToken).ConfigureAwait(false);
        return Decode(body);
    }

    /// <summary>The object, or null when it does not exist.</summary>
    public async Task<T?> TryGetAsync(string name, string? ns = null, CancellationToken cancellationToken = default)
    {
        try
        {
            return await GetAsync(name, ns, cancellationToken).ConfigureAwait(false);
        }
        catch (KubeNotFoundException)
        {
            return null;
        }
    }

    /// <summary>One page (or everything when no limit is set).</summary>
    public async Task<KubeList<T>> ListAsync(string? ns = null, ListOptions? options = null, CancellationToken cancellationToken = default)
    {
        var n = Ns(ns, allowAll: true);
        var q = new QueryBuilder();
        options?.AppendQuery(q);
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Get, Resource.Path(n) + q,
            Transport.Info("list", Resource.QualifiedName, n, null)), cancellationToken).ConfigureAwait(false);
        var list = DecodeList(body);
        foreach (var item in list.Items)
        {
            // Items carry no TypeMeta on the wire; fill it in so an item can be sent back as is.
            item.ApiVersion ??= Resource.ApiVersion;
            item.Kind ??= Resource.Kind;
        }
        return list;
    }

    /// <summary>
    /// Every page, following metadata.continue, merged into one list whose resourceVersion is the last page's
    /// (the one to start a watch from). <paramref name="pageSize"/> bounds each response.
    /// </summary>
    public async Task<KubeList<T>> ListAllAsync(string? ns = null, ListOptions? options = null, int pageSize = 500, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        var page = options?.CloneList() ?? new ListOptions();
        page.Limit = pageSize;
        page.Continue = null;
        KubeList<T>? all = null;
        while (true)
        {
            KubeList<T> list;
            try
            {
                list = await ListAsync(ns, page, cancellationToken).ConfigureAwait(false);
            }
            catch (KubeGoneException) when (page.Continue is not null)
            {
                // The continue token expired (the snapshot was compacted): like client-go's pager, fall back to
                // one unpaged list, which is consistent by itself.
                var whole = options?.CloneList() ?? new ListOptions();
                whole.Limit = null;
                whole.Continue = null;
                return await ListAsync(ns, whole, cancellationToken).ConfigureAwait(false);
            }
            if (all is null) all = list;
            else
            {
                all.Items.AddRange(list.Items);
                all.Metadata = list.Metadata;
            }
            if (string.IsNullOrEmpty(list.Metadata.Continue)) break;
            page.Continue = list.Metadata.Continue;
            // A continue token pins the snapshot; a resourceVersion must not be sent with it.
            page.ResourceVersion = null;
        }
        all.Metadata.Continue = null;
        all.Metadata.RemainingItemCount = null;
        return all;
    }

    public Task<T> CreateAsync(T obj, string? ns = null, CancellationToken cancellationToken = default) =>
        CreateAsync(obj, ns, dryRun: false, cancellationToken);

    /// <summary>
    /// POST. With <paramref name="dryRun"/> (<c>?dryRun=All</c>) the server validates, defaults and admits the object
    /// and answers as if it had stored it, but stores nothing: a way to ask what it would say.
    /// </summary>
    public async Task<T> CreateAsync(T obj, string? ns, bool dryRun, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var n = Ns(ns ?? NullIfEmpty(obj.Metadata.Namespace));
        obj.ApiVersion ??= Resource.ApiVersion;
        obj.Kind ??= Resource.Kind;
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Post, Resource.Path(n) + (dryRun ? "?dryRun=All" : ""),
            Transport.Info("create", Resource.QualifiedName, n, obj.Metadata.Name ?? obj.Metadata.GenerateName))
        {
            Body = Encode(obj),
        }, cancellationToken).ConfigureAwait(false);
        return Decode(body);
    }

    /// <summary>PUT: the object's metadata.resourceVersion is the precondition (409 Conflict when stale).</summary>
    public async Task<T> ReplaceAsync(T obj, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var name = obj.Metadata.Name ?? throw new ArgumentException("metadata.name is required for a replace.", nameof(obj));
        var n = Ns(NullIfEmpty(obj.Metadata.Namespace));
        obj.ApiVersion ??= Resource.ApiVersion;
        obj.Kind ??= Resource.Kind;
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Put, Resource.Path(n, name),
            Transport.Info("update", Resource.QualifiedName, n, name))
        {
            Body = Encode(obj),
        }, cancellationToken).ConfigureAwait(false);
        return Decode(body);
    }

    public async Task<T> PatchAsync(string name, KubePatch patch, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(patch);
        var n = Ns(ns);
        var body = await Transport.SendAsync(PatchRequest(Resource.Path(n, name), patch, "patch", Resource.QualifiedName, n, name),
            cancellationToken).ConfigureAwait(false);
        return Decode(body);
    }

    internal KubeHttpRequest PatchRequest(string path, KubePatch patch, string verb, string resource, string? ns, string name)
    {
        var q = new QueryBuilder();
        if (patch.Type == KubePatchType.Apply)
        {
            q.Add("fieldManager", patch.FieldManager);
            if (patch.Force) q.Add("force", "true");
        }
        return new KubeHttpRequest(HttpMethod.Patch, path + q, Transport.Info(verb, resource, ns, name))
        {
            Body = patch.Body,
            ContentType = patch.ContentType,
        };
    }

    /// <summary>DELETE. Returns the Status the server sent, or the object when deletion is graceful (pods, namespaces).</summary>
    public async Task<DeleteResult<T>> DeleteAsync(string name, string? ns = null, DeleteOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var n = Ns(ns);
        var q = new QueryBuilder();
        ReadOnlyMemory<byte>? body = null;
        if (options is not null)
        {
            q.Add("gracePeriodSeconds", options.GracePeriodSeconds);
            if (options.PropagationPolicy != PropagationPolicy.Default) q.Add("propagationPolicy", options.PropagationPolicy.ToString());
            if (options.PreconditionUid is not null || options.PreconditionResourceVersion is not null)
                body = DeleteOptionsBody(options);
        }
        var answer = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Delete, Resource.Path(n, name) + q,
            Transport.Info("delete", Resource.QualifiedName, n, name))
        {
            Body = body,
        }, cancellationToken).ConfigureAwait(false);
        if (answer.Length == 0) return new DeleteResult<T>(null, null);
        if (IsStatus(answer)) return new DeleteResult<T>(JsonSerializer.Deserialize(answer, KubeJsonContext.Default.KubeStatus), null);
        return new DeleteResult<T>(null, Decode(answer));
    }

    /// <summary>Deletes and treats "already gone" as success. Returns false when there was nothing to delete.</summary>
    public async Task<bool> DeleteIfExistsAsync(string name, string? ns = null, DeleteOptions? options = null, CancellationToken cancellationToken = default)
    {
        try
        {
            await DeleteAsync(name, ns, options, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (KubeNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// Read-modify-write with optimistic concurrency: GET, apply <paramref name="mutate"/>, PUT with the read
    /// resourceVersion; on 409 Conflict read again and re-apply, up to <see cref="KubeClientOptions.MaxConflictRetries"/>
    /// times. <paramref name="mutate"/> returns false when nothing needs changing (no PUT is sent).
    /// </summary>
    public Task<T> UpdateWithRetryAsync(string name, Func<T, bool> mutate, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mutate);
        return UpdateWithRetryAsync(name, (obj, _) => ValueTask.FromResult(mutate(obj)), ns, cancellationToken);
    }

    /// <summary>The asynchronous form: <paramref name="mutate"/> may itself call the API (it runs again after each conflict).</summary>
    public async Task<T> UpdateWithRetryAsync(string name, Func<T, CancellationToken, ValueTask<bool>> mutate, string? ns = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(mutate);
        var attempt = 0;
        while (true)
        {
            var current = await GetAsync(name, ns, cancellationToken).ConfigureAwait(false);
            if (!await mutate(current, cancellationToken).ConfigureAwait(false)) return current;
            try
            {
                return await ReplaceAsync(current, cancellationToken).ConfigureAwait(false);
            }
            catch (KubeConflictException) when (attempt < Transport.Options.MaxConflictRetries)
            {
                attempt++;
                // Jittered backoff so two writers that collided do not collide again in lockstep.
                var delay = TimeSpan.FromMilliseconds(Random.Shared.Next(10, 50) * attempt);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// One watch request: events until the server ends the stream (timeoutSeconds) or cancellation. An ERROR
    /// event (410 Expired) is delivered as an event; an HTTP error before the stream starts is thrown.
    /// Use <see cref="CreateWatcher"/> for a watch that re-lists and restarts by itself.
    /// </summary>
    public async IAsyncEnumerable<WatchEvent<T>> WatchAsync(string? ns = null, WatchOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var n = Ns(ns, allowAll: true);
        var q = new QueryBuilder();
        (options ?? new WatchOptions()).AppendQuery(q);
        var request = new KubeHttpRequest(HttpMethod.Get, Resource.Path(n) + q, Transport.Info("watch", Resource.QualifiedName, n, null));
        // A connection that dies silently would leave the watch waiting forever: give the whole stream the server's
        // own deadline plus a grace period, after which it counts as broken (and a Watcher restarts it).
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds((options?.TimeoutSeconds ?? 1800) + 60));
        using var response = await Transport.SendStreamingAsync(request, deadline.Token).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(deadline.Token).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var events = WatchStreamReader.ReadAsync(stream, Resource.TypeInfo, deadline.Token).GetAsyncEnumerator(deadline.Token);
            try
            {
                while (true)
                {
                    WatchEvent<T> ev;
                    try
                    {
                        if (!await events.MoveNextAsync().ConfigureAwait(false)) yield break;
                        ev = events.Current;
                    }
                    catch (HttpRequestException ex)
                    {
                        throw Transport.TransportError(ex, request);
                    }
                    catch (IOException ex) when (!cancellationToken.IsCancellationRequested)
                    {
                        throw new KubeConnectionException($"The watch of {Resource.QualifiedName} on {Transport.ServerName} broke: {ex.Message}", ex, Transport.ServerName);
                    }
                    catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                    {
                        throw Transport.TimeoutError(request, ex);
                    }
                    yield return ev;
                }
            }
            finally
            {
                await events.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// A list-then-watch loop (informer-like) that re-lists after 410 or an ERROR event and restarts when the
    /// stream ends. Events go to <paramref name="onEvent"/> when given (awaited, in order), else to
    /// <see cref="Watcher{T}.ReadAllAsync"/>. Call Start.
    /// </summary>
    public Watcher<T> CreateWatcher(string? ns = null, ListOptions? options = null, WatcherOptions? watcherOptions = null,
        Func<WatchEvent<T>, CancellationToken, ValueTask>? onEvent = null) =>
        new(this, Ns(ns, allowAll: true), options, watcherOptions ?? new WatcherOptions(), onEvent, _client.Logger);

    internal T Decode(byte[] body)
    {
        try
        {
            var obj = JsonSerializer.Deserialize(body, Resource.TypeInfo) ?? throw new JsonException("null");
            return obj;
        }
        catch (JsonException ex)
        {
            throw new KubeProtocolException("KubeUnexpectedResponse",
                $"The answer of {Transport.ServerName} is not a valid {Resource.Kind}: {ex.Message}", ex, Transport.ServerName);
        }
    }

    private KubeList<T> DecodeList(byte[] body)
    {
        try
        {
            return JsonSerializer.Deserialize(body, Resource.ListTypeInfo) ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            throw new KubeProtocolException("KubeUnexpectedResponse",
                $"The answer of {Transport.ServerName} is not a valid {Resource.Kind} list: {ex.Message}", ex, Transport.ServerName);
        }
    }

    internal byte[] Encode(T obj) => JsonSerializer.SerializeToUtf8Bytes(obj, Resource.TypeInfo);

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary>True when a body's top-level "kind" is "Status".</summary>
    internal static bool IsStatus(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("kind"u8))
                {
                    reader.Read();
                    return reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("Status"u8);
                }
                reader.Read();
                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }
        return false;
    }

    private static byte[] DeleteOptionsBody(DeleteOptions options)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("kind", "DeleteOptions");
            w.WriteString("apiVersion", "v1");
            if (options.GracePeriodSeconds is long g) w.WriteNumber("gracePeriodSeconds", g);
            if (options.PropagationPolicy != PropagationPolicy.Default) w.WriteString("propagationPolicy", options.PropagationPolicy.ToString());
            w.WriteStartObject("preconditions");
            if (options.PreconditionUid is not null) w.WriteString("uid", options.PreconditionUid);
            if (options.PreconditionResourceVersion is not null) w.WriteString("resourceVersion", options.PreconditionResourceVersion);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return ms.ToArray();
    }
}

/// <summary>A resource with a /scale subresource (Deployments, ReplicaSets): autoscaling/v1 Scale get, replace and patch.</summary>
public sealed class ScalableResourceClient<T> : ResourceClient<T> where T : KubeObject
{
    internal ScalableResourceClient(KubeClient client, ResourceDescriptor<T> resource) : base(client, resource)
    {
    }

    private string ScaleResource => Resource.QualifiedName + "/scale";

    public async Task<Scale> GetScaleAsync(string name, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var n = Ns(ns);
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Get, Resource.Path(n, name, "scale"),
            Transport.Info("get", ScaleResource, n, name)), cancellationToken).ConfigureAwait(false);
        return DecodeScale(body);
    }

    /// <summary>PUT the Scale; its metadata.resourceVersion is the precondition.</summary>
    public async Task<Scale> ReplaceScaleAsync(string name, Scale scale, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(scale);
        var n = Ns(ns);
        scale.ApiVersion ??= "autoscaling/v1";
        scale.Kind ??= "Scale";
        scale.Metadata.Name ??= name;
        if (Resource.Namespaced) scale.Metadata.Namespace ??= n;
        var body = await Transport.SendAsync(new KubeHttpRequest(HttpMethod.Put, Resource.Path(n, name, "scale"),
            Transport.Info("update", ScaleResource, n, name))
        {
            Body = JsonSerializer.SerializeToUtf8Bytes(scale, KubeJsonContext.Default.Scale),
        }, cancellationToken).ConfigureAwait(false);
        return DecodeScale(body);
    }

    public async Task<Scale> PatchScaleAsync(string name, KubePatch patch, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(patch);
        var n = Ns(ns);
        var body = await Transport.SendAsync(PatchRequest(Resource.Path(n, name, "scale"), patch, "patch", ScaleResource, n, name),
            cancellationToken).ConfigureAwait(false);
        return DecodeScale(body);
    }

    /// <summary>Sets spec.replicas with a merge patch on /scale (no read needed, no conflict possible).</summary>
    public Task<Scale> SetReplicasAsync(string name, int replicas, string? ns = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replicas);
        return PatchScaleAsync(name, KubePatch.Merge("{\"spec\":{\"replicas\":" + replicas.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}}"), ns, cancellationToken);
    }

    private Scale DecodeScale(byte[] body)
    {
        try
        {
            return JsonSerializer.Deserialize(body, KubeJsonContext.Default.Scale) ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            throw new KubeProtocolException("KubeUnexpectedResponse", $"The answer of {Transport.ServerName} is not a valid Scale: {ex.Message}", ex, Transport.ServerName);
        }
    }
}
