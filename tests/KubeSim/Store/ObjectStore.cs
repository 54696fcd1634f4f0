using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>How a DELETE treats the objects the deleted one owns.</summary>
public enum PropagationPolicy { Background, Foreground, Orphan }

/// <summary>The parts of metav1.DeleteOptions KubeSim honours.</summary>
public sealed record DeleteOptions(PropagationPolicy Propagation = PropagationPolicy.Background, long? GracePeriodSeconds = null,
    string? PreconditionUid = null, string? PreconditionResourceVersion = null)
{
    /// <summary><c>dryRun: ["All"]</c> in the body (the query's <c>dryRun=All</c> is read by the handler).</summary>
    public bool DryRun { get; init; }
}

/// <summary>What a DELETE did: the final state of the object, and whether it is still there (finalizers).</summary>
public sealed record DeleteResult(JsonObject Object, bool Removed);

/// <summary>One page of a list.</summary>
public sealed record ListResult(IReadOnlyList<JsonObject> Items, long ResourceVersion, string? Continue, long? RemainingItemCount);

/// <summary>
/// The simulated etcd plus registry: every object of every served resource as JSON, one global resourceVersion
/// counter, a bounded event history (so "too old resourceVersion" is real) and live watch subscriptions.
/// All mutations take one lock so events are totally ordered by resourceVersion. Objects handed out are copies.
/// </summary>
public sealed class ObjectStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<ResourceType, SortedDictionary<string, JsonObject>> _objects = [];
    private readonly LinkedList<WatchEvent> _history = new();
    private readonly List<WatchSubscription> _watchers = [];
    private readonly HashSet<string> _removedUids = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly int _historyCapacity;
    private long _rv;
    private long _compactedRv;
    private bool _dryRun;
    private readonly HashSet<string> _emptying = new(StringComparer.Ordinal);

    public ObjectStore(TimeProvider? time = null, int historyCapacity = 10_000, string serviceCidr = "10.96.0.0/16")
    {
        _time = time ?? TimeProvider.System;
        _historyCapacity = Math.Max(1, historyCapacity);
        ServiceIps = new ClusterIpAllocator(serviceCidr);
        foreach (var t in ResourceTypes.All) _objects[t] = new SortedDictionary<string, JsonObject>(StringComparer.Ordinal);
    }

    public ClusterIpAllocator ServiceIps { get; }

    /// <summary>The latest resourceVersion handed out.</summary>
    public long ResourceVersion
    {
        get
        {
            lock (_gate) return _rv;
        }
    }

    /// <summary>Oldest resourceVersion a watch may still start from (older ones get 410 Expired).</summary>
    public long OldestWatchableResourceVersion
    {
        get
        {
            lock (_gate) return _compactedRv;
        }
    }

    public string Timestamp() => FormatTime(_time.GetUtcNow());

    public static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    // ---------------------------------------------------------------- reads

    public JsonObject? Get(ResourceType type, string? ns, string name)
    {
        lock (_gate)
        {
            return _objects[type].TryGetValue(ResourceType.SortKey(Scope(type, ns), name), out var o) ? Clone(o) : null;
        }
    }

    public bool NamespaceExists(string ns)
    {
        lock (_gate) return _objects[ResourceTypes.Namespaces].ContainsKey(ns);
    }

    /// <summary>Lists objects in key order. <paramref name="continueToken"/> is a token from a previous page.</summary>
    public ListResult List(ResourceType type, string? ns, LabelSelector? labels = null, FieldSelector? fields = null, long limit = 0,
        string? continueToken = null)
    {
        labels ??= LabelSelector.Everything;
        fields ??= FieldSelector.Everything;
        lock (_gate)
        {
            var rv = _rv;
            string? start = null;
            if (!string.IsNullOrEmpty(continueToken)) (rv, start) = DecodeContinue(continueToken);
            ns = Scope(type, ns);
            var prefix = ns is null ? "" : ns + "/";
            var matches = new List<(string Key, JsonObject Obj)>();
            foreach (var (key, obj) in _objects[type])
            {
                if (!key.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var relative = key[prefix.Length..];
                if (start is not null && string.CompareOrdinal(relative, start) < 0) continue;
                if (!labels.Matches(obj) || !fields.Matches(obj)) continue;
                matches.Add((relative, obj));
            }
            if (limit <= 0 || matches.Count <= limit)
            {
                return new ListResult(matches.Select(m => Clone(m.Obj)).ToList(), rv, null, null);
            }
            var page = matches.Take((int)limit).ToList();
            var token = EncodeContinue(rv, page[^1].Key + "\u0000");
            long? remaining = labels.IsEmpty && fields.IsEmpty ? matches.Count - page.Count : null;
            return new ListResult(page.Select(m => Clone(m.Obj)).ToList(), rv, token, remaining);
        }
    }

    /// <summary>Every object of every type (a snapshot, for tests and diffing).</summary>
    public IReadOnlyList<(ResourceType Type, JsonObject Object)> Snapshot()
    {
        lock (_gate)
        {
            return _objects.SelectMany(p => p.Value.Values.Select(o => (p.Key, Clone(o)))).ToList();
        }
    }

    private static string EncodeContinue(long rv, string start)
    {
        var json = new JsonObject { ["v"] = "meta.k8s.io/v1", ["rv"] = rv, ["start"] = start }.ToJsonString(KubeJson.Options);
        return Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private static (long Rv, string Start) DecodeContinue(string token)
    {
        try
        {
            var b64 = token.Replace('-', '+').Replace('_', '/');
            b64 = b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
            var node = JsonNode.Parse(Convert.FromBase64String(b64)) as JsonObject;
            if (node?["v"]?.GetValue<string>() != "meta.k8s.io/v1") throw new FormatException("version");
            return (node["rv"]!.GetValue<long>(), node["start"]!.GetValue<string>());
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or NullReferenceException)
        {
            throw KubeApiException.BadRequest("continue key is not valid: " + e.Message);
        }
    }

    // ---------------------------------------------------------------- writes

    /// <summary>
    /// Runs a write as <c>?dryRun=All</c> does: every default, validation and admission step, the answer a real
    /// write would give, and then nothing is kept: objects, resourceVersion, allocated ClusterIPs and garbage
    /// collection are rolled back and no watch event is sent. Returns what <paramref name="write"/> returned.
    /// </summary>
    public T DryRun<T>(Func<T> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        lock (_gate)
        {
            if (_dryRun) return write();
            var rv = _rv;
            var objects = _objects.ToDictionary(p => p.Key, p => new SortedDictionary<string, JsonObject>(p.Value, StringComparer.Ordinal));
            var removed = _removedUids.ToArray();
            var ips = ServiceIps.SaveState();
            _dryRun = true;
            try
            {
                return write();
            }
            finally
            {
                _dryRun = false;
                _rv = rv;
                foreach (var (t, d) in objects) _objects[t] = d;
                _removedUids.Clear();
                _removedUids.UnionWith(removed);
                ServiceIps.Restore(ips);
            }
        }
    }

    /// <summary>
    /// Creates an object as POST does: namespace must exist, name or generateName, defaults, validation, uid,
    /// resourceVersion, creationTimestamp, generation. <paramref name="keepStatus"/> (for tests and controllers)
    /// stores the given status instead of resetting it as the REST create does.
    /// </summary>
    public JsonObject Create(ResourceType type, string? ns, JsonObject body, bool keepStatus = false)
    {
        var obj = Clone(body);
        obj["kind"] = type.Kind;
        obj["apiVersion"] = type.ApiVersion;
        var meta = ObjectDefaults.Obj(obj, "metadata");
        ns = Scope(type, ns ?? meta["namespace"]?.GetValue<string>());
        if (type.Namespaced && string.IsNullOrEmpty(ns)) ns = "default";
        lock (_gate)
        {
            if (ns is not null && !_objects[ResourceTypes.Namespaces].ContainsKey(ns)) throw KubeApiException.NamespaceNotFound(ns);
            if (ns is not null && _objects[ResourceTypes.Namespaces][ns]["metadata"]?["deletionTimestamp"] is not null)
            {
                throw new KubeApiException(403, "Forbidden",
                    $"{type.QualifiedName} \"{meta["name"]}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    KubeApiException.Details(type, meta["name"]?.GetValue<string>() ?? ""));
            }
            var name = meta["name"]?.GetValue<string>();
            if (string.IsNullOrEmpty(name) && meta["generateName"]?.GetValue<string>() is { Length: > 0 } gen)
            {
                do name = gen + RandomSuffix(); while (_objects[type].ContainsKey(ResourceType.SortKey(ns, name)));
                meta["name"] = name;
            }
            if (ns is not null) meta["namespace"] = ns;
            else meta.Remove("namespace");
            if (!keepStatus && type.HasStatus) obj.Remove("status");
            ObjectDefaults.Apply(type, obj);
            if (type.Kind == "Pod" && !keepStatus)
            {
                var status = ObjectDefaults.Obj(obj, "status");
                status["phase"] = "Pending";
                status["qosClass"] = ObjectDefaults.QosClass(obj);
            }
            var errors = ObjectValidation.Validate(type, obj);
            if (errors.Count > 0) throw KubeApiException.Invalid(type.Kind, name ?? "", errors);
            var key = ResourceType.SortKey(ns, name!);
            if (_objects[type].ContainsKey(key)) throw KubeApiException.AlreadyExists(type, name!);
            if (type.Kind == "Service") AllocateServiceIps(obj, null);

            meta.Remove("deletionTimestamp");
            meta.Remove("deletionGracePeriodSeconds");
            meta["uid"] = Guid.NewGuid().ToString();
            meta["creationTimestamp"] = Timestamp();
            if (type.TracksGeneration) meta["generation"] = 1;
            else meta.Remove("generation");
            meta["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
            var stored = Normalize(obj);
            _objects[type][key] = stored;
            Publish(new WatchEvent(WatchEvent.Added, _rv, type, ns, stored, null));
            CollectIfOwnersGoneLocked(type, ns, name!, stored);
            return Clone(stored);
        }
    }

    /// <summary>
    /// Replaces an object as PUT does (<paramref name="subresource"/> null) or its status ("status"):
    /// resourceVersion precondition when the body carries one, immutable metadata kept, status kept on a main
    /// update of a resource with a status subresource, generation bumped on spec change, no-op updates not stored.
    /// </summary>
    public JsonObject Update(ResourceType type, string? ns, string name, JsonObject body, string? subresource = null, bool keepStatus = false)
    {
        lock (_gate)
        {
            ns = Scope(type, ns);
            if (!_objects[type].TryGetValue(ResourceType.SortKey(ns, name), out var current))
            {
                if (type.AllowCreateOnUpdate && subresource is null) return Create(type, ns, body, keepStatus);
                throw KubeApiException.NotFound(type, name);
            }
            return UpdateLocked(type, ns, name, current, Clone(body), subresource, keepStatus);
        }
    }

    /// <summary>
    /// Read-modify-write under the store lock, as PATCH does: <paramref name="mutate"/> gets a copy of the current
    /// object and returns the new one; the result goes through the same checks as <see cref="Update"/>.
    /// </summary>
    public JsonObject Mutate(ResourceType type, string? ns, string name, Func<JsonObject, JsonObject> mutate, string? subresource = null,
        bool keepStatus = false)
    {
        lock (_gate)
        {
            ns = Scope(type, ns);
            if (!_objects[type].TryGetValue(ResourceType.SortKey(ns, name), out var current)) throw KubeApiException.NotFound(type, name);
            var updated = mutate(Clone(current));
            return UpdateLocked(type, ns, name, current, updated, subresource, keepStatus);
        }
    }

    private JsonObject UpdateLocked(ResourceType type, string? ns, string name, JsonObject current, JsonObject obj, string? subresource, bool keepStatus)
    {
        var meta = ObjectDefaults.Obj(obj, "metadata");
        var curMeta = (JsonObject)current["metadata"]!;
        var bodyName = meta["name"]?.GetValue<string>();
        if (!string.IsNullOrEmpty(bodyName) && bodyName != name)
        {
            throw KubeApiException.BadRequest($"the name of the object ({bodyName}) does not match the name on the URL ({name})");
        }
        var bodyNs = meta["namespace"]?.GetValue<string>();
        if (type.Namespaced && !string.IsNullOrEmpty(bodyNs) && bodyNs != ns)
        {
            throw KubeApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        }
        var kind = obj["kind"]?.GetValue<string>();
        if (kind is not null && kind != type.Kind) throw KindMismatch(kind, obj["apiVersion"]?.GetValue<string>() ?? "", type);
        var rv = meta["resourceVersion"]?.GetValue<string>();
        if (!string.IsNullOrEmpty(rv) && rv != curMeta["resourceVersion"]?.GetValue<string>()) throw KubeApiException.Conflict(type, name);

        JsonObject next;
        if (subresource == "status")
        {
            next = Clone(current);
            if (obj["status"] is JsonNode st) next["status"] = st.DeepClone();
            else next.Remove("status");
        }
        else
        {
            next = obj;
            next["kind"] = type.Kind;
            next["apiVersion"] = type.ApiVersion;
            if (type.HasStatus && !keepStatus)
            {
                if (current["status"] is JsonNode cs) next["status"] = cs.DeepClone();
                else next.Remove("status");
            }
            var nm = (JsonObject)next["metadata"]!;
            nm["name"] = name;
            if (ns is not null) nm["namespace"] = ns;
            foreach (var k in new[] { "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "generateName" })
            {
                if (curMeta[k] is JsonNode v) nm[k] = v.DeepClone();
                else if (k != "generateName") nm.Remove(k);
            }
            ObjectDefaults.Apply(type, next);
            var errors = ObjectValidation.Validate(type, next);
            if (errors.Count > 0) throw KubeApiException.Invalid(type.Kind, name, errors);
            if (type.Kind == "Service") AllocateServiceIps(next, current);
            if (type.TracksGeneration && !JsonNode.DeepEquals(current["spec"], next["spec"]))
            {
                nm["generation"] = (curMeta["generation"]?.GetValue<long>() ?? 0) + 1;
            }
        }
        var nextMeta = (JsonObject)next["metadata"]!;
        nextMeta["resourceVersion"] = curMeta["resourceVersion"]!.DeepClone();
        next = Normalize(next);
        if (JsonNode.DeepEquals(next, current)) return Clone(current);

        nextMeta = (JsonObject)next["metadata"]!;
        nextMeta["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
        var key = ResourceType.SortKey(ns, name);
        if (nextMeta["deletionTimestamp"] is not null && (nextMeta["finalizers"] as JsonArray ?? []).Count == 0)
        {
            // The last finalizer went away on an object being deleted: now it really goes.
            _objects[type][key] = next;
            Publish(new WatchEvent(WatchEvent.Modified, _rv, type, ns, next, current));
            // A namespace still goes only once its contents are gone.
            if (type.Kind == "Namespace") FinalizeNamespaceIfEmptyLocked(name);
            else RemoveLocked(type, ns, name, PropagationPolicy.Background);
            return Clone(next);
        }
        _objects[type][key] = next;
        Publish(new WatchEvent(WatchEvent.Modified, _rv, type, ns, next, current));
        CollectIfOwnersGoneLocked(type, ns, name, next);
        return Clone(next);
    }

    /// <summary>
    /// The garbage collector collects a dependent all of whose owners were deleted (for example a slice a controller
    /// pass made, or pointed at, a Service deleted meanwhile): the API server accepts the write, the collector takes
    /// the object. Owners KubeSim never held (objects seeded from recordings) are left alone. Caller holds the lock.
    /// </summary>
    private void CollectIfOwnersGoneLocked(ResourceType type, string? ns, string name, JsonObject stored)
    {
        if (stored["metadata"]?["ownerReferences"] is JsonArray { Count: > 0 } owners
            && owners.All(r => r?["uid"]?.GetValue<string>() is { } u && _removedUids.Contains(u)))
        {
            RemoveLocked(type, ns, name, PropagationPolicy.Background);
        }
    }

    /// <summary>
    /// Deletes as DELETE does. Pods on a node and namespaces are deleted gracefully (deletionTimestamp set first,
    /// then removed at once: KubeSim has no kubelet delay); objects with finalizers stay until those are cleared.
    /// Dependents (ownerReferences) are deleted or orphaned per <see cref="DeleteOptions.Propagation"/>.
    /// </summary>
    public DeleteResult Delete(ResourceType type, string? ns, string name, DeleteOptions? options = null)
    {
        options ??= new DeleteOptions();
        lock (_gate)
        {
            ns = Scope(type, ns);
            var key = ResourceType.SortKey(ns, name);
            if (!_objects[type].TryGetValue(key, out var current)) throw KubeApiException.NotFound(type, name);
            var meta = (JsonObject)current["metadata"]!;
            if (options.PreconditionUid is not null && options.PreconditionUid != meta["uid"]?.GetValue<string>())
            {
                throw KubeApiException.Conflict(type, name,
                    $"Precondition failed: UID in precondition: {options.PreconditionUid}, UID in object meta: {meta["uid"]}");
            }
            if (options.PreconditionResourceVersion is not null && options.PreconditionResourceVersion != meta["resourceVersion"]?.GetValue<string>())
            {
                throw KubeApiException.Conflict(type, name,
                    $"Precondition failed: ResourceVersion in precondition: {options.PreconditionResourceVersion}, ResourceVersion in object meta: {meta["resourceVersion"]}");
            }
            var finalizers = meta["finalizers"] as JsonArray;
            var graceful = type.Kind == "Namespace"
                || (type.Kind == "Pod" && current["spec"]?["nodeName"] is not null && (options.GracePeriodSeconds ?? 1) > 0)
                || finalizers is { Count: > 0 };
            if (!graceful)
            {
                return new DeleteResult(RemoveLocked(type, ns, name, options.Propagation), true);
            }
            if (meta["deletionTimestamp"] is null)
            {
                var marked = Clone(current);
                var mm = (JsonObject)marked["metadata"]!;
                long grace = 0;
                if (type.Kind == "Pod")
                {
                    grace = options.GracePeriodSeconds ?? current["spec"]?["terminationGracePeriodSeconds"]?.GetValue<long>() ?? 30;
                    mm["deletionTimestamp"] = FormatTime(_time.GetUtcNow().AddSeconds(grace));
                    mm["deletionGracePeriodSeconds"] = grace;
                }
                else
                {
                    mm["deletionTimestamp"] = Timestamp();
                    if (finalizers is { Count: > 0 }) mm["deletionGracePeriodSeconds"] = 0;
                }
                if (type.Kind == "Namespace") ObjectDefaults.Obj(marked, "status")["phase"] = "Terminating";
                mm["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
                marked = Normalize(marked);
                _objects[type][key] = marked;
                Publish(new WatchEvent(WatchEvent.Modified, _rv, type, ns, marked, current));
                current = marked;
            }
            if (type.Kind == "Namespace")
            {
                // The namespace controller: delete the contents; what finalizers hold keeps the namespace Terminating
                // (with its "kubernetes" finalizer in spec.finalizers) until the last of it is gone.
                if (TerminateContentsLocked(name) > 0 || finalizers is { Count: > 0 }) return new DeleteResult(Clone(current), false);
                FinalizeNamespaceLocked(name);
                return new DeleteResult(Clone(current), true);
            }
            if (finalizers is { Count: > 0 }) return new DeleteResult(Clone(current), false);
            RemoveLocked(type, ns, name, options.Propagation);
            return new DeleteResult(Clone(current), true);
        }
    }

    /// <summary>
    /// Deletes every object in namespace <paramref name="ns"/>: objects with finalizers are marked
    /// (deletionTimestamp) and stay, the rest are removed. Returns how many objects remain. Caller holds the lock.
    /// </summary>
    private int TerminateContentsLocked(string ns)
    {
        _emptying.Add(ns);
        try
        {
            var prefix = ns + "/";
            foreach (var t in ResourceTypes.All.Where(t => t.Namespaced))
            {
                foreach (var k in _objects[t].Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList())
                {
                    if (!_objects[t].TryGetValue(k, out var obj)) continue;
                    var objName = k[prefix.Length..];
                    if (obj["metadata"]?["finalizers"] is JsonArray { Count: > 0 })
                    {
                        if (obj["metadata"]?["deletionTimestamp"] is not null) continue;
                        var marked = Clone(obj);
                        var mm = (JsonObject)marked["metadata"]!;
                        mm["deletionTimestamp"] = Timestamp();
                        mm["deletionGracePeriodSeconds"] = 0;
                        mm["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
                        marked = Normalize(marked);
                        _objects[t][k] = marked;
                        Publish(new WatchEvent(WatchEvent.Modified, _rv, t, ns, marked, obj));
                    }
                    else
                    {
                        RemoveLocked(t, ns, objName, PropagationPolicy.Background);
                    }
                }
            }
            return ResourceTypes.All.Where(t => t.Namespaced).Sum(t => _objects[t].Keys.Count(k => k.StartsWith(prefix, StringComparison.Ordinal)));
        }
        finally
        {
            _emptying.Remove(ns);
        }
    }

    /// <summary>
    /// The namespace controller's last step once a Terminating namespace is empty: the "kubernetes" finalizer is
    /// cleared from spec.finalizers (the /finalize update, a MODIFIED event) and the namespace goes. Caller holds the lock.
    /// </summary>
    private void FinalizeNamespaceLocked(string ns)
    {
        if (!_objects[ResourceTypes.Namespaces].TryGetValue(ns, out var current)) return;
        if (current["spec"]?["finalizers"] is JsonArray { Count: > 0 })
        {
            var next = Clone(current);
            ((JsonObject)next["spec"]!).Remove("finalizers");
            ((JsonObject)next["metadata"]!)["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
            next = Normalize(next);
            _objects[ResourceTypes.Namespaces][ns] = next;
            Publish(new WatchEvent(WatchEvent.Modified, _rv, ResourceTypes.Namespaces, null, next, current));
        }
        RemoveLocked(ResourceTypes.Namespaces, null, ns, PropagationPolicy.Background);
    }

    /// <summary>After an object left namespace <paramref name="ns"/>: a Terminating namespace that is now empty goes too.</summary>
    private void FinalizeNamespaceIfEmptyLocked(string ns)
    {
        if (_emptying.Contains(ns)) return;
        if (!_objects[ResourceTypes.Namespaces].TryGetValue(ns, out var nsObj)) return;
        var meta = nsObj["metadata"];
        if (meta?["deletionTimestamp"] is null || meta["finalizers"] is JsonArray { Count: > 0 }) return;
        var prefix = ns + "/";
        if (ResourceTypes.All.Any(t => t.Namespaced && _objects[t].Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal)))) return;
        FinalizeNamespaceLocked(ns);
    }

    /// <summary>Removes an object for good and garbage-collects its dependents. Caller holds the lock.</summary>
    private JsonObject RemoveLocked(ResourceType type, string? ns, string name, PropagationPolicy propagation)
    {
        var key = ResourceType.SortKey(ns, name);
        var current = _objects[type][key];
        var uid = current["metadata"]?["uid"]?.GetValue<string>();
        if (propagation == PropagationPolicy.Foreground) CollectDependents(uid, propagation);
        _objects[type].Remove(key);
        if (uid is not null) _removedUids.Add(uid);
        var gone = Clone(current);
        ((JsonObject)gone["metadata"]!)["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
        if (type.Kind == "Service") ReleaseServiceIps(gone);
        Publish(new WatchEvent(WatchEvent.Deleted, _rv, type, ns, gone, current));
        if (propagation != PropagationPolicy.Foreground) CollectDependents(uid, propagation);
        if (type.Namespaced && ns is not null) FinalizeNamespaceIfEmptyLocked(ns);
        return Clone(gone);
    }

    private void CollectDependents(string? ownerUid, PropagationPolicy propagation)
    {
        if (ownerUid is null) return;
        foreach (var t in ResourceTypes.All)
        {
            foreach (var (key, obj) in _objects[t].ToList())
            {
                if (obj["metadata"]?["ownerReferences"] is not JsonArray refs) continue;
                if (!refs.Any(r => r?["uid"]?.GetValue<string>() == ownerUid)) continue;
                if (!_objects[t].ContainsKey(key)) continue;
                var ns = obj["metadata"]?["namespace"]?.GetValue<string>();
                var name = obj["metadata"]!["name"]!.GetValue<string>();
                if (propagation == PropagationPolicy.Orphan)
                {
                    var next = Clone(obj);
                    var nrefs = (JsonArray)next["metadata"]!["ownerReferences"]!;
                    foreach (var r in nrefs.Where(r => r?["uid"]?.GetValue<string>() == ownerUid).ToList()) nrefs.Remove(r);
                    if (nrefs.Count == 0) ((JsonObject)next["metadata"]!).Remove("ownerReferences");
                    ((JsonObject)next["metadata"]!)["resourceVersion"] = (++_rv).ToString(CultureInfo.InvariantCulture);
                    _objects[t][key] = next;
                    Publish(new WatchEvent(WatchEvent.Modified, _rv, t, ns, next, obj));
                }
                else
                {
                    RemoveLocked(t, ns, name, propagation);
                }
            }
        }
    }

    // ---------------------------------------------------------------- watch

    /// <summary>
    /// Starts a watch. <paramref name="resourceVersion"/> null, "" or "0": synthetic ADDED events for the current
    /// objects first; otherwise every event after that version from the history, or a 410 Expired
    /// <see cref="KubeApiException"/> when the history no longer reaches back that far.
    /// </summary>
    public WatchSubscription Watch(ResourceType type, string? ns, string? resourceVersion, LabelSelector? labels = null,
        FieldSelector? fields = null, bool allowBookmarks = false)
    {
        var sub = new WatchSubscription(this, type, Scope(type, ns), labels ?? LabelSelector.Everything, fields ?? FieldSelector.Everything, allowBookmarks);
        lock (_gate)
        {
            if (string.IsNullOrEmpty(resourceVersion) || resourceVersion == "0")
            {
                var prefix = sub.Namespace is null ? "" : sub.Namespace + "/";
                foreach (var (key, obj) in _objects[type])
                {
                    if (!key.StartsWith(prefix, StringComparison.Ordinal) || !sub.Matches(obj)) continue;
                    sub.Write(new WatchEvent(WatchEvent.Added, long.Parse(obj["metadata"]!["resourceVersion"]!.GetValue<string>(), CultureInfo.InvariantCulture),
                        type, obj["metadata"]?["namespace"]?.GetValue<string>(), obj, null));
                }
            }
            else
            {
                if (!long.TryParse(resourceVersion, NumberStyles.None, CultureInfo.InvariantCulture, out var from))
                {
                    throw KubeApiException.BadRequest($"resourceVersion: Invalid value: \"{resourceVersion}\": strconv.ParseUint: parsing \"{resourceVersion}\": invalid syntax");
                }
                if (from < _compactedRv)
                {
                    throw new KubeApiException(410, "Expired", $"too old resource version: {from} ({_compactedRv + 1})", null, omitDetails: true);
                }
                foreach (var e in _history)
                {
                    if (e.ResourceVersion > from) sub.Offer(e);
                }
            }
            _watchers.Add(sub);
        }
        return sub;
    }

    internal void Unsubscribe(WatchSubscription sub)
    {
        lock (_gate) _watchers.Remove(sub);
    }

    internal void EnqueueBookmark(WatchSubscription sub)
    {
        lock (_gate)
        {
            sub.Write(new WatchEvent(WatchEvent.Bookmark, _rv, sub.Type, null, BookmarkObject(sub.Type, _rv), null));
        }
    }

    /// <summary>Test hook: every watch that asked for bookmarks gets one now.</summary>
    public void SendBookmarks()
    {
        lock (_gate)
        {
            foreach (var w in _watchers.Where(w => w.AllowBookmarks)) w.Write(new WatchEvent(WatchEvent.Bookmark, _rv, w.Type, null, BookmarkObject(w.Type, _rv), null));
        }
    }

    /// <summary>Test hook: forgets the event history, so watches from any earlier resourceVersion get 410 Expired.</summary>
    public void Compact()
    {
        lock (_gate)
        {
            _history.Clear();
            _compactedRv = _rv;
        }
    }

    private void Publish(WatchEvent e)
    {
        if (_dryRun) return;
        _history.AddLast(e);
        while (_history.Count > _historyCapacity)
        {
            _compactedRv = _history.First!.Value.ResourceVersion;
            _history.RemoveFirst();
        }
        foreach (var w in _watchers) w.Offer(e);
    }

    /// <summary>The empty typed object Go serializes into a BOOKMARK event, with only the resourceVersion set.</summary>
    private static JsonObject BookmarkObject(ResourceType type, long rv)
    {
        var o = new JsonObject
        {
            ["kind"] = type.Kind,
            ["apiVersion"] = type.ApiVersion,
            ["metadata"] = new JsonObject { ["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture), ["creationTimestamp"] = null },
        };
        switch (type.Kind)
        {
            case "Pod":
                o["spec"] = new JsonObject { ["containers"] = null };
                o["status"] = new JsonObject();
                break;
            case "Service":
            case "Ingress":
                o["spec"] = new JsonObject();
                o["status"] = new JsonObject { ["loadBalancer"] = new JsonObject() };
                break;
            case "Deployment":
            case "ReplicaSet":
                o["spec"] = new JsonObject
                {
                    ["selector"] = null,
                    ["template"] = new JsonObject
                    {
                        ["metadata"] = new JsonObject { ["creationTimestamp"] = null },
                        ["spec"] = new JsonObject { ["containers"] = null },
                    },
                };
                if (type.Kind == "Deployment") ((JsonObject)o["spec"]!)["strategy"] = new JsonObject();
                o["status"] = new JsonObject();
                break;
            case "Namespace":
            case "Node":
                o["spec"] = new JsonObject();
                o["status"] = new JsonObject();
                break;
            case "Lease":
                o["spec"] = new JsonObject();
                break;
            case "EndpointSlice":
                o["addressType"] = "";
                o["endpoints"] = null;
                o["ports"] = null;
                break;
            case "Event":
                o["involvedObject"] = new JsonObject();
                o["reportingComponent"] = "";
                o["reportingInstance"] = "";
                o["source"] = new JsonObject();
                o["firstTimestamp"] = null;
                o["lastTimestamp"] = null;
                o["eventTime"] = null;
                break;
            default:
                break;
        }
        return o;
    }

    // ---------------------------------------------------------------- helpers

    private void AllocateServiceIps(JsonObject svc, JsonObject? current)
    {
        var spec = ObjectDefaults.Obj(svc, "spec");
        var name = svc["metadata"]?["name"]?.GetValue<string>() ?? "";
        var type = spec["type"]?.GetValue<string>();
        var currentIp = current?["spec"]?["clusterIP"]?.GetValue<string>();
        var requested = spec["clusterIP"]?.GetValue<string>();
        if (string.IsNullOrEmpty(requested) && spec["clusterIPs"] is JsonArray { Count: > 0 } ips) requested = ips[0]?.GetValue<string>();
        if (type == "ExternalName")
        {
            return;
        }
        if (current is not null)
        {
            if (string.IsNullOrEmpty(requested) || requested == currentIp)
            {
                if (currentIp is not null) spec["clusterIP"] = currentIp;
                if (current["spec"]?["clusterIPs"] is JsonNode cips) spec["clusterIPs"] = cips.DeepClone();
                return;
            }
            throw KubeApiException.Invalid("Service", name,
                [FieldError.InvalidValue("spec.clusterIPs[0]", $"[]string{{{ObjectValidation.GoString(requested)}}}", "may not change once set"),]);
        }
        if (requested == "None")
        {
            spec["clusterIP"] = "None";
            spec["clusterIPs"] = new JsonArray("None");
            return;
        }
        string ip;
        if (string.IsNullOrEmpty(requested))
        {
            ip = ServiceIps.Allocate();
        }
        else
        {
            string? error = !ServiceIps.Contains(requested)
                ? $"provided IP is not in the valid range. The range of valid IPs is {ServiceIps.Cidr}"
                : ServiceIps.IsUsed(requested) ? "provided IP is already allocated" : null;
            if (error is not null)
            {
                throw KubeApiException.Invalid("Service", name,
                    [FieldError.InvalidValue("spec.clusterIPs", $"[]string{{{ObjectValidation.GoString(requested)}}}",
                        $"failed to allocated ip:{requested} with error:{error}")]);
            }
            ServiceIps.TryReserve(requested);
            ip = requested;
        }
        spec["clusterIP"] = ip;
        spec["clusterIPs"] = new JsonArray(ip);
    }

    private void ReleaseServiceIps(JsonObject svc)
    {
        var ip = svc["spec"]?["clusterIP"]?.GetValue<string>();
        if (ip is not null && ip != "None") ServiceIps.Release(ip);
    }

    internal static KubeApiException KindMismatch(string kind, string apiVersion, ResourceType type) =>
        KubeApiException.BadRequest($"{kind} in version \"{VersionOf(apiVersion)}\" cannot be handled as a {type.Kind}: converting ({VersionOf(apiVersion)}.{kind}) to ({type.InternalGroup}.{type.Kind}): unknown conversion");

    private static string VersionOf(string apiVersion) => apiVersion.Contains('/', StringComparison.Ordinal) ? apiVersion[(apiVersion.IndexOf('/', StringComparison.Ordinal) + 1)..] : apiVersion;

    private static string? Scope(ResourceType type, string? ns) => type.Namespaced ? ns : null;

    private static string RandomSuffix()
    {
        const string alphabet = "bcdfghjklmnpqrstvwxz2456789";
        Span<char> s = stackalloc char[5];
        for (var i = 0; i < s.Length; i++) s[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        return new string(s);
    }

    private static JsonObject Clone(JsonObject o) => (JsonObject)o.DeepClone();

    /// <summary>
    /// Parsed JsonObject/JsonArray nodes build their children lazily on first access, which is not safe from two
    /// threads. Stored objects and watch events are read concurrently (watch streams, lists), so build them fully now.
    /// </summary>
    private static void Materialize(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (_, v) in o) Materialize(v);
                break;
            case JsonArray a:
                foreach (var v in a) Materialize(v);
                break;
            default:
                break;
        }
    }

    private static readonly string[] MetadataOrder =
    [
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers", "clusterName", "managedFields",
    ];

    /// <summary>Puts kind, apiVersion, metadata first and metadata's fields in Go's struct order.</summary>
    internal static JsonObject Normalize(JsonObject obj)
    {
        var result = new JsonObject();
        // Re-decode so every value is JSON-backed (GetValue<long> works on numbers however they were created).
        obj = (JsonObject)KubeJson.Parse(KubeJson.ToBytesWithNewline(obj))!;
        if (obj["kind"] is JsonNode k) result["kind"] = k.DeepClone();
        if (obj["apiVersion"] is JsonNode a) result["apiVersion"] = a.DeepClone();
        if (obj["metadata"] is JsonObject meta)
        {
            var m = new JsonObject();
            foreach (var key in MetadataOrder)
            {
                // ObjectMeta's maps and slices are omitempty: a real server never stores "annotations": {} (or labels,
                // ownerReferences, finalizers), so an object whose last annotation was removed reads as before it had one.
                if (meta.TryGetPropertyValue(key, out var v) && v is not (JsonObject { Count: 0 } or JsonArray { Count: 0 })) m[key] = v?.DeepClone();
            }
            foreach (var (key, v) in meta)
            {
                if (!m.ContainsKey(key) && !MetadataOrder.Contains(key)) m[key] = v?.DeepClone();
            }
            result["metadata"] = m;
        }
        foreach (var (key, v) in obj)
        {
            if (key is "kind" or "apiVersion" or "metadata") continue;
            result[key] = v?.DeepClone();
        }
        Materialize(result);
        return result;
    }
}
