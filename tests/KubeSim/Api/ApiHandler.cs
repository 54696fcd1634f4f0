using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Streaming;
using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// The request pipeline of the simulated kube-apiserver: authentication, authorization, routing, and the REST
/// verbs over the <see cref="ObjectStore"/>. Watch, port-forward and exec are delegated to their own handlers.
/// </summary>
internal sealed class ApiHandler
{
    private const int MaxBodyBytes = 3 * 1024 * 1024;

    private readonly ObjectStore _store;
    private readonly KubeSimOptions _options;
    private readonly KubeSimHooks _hooks;
    private readonly WatchHandler _watch;
    private readonly PortForwardHandler _portForward;
    private readonly ExecHandler _exec;
    private readonly AttachHandler _attach;
    private readonly SpdyHandler _spdy;
    private readonly Func<string> _serverAddress;
    private readonly string _flowSchemaUid = Guid.NewGuid().ToString();
    private readonly string _priorityLevelUid = Guid.NewGuid().ToString();
    private readonly Func<System.Security.Cryptography.X509Certificates.X509Certificate2, bool> _verifyClientCertificate;

    public ApiHandler(ObjectStore store, KubeSimOptions options, KubeSimHooks hooks, IPodNetwork network, IPodExec exec, IPodAttach attach, Func<string> serverAddress,
        Func<System.Security.Cryptography.X509Certificates.X509Certificate2, bool> verifyClientCertificate)
    {
        _verifyClientCertificate = verifyClientCertificate;
        _store = store;
        _options = options;
        _hooks = hooks;
        _serverAddress = serverAddress;
        _watch = new WatchHandler(store, options);
        _portForward = new PortForwardHandler(network);
        _exec = new ExecHandler(exec, options.EnableExecV5);
        _attach = new AttachHandler(attach, options.EnableExecV5);
        _spdy = new SpdyHandler(exec, network, attach);
    }

