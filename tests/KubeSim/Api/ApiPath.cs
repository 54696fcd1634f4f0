using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// A parsed resource path: /api/v1/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]] or the /apis/{group}/{version}
/// equivalent. Parsing never throws: unknown shapes come back with <see cref="Kind"/> saying what the server answers.
/// </summary>
internal sealed record ApiPath(ApiPathKind Kind, string Group, string Version, ResourceType? Type, string? Namespace, string? Name,
    string? Subresource)
{
    public static ApiPath Parse(string path)
    {
        var segs = path.Trim('/').Split('/', StringSplitOptions.None);
        string group, version;
        int i;
        if (segs.Length >= 2 && segs[0] == "api")
        {
            group = "";
            version = segs[1];
            i = 2;
        }
        else if (segs.Length >= 3 && segs[0] == "apis")
        {
            group = segs[1];
            version = segs[2];
            i = 3;
        }
        else
        {
            return new ApiPath(ApiPathKind.NotFoundText, "", "", null, null, null, null);
        }
        if (!ResourceTypes.IsServedGroupVersion(group, version)) return new ApiPath(ApiPathKind.NotFoundText, group, version, null, null, null, null);
        var rest = segs[i..];
        if (rest.Length == 0 || (rest.Length == 1 && rest[0].Length == 0)) return new ApiPath(ApiPathKind.GroupVersionDiscovery, group, version, null, null, null, null);
        if (rest.Any(s => s.Length == 0)) return new ApiPath(ApiPathKind.UnknownResource, group, version, null, null, null, null);

        string? ns = null;
        if (rest[0] == "namespaces" && rest.Length >= 3 && group.Length == 0 && !(rest.Length == 3 && rest[2] is "status" or "finalize"))
        {
            ns = rest[1];
            rest = rest[2..];
        }
        else if (rest[0] == "namespaces" && rest.Length >= 3 && group.Length > 0)
        {
            ns = rest[1];
            rest = rest[2..];
        }
        var type = ResourceTypes.Find(group, version, rest[0]);
        if (type is null || rest.Length > 3 || (ns is not null && !type.Namespaced))
        {
            return new ApiPath(ApiPathKind.UnknownResource, group, version, null, ns, null, null);
        }
        var name = rest.Length >= 2 ? Uri.UnescapeDataString(rest[1]) : null;
        var sub = rest.Length == 3 ? rest[2] : null;
        return new ApiPath(name is null ? ApiPathKind.Collection : ApiPathKind.Object, group, version, type, ns, name, sub);
    }
}

internal enum ApiPathKind
{
    /// <summary>Not under a served group/version: Go's mux answers text/plain "404 page not found".</summary>
    NotFoundText,
    GroupVersionDiscovery,
    UnknownResource,
    Collection,
    Object,
}