    public async Task HandleAsync(HttpContext context)
    {
        var ct = context.RequestAborted;
        var request = context.Request;
        _hooks.Requests.Enqueue(new RecordedRequest(request.Method, request.Path + request.QueryString, request.ContentType,
            request.Headers.UserAgent.ToString(), _options.TimeProvider.GetUtcNow()));
        try
        {
            if (_hooks.BeforeRequest is { } before && await before(context).ConfigureAwait(false)) return;
            ct = context.RequestAborted; // the hook may have replaced it
            await DispatchAsync(context, ct).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (!context.Response.HasStarted)
        {
            await HttpBodies.WriteStatusAsync(context, e, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away.
        }
        catch (Exception e) when (!context.Response.HasStarted && e is not OperationCanceledException)
        {
            // A KubeSim bug: answer like the real server's panic handler rather than an empty 500.
            await HttpBodies.WriteJsonAsync(context, 500,
                Statuses.Failure(500, "InternalError", "Internal error occurred: " + e.GetType().Name + ": " + e.Message, null, omitDetails: true), ct)
                .ConfigureAwait(false);
        }
    }

    private async Task DispatchAsync(HttpContext context, CancellationToken ct)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        if (_options.PathPrefix.Length > 0)
        {
            // A server URL with a path (e.g. behind a proxy): everything lives under the prefix.
            if (!path.StartsWith(_options.PathPrefix + "/", StringComparison.Ordinal))
            {
                await HttpBodies.WriteTextAsync(context, 404, "404 page not found\n", ct).ConfigureAwait(false);
                return;
            }
            path = path[_options.PathPrefix.Length..];
        }
        var who = Authenticate(context);
        if (who is null)
        {
            // A token we do not know: 401 without details, before anything else (4e).
            await HttpBodies.WriteJsonAsync(context, 401, new KubeApiException(401, "Unauthorized", "Unauthorized", null, omitDetails: true).Status, ct)
                .ConfigureAwait(false);
            return;
        }
        var (user, groups) = who.Value;
        // Priority and fairness stamps every request it classifies; long-running ones (watch, exec, port-forward) are exempt.
        var longRunning = IsTrue(request.Query["watch"]) || path.EndsWith("/exec", StringComparison.Ordinal)
            || path.EndsWith("/portforward", StringComparison.Ordinal) || path.EndsWith("/attach", StringComparison.Ordinal);
        if (!longRunning)
        {
            context.Response.Headers["X-Kubernetes-Pf-Flowschema-Uid"] = _flowSchemaUid;
            context.Response.Headers["X-Kubernetes-Pf-Prioritylevel-Uid"] = _priorityLevelUid;
        }

        // Non-resource paths.
        switch (path)
        {
            case "/version" or "/version/":
                await HttpBodies.WriteAsync(context, 200, "application/json", Encoding.UTF8.GetBytes(Discovery.Version(_options.TimeProvider)), ct).ConfigureAwait(false);
                return;
            case "/healthz" or "/livez":
                await HttpBodies.WriteTextAsync(context, 200, "ok", ct).ConfigureAwait(false);
                return;
            case "/readyz":
                await HttpBodies.WriteTextAsync(context, 200, request.Query.ContainsKey("verbose") ? Discovery.Readyz : "ok", ct).ConfigureAwait(false);
                return;
            default:
                break;
        }
        if (path == "/openapi/v2" || path == "/openapi/v3" || path.StartsWith("/openapi/v3/", StringComparison.Ordinal))
        {
            Authorize(new RequestInfo(user, "get", "", "", null, null, null, path) { Groups = groups });
            JsonNode? doc;
            if (path == "/openapi/v2")
            {
                // client-go asks for protobuf only (and parses nothing else); any other Accept gets the JSON document.
                var accept = request.Headers.Accept.ToString();
                if (accept.Contains("protobuf", StringComparison.OrdinalIgnoreCase) && !accept.Contains("json", StringComparison.OrdinalIgnoreCase))
                {
                    // As the real handler: the gnostic media type is not a valid Content-Type for Go's mime parser.
                    await HttpBodies.WriteAsync(context, 200, "application/octet-stream", OpenApi.V2Protobuf(), ct).ConfigureAwait(false);
                    return;
                }
                doc = OpenApi.V2Document();
            }
            else
            {
                doc = path == "/openapi/v3" ? OpenApi.V3Discovery(_options.PathPrefix) : OpenApi.V3For(path["/openapi/v3/".Length..]);
            }
            if (doc is null)
            {
                await HttpBodies.WriteTextAsync(context, 404, "404 page not found\n", ct).ConfigureAwait(false);
                return;
            }
            await HttpBodies.WriteJsonAsync(context, 200, doc, ct).ConfigureAwait(false);
            return;
        }
        if (path is "/api" or "/api/" or "/apis" or "/apis/")
        {
            Authorize(new RequestInfo(user, "get", "", "", null, null, null, path) { Groups = groups });
            JsonNode doc = path.StartsWith("/apis", StringComparison.Ordinal) ? Discovery.ApiGroupList() : Discovery.ApiVersions(_serverAddress());
            await HttpBodies.WriteJsonAsync(context, 200, doc, ct).ConfigureAwait(false);
            return;
        }

        var api = ApiPath.Parse(path);
        switch (api.Kind)
        {
            case ApiPathKind.NotFoundText:
                await HttpBodies.WriteTextAsync(context, 404, "404 page not found\n", ct).ConfigureAwait(false);
                return;
            case ApiPathKind.GroupVersionDiscovery:
                Authorize(new RequestInfo(user, "get", "", "", null, null, null, path) { Groups = groups });
                await HttpBodies.WriteJsonAsync(context, 200, Discovery.ResourceList(api.Group, api.Version), ct).ConfigureAwait(false);
                return;
            case ApiPathKind.UnknownResource:
                throw KubeApiException.UnknownResource();
            default:
                break;
        }

        var type = api.Type!;
        var method = request.Method.ToUpperInvariant();
        var isWatch = api.Kind == ApiPathKind.Collection && IsTrue(request.Query["watch"]);
        var verb = (method, api.Kind) switch
        {
            ("GET", ApiPathKind.Collection) => isWatch ? "watch" : "list",
            ("GET", ApiPathKind.Object) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", ApiPathKind.Collection) => "deletecollection",
            ("DELETE", ApiPathKind.Object) => "delete",
            _ => "unknown",
        };
        if (verb == "unknown") throw KubeApiException.MethodNotAllowed();
        Authorize(new RequestInfo(user, verb, type.Group, type.Plural, api.Subresource, api.Namespace, api.Name, null) { Groups = groups });
        if (api.Subresource is not ("exec" or "portforward" or "attach" or "log")) CheckAccept(request.Headers.Accept.ToString());

        if (api.Kind == ApiPathKind.Collection)
        {
            if (!type.Supports(verb == "watch" ? "watch" : verb)) throw KubeApiException.MethodNotAllowed();
            switch (verb)
            {
                case "list":
                    await ListAsync(context, type, api.Namespace, ct).ConfigureAwait(false);
                    return;
                case "watch":
                    await _watch.HandleAsync(context, type, api.Namespace, ct).ConfigureAwait(false);
                    return;
                case "create":
                    await CreateAsync(context, type, api.Namespace, user, groups, ct).ConfigureAwait(false);
                    return;
                case "deletecollection":
                    await DeleteCollectionAsync(context, type, api.Namespace, ct).ConfigureAwait(false);
                    return;
                default:
                    throw KubeApiException.MethodNotAllowed();
            }
        }

        var name = api.Name!;
        switch (api.Subresource)
        {
            case null:
                break;
            case "status" when type.HasStatus:
                await StatusSubresourceAsync(context, type, api.Namespace, name, verb, ct).ConfigureAwait(false);
                return;
            case "scale" when type.HasScale:
                await ScaleAsync(context, type, api.Namespace, name, verb, ct).ConfigureAwait(false);
                return;
            case "portforward" when type == ResourceTypes.Pods && verb is "get" or "create":
                if (SpdyHandler.IsSpdyUpgrade(context))
                {
                    await _spdy.PortForwardAsync(context, PodOrThrow(api.Namespace, name), api.Namespace!, name, ct).ConfigureAwait(false);
                    return;
                }
                await _portForward.HandleAsync(context, PodOrThrow(api.Namespace, name), api.Namespace!, name, ct).ConfigureAwait(false);
                return;
            case "exec" when type == ResourceTypes.Pods && verb is "get" or "create":
                {
                    var pod = PodOrThrow(api.Namespace, name);
                    CheckContainer(pod, name, context.Request.Query["container"]);
                    if (SpdyHandler.IsSpdyUpgrade(context))
                    {
                        await _spdy.ExecAsync(context, pod, api.Namespace!, name, ct).ConfigureAwait(false);
                        return;
                    }
                    await _exec.HandleAsync(context, pod, api.Namespace!, name, ct).ConfigureAwait(false);
                    return;
                }
            case "attach" when type == ResourceTypes.Pods && verb is "get" or "create":
                {
                    // The apiserver's streamLocation: the pod, its container (defaulted when there is one), a node.
                    var pod = PodOrThrow(api.Namespace, name);
                    var container = CheckContainer(pod, name, context.Request.Query["container"]);
                    if (string.IsNullOrEmpty(pod["spec"]?["nodeName"]?.GetValue<string>()))
                        throw KubeApiException.BadRequest($"pod {name} does not have a host assigned");
                    if (SpdyHandler.IsSpdyUpgrade(context))
                    {
                        await _spdy.AttachAsync(context, pod, api.Namespace!, name, container, ct).ConfigureAwait(false);
                        return;
                    }
                    await _attach.HandleAsync(context, pod, api.Namespace!, name, container, ct).ConfigureAwait(false);
                    return;
                }
            case "log" when type == ResourceTypes.Pods && verb == "get":
                PodOrThrow(api.Namespace, name);
                _hooks.PodLogs.TryGetValue((api.Namespace!, name), out var log);
                await HttpBodies.WriteTextAsync(context, 200, log ?? "", ct, noSniff: false).ConfigureAwait(false);
                return;
            default:
                throw KubeApiException.UnknownResource();
        }

        switch (verb)
        {
            case "get":
                {
                    var obj = _store.Get(type, api.Namespace, name) ?? throw KubeApiException.NotFound(type, name);
                    if (Tables.RequestedVersion(request.Headers.Accept) is { } tableVersion)
                    {
                        obj = Tables.Build(type, [obj], new JsonObject { ["resourceVersion"] = obj["metadata"]?["resourceVersion"]?.DeepClone() }, tableVersion,
                            request.Query["includeObject"], _options.TimeProvider.GetUtcNow());
                    }
                    await HttpBodies.WriteJsonAsync(context, 200, obj, ct).ConfigureAwait(false);
                    return;
                }
            case "update":
                {
                    var body = await ReadObjectAsync(context, type, ct).ConfigureAwait(false);
                    var dryRun = IsDryRun(context);
                    var before = _store.Get(type, api.Namespace, name);
                    var existed = before is not null;
                    var updated = Write(dryRun, () => _store.Update(type, api.Namespace, name, body));
                    if (dryRun) updated = DryRunAnswer(updated, before);
                    await HttpBodies.WriteJsonAsync(context, existed ? 200 : 201, updated, ct).ConfigureAwait(false);
                    return;
                }
            case "patch":
                {
                    var (patchType, patch) = await ReadPatchAsync(context, ct).ConfigureAwait(false);
                    var dryRun = IsDryRun(context);
                    JsonObject result;
                    var before = _store.Get(type, api.Namespace, name);
                    if (patchType == PatchType.Apply && before is null)
                    {
                        if (patch is not JsonObject created) throw KubeApiException.BadRequest("apply patch must be an object");
                        result = Write(dryRun, () => _store.Create(type, api.Namespace, created));
                        if (dryRun) result = DryRunAnswer(result, null);
                        await HttpBodies.WriteJsonAsync(context, 201, result, ct).ConfigureAwait(false);
                        return;
                    }
                    result = Write(dryRun, () => _store.Mutate(type, api.Namespace, name, current => ApplyPatch(current, patchType, patch)));
                    if (dryRun) result = DryRunAnswer(result, before);
                    await HttpBodies.WriteJsonAsync(context, 200, result, ct).ConfigureAwait(false);
                    return;
                }
            case "delete":
                {
                    var options = await ReadDeleteOptionsAsync(context, ct).ConfigureAwait(false);
                    var dryRun = IsDryRun(context) || options.DryRun;
                    var before = _store.Get(type, api.Namespace, name);
                    var result = Write(dryRun, () => _store.Delete(type, api.Namespace, name, options));
                    if (dryRun) DryRunAnswer(result.Object, before);
                    JsonNode answer = type.Kind is "Pod" or "Namespace" || !result.Removed
                        ? result.Object
                        : Statuses.DeleteSuccess(type, name, result.Object["metadata"]?["uid"]?.GetValue<string>());
                    await HttpBodies.WriteJsonAsync(context, 200, answer, ct).ConfigureAwait(false);
                    return;
                }
            default:
                throw KubeApiException.MethodNotAllowed();
        }
    }

    // ------------------------------------------------------------------ auth

    internal const string AdminUser = "kubesim-admin";
    internal static readonly string[] AdminGroups = ["system:masters", "system:authenticated"];
    internal static readonly string[] UserGroups = ["system:authenticated"];

    /// <summary>
    /// Who sent the request, as the apiserver's authenticators decide: a client certificate signed by our CA (CN
    /// user, O groups), a bearer token, basic auth; "system:anonymous" without credentials; null for credentials we
    /// do not accept (401). Impersonation headers then switch the user when the caller may impersonate.
    /// </summary>
    private (string User, IReadOnlyList<string> Groups)? Authenticate(HttpContext context)
    {
        var request = context.Request;
        (string, IReadOnlyList<string>)? who = null;
        var auth = request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = auth[7..].Trim();
            if (!_hooks.Tokens.TryGetValue(token, out var known)) return null;
            who = known;
        }
        else if (auth.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(auth[6..].Trim()));
            }
            catch (FormatException)
            {
                return null;
            }
            var colon = decoded.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || !_options.BasicAuthUsers.TryGetValue(decoded[..colon], out var password) || password != decoded[(colon + 1)..]) return null;
            who = (decoded[..colon], AdminGroups);
        }
        else if (auth.Length > 0)
        {
            return null;
        }
        else if (context.Connection.ClientCertificate is { } cert)
        {
            if (!_verifyClientCertificate(cert)) return null;
            var cn = cert.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.SimpleName, false);
            var groups = cert.SubjectName.EnumerateRelativeDistinguishedNames()
                .Where(r => r.GetSingleElementType().Value == "2.5.4.10")
                .Select(r => r.GetSingleElementValue() ?? "")
                .Append("system:authenticated").ToList();
            who = (cn, groups);
        }
        if (who is null) return ("system:anonymous", ["system:unauthenticated"]);

        var impersonate = request.Headers["Impersonate-User"].ToString();
        if (impersonate.Length == 0) return who;
        var (caller, callerGroups) = who.Value;
        if (!IsAllowed(new RequestInfo(caller, "impersonate", "", "users", null, null, impersonate, null) { Groups = callerGroups }))
        {
            throw new KubeApiException(403, "Forbidden",
                $"users \"{impersonate}\" is forbidden: User \"{caller}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                new JsonObject { ["name"] = impersonate, ["kind"] = "users" });
        }
        IReadOnlyList<string> impersonatedGroups = [.. request.Headers["Impersonate-Group"].Select(g => g ?? ""), "system:authenticated"];
        return (impersonate, impersonatedGroups);
    }

    private bool IsAllowed(RequestInfo info) => _hooks.Authorize is { } hook ? hook(info) : info.IsAdmin;

    private void Authorize(RequestInfo info)
    {
        if (IsAllowed(info)) return;
        if (!info.IsResourceRequest)
        {
            throw new KubeApiException(403, "Forbidden", $"forbidden: User \"{info.User}\" cannot {info.Verb} path \"{info.Path}\"", []);
        }
        var scope = info.Namespace is null ? "at the cluster scope" : $"in the namespace \"{info.Namespace}\"";
        var qualified = info.Group.Length == 0 ? info.ResourceWithSubresource : info.Resource + "." + info.Group + (info.Subresource is null ? "" : "/" + info.Subresource);
        var subject = info.Name is null ? qualified : $"{qualified} \"{info.Name}\"";
        var details = new JsonObject();
        if (info.Name is not null) details["name"] = info.Name;
        if (info.Group.Length > 0) details["group"] = info.Group;
        details["kind"] = info.Resource;
        throw new KubeApiException(403, "Forbidden",
            $"{subject} is forbidden: User \"{info.User}\" cannot {info.Verb} resource \"{info.ResourceWithSubresource}\" in API group \"{info.Group}\" {scope}",
            details);
    }

    // ------------------------------------------------------------------ verbs

    private async Task ListAsync(HttpContext context, ResourceType type, string? ns, CancellationToken ct)
    {
        var q = context.Request.Query;
        var labels = LabelSelector.Parse(q["labelSelector"]);
        var fields = FieldSelector.Parse(q["fieldSelector"]);
        long limit = 0;
        if (q.TryGetValue("limit", out var l) && !long.TryParse(l, NumberStyles.Integer, CultureInfo.InvariantCulture, out limit))
        {
            throw KubeApiException.BadRequest($"limit: Invalid value: \"{l}\"");
        }
        var page = _store.List(type, ns, labels, fields, limit, q["continue"]);
        var meta = new JsonObject { ["resourceVersion"] = page.ResourceVersion.ToString(CultureInfo.InvariantCulture) };
        if (page.Continue is not null) meta["continue"] = page.Continue;
        if (page.RemainingItemCount is not null) meta["remainingItemCount"] = page.RemainingItemCount;
        if (Tables.RequestedVersion(context.Request.Headers.Accept) is { } tableVersion)
        {
            var table = Tables.Build(type, page.Items, meta, tableVersion, q["includeObject"], _options.TimeProvider.GetUtcNow());
            await HttpBodies.WriteJsonAsync(context, 200, table, ct).ConfigureAwait(false);
            return;
        }
        var items = new JsonArray();
        foreach (var item in page.Items)
        {
            item.Remove("kind");
            item.Remove("apiVersion");
            items.Add(item);
        }
        var list = new JsonObject
        {
            ["kind"] = type.Kind + "List",
            ["apiVersion"] = type.ApiVersion,
            ["metadata"] = meta,
            ["items"] = items,
        };
        await HttpBodies.WriteJsonAsync(context, 200, list, ct).ConfigureAwait(false);
    }

    private async Task CreateAsync(HttpContext context, ResourceType type, string? ns, string user, IReadOnlyList<string> groups, CancellationToken ct)
    {
        var body = await ReadObjectAsync(context, type, ct).ConfigureAwait(false);
        if (type == ResourceTypes.SelfSubjectAccessReviews)
        {
            await HttpBodies.WriteJsonAsync(context, 201, AccessReview(body, user, groups), ct).ConfigureAwait(false);
            return;
        }
        var bodyNs = body["metadata"]?["namespace"]?.GetValue<string>();
        if (type.Namespaced && !string.IsNullOrEmpty(bodyNs) && bodyNs != ns)
        {
            throw KubeApiException.BadRequest("the namespace of the provided object does not match the namespace sent on the request");
        }
        var dryRun = IsDryRun(context);
        var created = Write(dryRun, () => _store.Create(type, ns, body));
        if (dryRun) created = DryRunAnswer(created, null);
        await HttpBodies.WriteJsonAsync(context, 201, created, ct).ConfigureAwait(false);
    }

    private JsonObject AccessReview(JsonObject body, string user, IReadOnlyList<string> groups)
    {
        var spec = body["spec"] as JsonObject ?? [];
        var ra = spec["resourceAttributes"] as JsonObject;
        var nra = spec["nonResourceAttributes"] as JsonObject;
        var info = ra is not null
            ? new RequestInfo(user, Str(ra, "verb"), Str(ra, "group"), Str(ra, "resource"), NullIfEmpty(Str(ra, "subresource")),
                NullIfEmpty(Str(ra, "namespace")), NullIfEmpty(Str(ra, "name")), null) { Groups = groups }
            : new RequestInfo(user, Str(nra, "verb"), "", "", null, null, null, Str(nra, "path")) { Groups = groups };
        var allowed = IsAllowed(info);
        var status = new JsonObject { ["allowed"] = allowed };
        if (allowed && _hooks.Authorize is null) status["reason"] = "kubesim: the admin token may do everything";
        return new JsonObject
        {
            ["kind"] = "SelfSubjectAccessReview",
            ["apiVersion"] = "authorization.k8s.io/v1",
            ["metadata"] = new JsonObject { ["creationTimestamp"] = null },
            ["spec"] = spec.DeepClone(),
            ["status"] = status,
        };

        static string Str(JsonObject? o, string key) => o?[key]?.GetValue<string>() ?? "";
        static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;
    }

    private async Task DeleteCollectionAsync(HttpContext context, ResourceType type, string? ns, CancellationToken ct)
    {
        var q = context.Request.Query;
        var options = await ReadDeleteOptionsAsync(context, ct).ConfigureAwait(false);
        var dryRun = IsDryRun(context) || options.DryRun;
        var items = Write(dryRun, () => DeleteEach(type, ns, q, options));
        var list = new JsonObject
        {
            ["kind"] = type.Kind + "List",
            ["apiVersion"] = type.ApiVersion,
            ["metadata"] = new JsonObject { ["resourceVersion"] = _store.ResourceVersion.ToString(CultureInfo.InvariantCulture) },
            ["items"] = items,
        };
        await HttpBodies.WriteJsonAsync(context, 200, list, ct).ConfigureAwait(false);
    }

    private JsonArray DeleteEach(ResourceType type, string? ns, IQueryCollection q, DeleteOptions options)
    {
        var page = _store.List(type, ns, LabelSelector.Parse(q["labelSelector"]), FieldSelector.Parse(q["fieldSelector"]));
        var items = new JsonArray();
        foreach (var item in page.Items)
        {
            try
            {
                var r = _store.Delete(type, item["metadata"]?["namespace"]?.GetValue<string>(), item["metadata"]!["name"]!.GetValue<string>(), options);
                r.Object.Remove("kind");
                r.Object.Remove("apiVersion");
                items.Add(r.Object);
            }
            catch (KubeApiException e) when (e.Code == 404)
            {
                // Deleted concurrently (or by garbage collection of an earlier item).
            }
        }
        return items;
    }

    private async Task StatusSubresourceAsync(HttpContext context, ResourceType type, string? ns, string name, string verb, CancellationToken ct)
    {
        JsonObject result;
        switch (verb)
        {
            case "get":
                result = _store.Get(type, ns, name) ?? throw KubeApiException.NotFound(type, name);
                break;
            case "update":
                {
                    var body = await ReadObjectAsync(context, type, ct).ConfigureAwait(false);
                    var dryRun = IsDryRun(context);
                    var before = _store.Get(type, ns, name);
                    result = Write(dryRun, () => _store.Update(type, ns, name, body, subresource: "status"));
                    if (dryRun) DryRunAnswer(result, before);
                    break;
                }
            case "patch":
                {
                    var (patchType, patch) = await ReadPatchAsync(context, ct).ConfigureAwait(false);
                    var dryRun = IsDryRun(context);
                    var before = _store.Get(type, ns, name);
                    result = Write(dryRun, () => _store.Mutate(type, ns, name, current => ApplyPatch(current, patchType, patch), subresource: "status"));
                    if (dryRun) DryRunAnswer(result, before);
                    break;
                }
            default:
                throw KubeApiException.MethodNotAllowed();
        }
        await HttpBodies.WriteJsonAsync(context, 200, result, ct).ConfigureAwait(false);
    }

    private async Task ScaleAsync(HttpContext context, ResourceType type, string? ns, string name, string verb, CancellationToken ct)
    {
        JsonObject owner;
        switch (verb)
        {
            case "get":
                owner = _store.Get(type, ns, name) ?? throw KubeApiException.NotFound(type, name);
                break;
            case "update":
                {
                    var body = await ReadJsonAsync(context, "Scale", ct).ConfigureAwait(false) as JsonObject
                        ?? throw KubeApiException.BadRequest("the body of the request was in an unknown format");
                    var kind = body["kind"]?.GetValue<string>();
                    if (kind is not null && kind != "Scale")
                    {
                        throw KubeApiException.BadRequest($"{kind} in version \"{body["apiVersion"]}\" cannot be handled as a Scale");
                    }
                    var before = _store.Get(type, ns, name);
                    owner = Write(IsDryRun(context), () => _store.Mutate(type, ns, name, current => SetReplicas(type, name, current, body)));
                    if (IsDryRun(context)) DryRunAnswer(owner, before);
                    break;
                }
            case "patch":
                {
                    var (patchType, patch) = await ReadPatchAsync(context, ct).ConfigureAwait(false);
                    var before = _store.Get(type, ns, name);
                    owner = Write(IsDryRun(context), () => _store.Mutate(type, ns, name, current =>
                    {
                        var scale = ApplyPatch(ToScale(current), patchType, patch);
                        return SetReplicas(type, name, current, scale);
                    }));
                    if (IsDryRun(context)) DryRunAnswer(owner, before);
                    break;
                }
            default:
                throw KubeApiException.MethodNotAllowed();
        }
        await HttpBodies.WriteJsonAsync(context, 200, ToScale(owner), ct).ConfigureAwait(false);
    }

    private static JsonObject SetReplicas(ResourceType type, string name, JsonObject current, JsonObject scale)
    {
        var rv = scale["metadata"]?["resourceVersion"]?.GetValue<string>();
        if (!string.IsNullOrEmpty(rv) && rv != current["metadata"]?["resourceVersion"]?.GetValue<string>()) throw KubeApiException.Conflict(type, name);
        var replicas = scale["spec"]?["replicas"];
        if (replicas is JsonValue v && v.TryGetValue<long>(out var n) && n < 0)
        {
            throw KubeApiException.Invalid("Scale", name, [FieldError.InvalidValue("spec.replicas", n.ToString(CultureInfo.InvariantCulture), "must be greater than or equal to 0")]);
        }
        ObjectDefaults.Obj(current, "spec")["replicas"] = replicas?.DeepClone() ?? 0;
        return current;
    }

    /// <summary>The autoscaling/v1 Scale view of a Deployment or ReplicaSet (2k).</summary>
    private static JsonObject ToScale(JsonObject owner)
    {
        var meta = (JsonObject)owner["metadata"]!;
        var scaleMeta = new JsonObject();
        foreach (var key in new[] { "name", "namespace", "uid", "resourceVersion", "creationTimestamp" })
        {
            if (meta[key] is JsonNode v) scaleMeta[key] = v.DeepClone();
        }
        var spec = new JsonObject();
        if (owner["spec"]?["replicas"] is JsonNode r && r.GetValue<long>() != 0) spec["replicas"] = r.DeepClone();
        return new JsonObject
        {
            ["kind"] = "Scale",
            ["apiVersion"] = "autoscaling/v1",
            ["metadata"] = scaleMeta,
            ["spec"] = spec,
            ["status"] = new JsonObject
            {
                ["replicas"] = owner["status"]?["replicas"]?.GetValue<long>() ?? 0,
                ["selector"] = LabelSelector.Format(owner["spec"]?["selector"] as JsonObject),
            },
        };
    }

    /// <summary>
    /// The apiserver's container check for exec and attach: a named container must exist; with several, one must be named.
    /// Returns the container's name (the only one when none was named).
    /// </summary>
    private static string CheckContainer(JsonObject pod, string podName, string? container)
    {
        var names = (pod["spec"]?["containers"] as JsonArray ?? []).Select(c => c?["name"]?.GetValue<string>() ?? "").ToList();
        if (string.IsNullOrEmpty(container))
        {
            if (names.Count > 1)
            {
                throw KubeApiException.BadRequest($"a container name must be specified for pod {podName}, choose one of: [{string.Join(' ', names)}]");
            }
            return names.FirstOrDefault() ?? "";
        }
        if (!names.Contains(container)) throw KubeApiException.BadRequest($"container {container} is not valid for pod {podName}");
        return container;
    }

    private JsonObject PodOrThrow(string? ns, string name) =>
        _store.Get(ResourceTypes.Pods, ns, name) ?? throw KubeApiException.NotFound(ResourceTypes.Pods, name);

    // ------------------------------------------------------------------ bodies

    private enum PatchType { Merge, Json, Strategic, Apply }

    private async Task<(PatchType, JsonNode?)> ReadPatchAsync(HttpContext context, CancellationToken ct)
    {
        var contentType = (context.Request.ContentType ?? "").Split(';')[0].Trim().ToLowerInvariant();
        var type = contentType switch
        {
            "application/merge-patch+json" => PatchType.Merge,
            "application/json-patch+json" => PatchType.Json,
            "application/strategic-merge-patch+json" => PatchType.Strategic,
            "application/apply-patch+yaml" => PatchType.Apply,
            _ => throw KubeApiException.UnsupportedMediaType(),
        };
        if (type == PatchType.Apply && string.IsNullOrEmpty(context.Request.Query["fieldManager"]))
        {
            throw new KubeApiException(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                new JsonObject
                {
                    ["group"] = "meta.k8s.io",
                    ["kind"] = "PatchOptions",
                    ["causes"] = new JsonArray(new JsonObject { ["reason"] = "FieldValueRequired", ["message"] = "Required value: is required for apply patch", ["field"] = "fieldManager" }),
                });
        }
        var body = await ReadBodyAsync(context, ct).ConfigureAwait(false);
        JsonNode? patch;
        try
        {
            patch = KubeJson.Parse(body);
        }
        catch (JsonException e)
        {
            throw KubeApiException.BadRequest(type == PatchType.Apply
                ? "error decoding YAML: KubeSim accepts apply patches written as JSON only: " + e.Message
                : "error decoding patch: " + GoJsonError(body, e));
        }
        if (type == PatchType.Json && patch is not JsonArray)
        {
            throw KubeApiException.BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        }
        if (type != PatchType.Json && patch is not JsonObject)
        {
            throw KubeApiException.BadRequest("json: cannot unmarshal array into Go value of type map[string]interface {}");
        }
        return (type, patch);
    }

    private static JsonObject ApplyPatch(JsonObject current, PatchType type, JsonNode? patch)
    {
        var result = type switch
        {
            PatchType.Merge or PatchType.Apply => Patches.MergePatch(current, patch),
            PatchType.Json => Patches.JsonPatch(current, (JsonArray)patch!),
            PatchType.Strategic => Patches.StrategicMergePatch(current, patch),
            _ => throw KubeApiException.UnsupportedMediaType(),
        };
        return result as JsonObject ?? throw KubeApiException.InvalidGeneric();
    }

    private async Task<DeleteOptions> ReadDeleteOptionsAsync(HttpContext context, CancellationToken ct)
    {
        var q = context.Request.Query;
        var body = await ReadBodyAsync(context, ct).ConfigureAwait(false);
        JsonObject? o = null;
        if (body.Length > 0)
        {
            try
            {
                o = KubeJson.Parse(body) as JsonObject;
            }
            catch (JsonException e)
            {
                throw KubeApiException.BadRequest("the body of the request was in an unknown format: " + GoJsonError(body, e));
            }
        }
        var policyText = o?["propagationPolicy"]?.GetValue<string>() ?? q["propagationPolicy"].ToString();
        if (o?["orphanDependents"] is JsonValue od && od.GetValue<bool>()) policyText = "Orphan";
        var policy = policyText switch
        {
            "" or "Background" => PropagationPolicy.Background,
            "Foreground" => PropagationPolicy.Foreground,
            "Orphan" => PropagationPolicy.Orphan,
            _ => throw KubeApiException.BadRequest($"DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{policyText}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
        };
        long? grace = o?["gracePeriodSeconds"]?.GetValue<long>();
        if (grace is null && long.TryParse(q["gracePeriodSeconds"], NumberStyles.Integer, CultureInfo.InvariantCulture, out var g)) grace = g;
        return new DeleteOptions(policy, grace, o?["preconditions"]?["uid"]?.GetValue<string>(), o?["preconditions"]?["resourceVersion"]?.GetValue<string>())
        {
            // kubectl delete --dry-run=server sends it in the DeleteOptions body rather than the query.
            DryRun = o?["dryRun"] is JsonArray dry && dry.Any(d => d?.GetValue<string>() == "All"),
        };
    }

    /// <summary>Reads a create/update body: JSON object whose kind and apiVersion must be the resource's (4k, 4q).</summary>
    private async Task<JsonObject> ReadObjectAsync(HttpContext context, ResourceType type, CancellationToken ct)
    {
        JsonNode? node;
        if (ProtobufBodies.IsProtobuf(context.Request.ContentType))
        {
            // kubectl's typed clients (create namespace/configmap/secret, auth can-i) send protobuf and do not retry with JSON.
            node = ProtobufBodies.TryDecode(await ReadBodyAsync(context, ct).ConfigureAwait(false), type) ?? throw UnsupportedBody();
        }
        else
        {
            node = await ReadJsonAsync(context, type.Kind, ct).ConfigureAwait(false);
        }
        if (node is not JsonObject obj)
        {
            throw KubeApiException.BadRequest($"the object provided is unrecognized (must be of type {type.Kind}): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}");
        }
        var kind = obj["kind"]?.GetValue<string>();
        var apiVersion = obj["apiVersion"]?.GetValue<string>();
        // The decoder defaults a missing kind and apiVersion from the URL's resource (as the Python client and typed
        // clients rely on); only what is given must match.
        if (string.IsNullOrEmpty(kind))
        {
            kind = type.Kind;
            obj["kind"] = kind;
        }
        if (string.IsNullOrEmpty(apiVersion))
        {
            apiVersion = type.ApiVersion;
            obj["apiVersion"] = apiVersion;
        }
        if (kind != type.Kind || apiVersion != type.ApiVersion)
        {
            throw ObjectStore.KindMismatch(kind, apiVersion ?? "", type);
        }
        return obj;
    }

    private static async Task<JsonNode?> ReadJsonAsync(HttpContext context, string expectedKind, CancellationToken ct)
    {
        CheckBodyMediaType(context.Request.ContentType);
        var body = await ReadBodyAsync(context, ct).ConfigureAwait(false);
        try
        {
            return KubeJson.Parse(body);
        }
        catch (JsonException e)
        {
            var text = Encoding.UTF8.GetString(body);
            var snippet = text.Length > 30 ? text[..30] + " ..." : text;
            throw KubeApiException.BadRequest(
                $"the object provided is unrecognized (must be of type {expectedKind}): couldn't get version/kind; json parse error: {GoJsonError(body, e)} ({snippet})");
        }
    }

    /// <summary>
    /// The input negotiation of create and update: JSON (and YAML, which KubeSim reads only when written as JSON) is
    /// decoded; anything else, protobuf included (which a real server decodes but KubeSim does not), is 415 with
    /// apimachinery's errUnsupportedMediaType message, so client-go falls back to JSON.
    /// </summary>
    internal static void CheckBodyMediaType(string? contentType)
    {
        var media = (contentType ?? "").Split(';')[0].Trim().ToLowerInvariant();
        if (media is "" or "application/json" or "application/yaml" or "*/*") return;
        throw UnsupportedBody();
    }

    private static KubeApiException UnsupportedBody() => new(415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml", null, omitDetails: true);

    /// <summary>
    /// The output negotiation: KubeSim writes JSON only. An Accept that names only protobuf (no JSON, no wildcard)
    /// is 406 as a server without that serializer answers; any list with JSON or a wildcard gets JSON.
    /// </summary>
    internal static void CheckAccept(string? accept)
    {
        if (string.IsNullOrWhiteSpace(accept)) return;
        var types = accept.Split(',').Select(a => a.Split(';')[0].Trim().ToLowerInvariant()).Where(a => a.Length > 0).ToList();
        if (types.Count == 0 || !types.All(t => t.Contains("protobuf", StringComparison.Ordinal))) return;
        throw new KubeApiException(406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml", null, omitDetails: true);
    }

    /// <summary><c>?dryRun=All</c>: validate and answer, store nothing (any other value is refused as the server's option validation does).</summary>
    private static bool IsDryRun(HttpContext context)
    {
        var values = context.Request.Query["dryRun"];
        if (values.Count == 0) return false;
        foreach (var v in values)
        {
            if (v != "All")
            {
                throw KubeApiException.BadRequest($"dryRun: Unsupported value: \"{v}\": supported values: \"All\"");
            }
        }
        return true;
    }

    /// <summary>Runs a store write, inside <see cref="ObjectStore.DryRun"/> when the request asks for a dry run.</summary>
    private T Write<T>(bool dryRun, Func<T> write) => dryRun ? _store.DryRun(write) : write();

    /// <summary>
    /// A dry-run answer carries what the write would have stored, minus what only storage assigns: a created
    /// object has no resourceVersion yet, an updated one still the version it had.
    /// </summary>
    private static JsonObject DryRunAnswer(JsonObject result, JsonObject? before)
    {
        if (result["metadata"] is not JsonObject meta) return result;
        if (before?["metadata"]?["resourceVersion"] is JsonNode rv) meta["resourceVersion"] = rv.DeepClone();
        else meta.Remove("resourceVersion");
        return result;
    }

    /// <summary>Go's encoding/json wording for the two errors clients meet: truncated input and a stray character.</summary>
    private static string GoJsonError(byte[] body, JsonException e)
    {
        var reader = new Utf8JsonReader(body, isFinalBlock: false, state: default);
        try
        {
            while (reader.Read())
            {
            }
            return "unexpected end of JSON input";
        }
        catch (JsonException)
        {
            var at = (int)reader.BytesConsumed;
            while (at < body.Length && body[at] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') at++;
            return at < body.Length ? $"invalid character '{(char)body[at]}' looking for beginning of value" : e.Message;
        }
    }

    private static async Task<byte[]> ReadBodyAsync(HttpContext context, CancellationToken ct)
    {
        using var ms = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = await context.Request.Body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            ms.Write(buffer, 0, n);
            if (ms.Length > MaxBodyBytes) throw new KubeApiException(413, "RequestEntityTooLarge", "the request is too large", null, omitDetails: true);
        }
        return ms.ToArray();
    }

    internal static bool IsTrue(string? value) => value is "1" or "true" or "True";
}
