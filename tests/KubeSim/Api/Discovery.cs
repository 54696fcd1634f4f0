using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Api;

/// <summary>The discovery documents (/version, /api, /apis, /api/v1, /apis/{g}/{v}) for what KubeSim serves, shaped like 1a-1e.</summary>
internal static class Discovery
{
    /// <summary>/version: the one JSON the real server indents and sends without a trailing newline (1a).</summary>
    public static string Version(TimeProvider time) =>
        "{\n" +
        "  \"major\": \"1\",\n" +
        "  \"minor\": \"20\",\n" +
        "  \"gitVersion\": \"v1.20.2-kubesim\",\n" +
        "  \"gitCommit\": \"0000000000000000000000000000000000000000\",\n" +
        "  \"gitTreeState\": \"clean\",\n" +
        $"  \"buildDate\": \"{ObjectStore.FormatTime(time.GetUtcNow())}\",\n" +
        "  \"goVersion\": \"go1.19.8\",\n" +
        "  \"compiler\": \"gc\",\n" +
        "  \"platform\": \"linux/amd64\"\n" +
        "}";

    public static JsonObject ApiVersions(string serverAddress) => new()
    {
        ["kind"] = "APIVersions",
        ["versions"] = new JsonArray("v1"),
        ["serverAddressByClientCIDRs"] = new JsonArray(new JsonObject { ["clientCIDR"] = "0.0.0.0/0", ["serverAddress"] = serverAddress }),
    };

    public static JsonObject ApiGroupList()
    {
        var groups = new JsonArray();
        foreach (var g in ResourceTypes.GroupVersions.Where(gv => gv.Group.Length > 0).GroupBy(gv => gv.Group))
        {
            var versions = new JsonArray();
            foreach (var (group, version) in g) versions.Add(new JsonObject { ["groupVersion"] = group + "/" + version, ["version"] = version });
            var preferred = g.First();
            groups.Add(new JsonObject
            {
                ["name"] = g.Key,
                ["versions"] = versions,
                ["preferredVersion"] = new JsonObject { ["groupVersion"] = preferred.Group + "/" + preferred.Version, ["version"] = preferred.Version },
            });
        }
        return new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = groups };
    }

    public static JsonObject ResourceList(string group, string version)
    {
        var resources = new JsonArray();
        foreach (var t in ResourceTypes.All.Where(t => t.Group == group && t.Version == version).OrderBy(t => t.Plural, StringComparer.Ordinal))
        {
            var r = new JsonObject
            {
                ["name"] = t.Plural,
                ["singularName"] = "",
                ["namespaced"] = t.Namespaced,
                ["kind"] = t.Kind,
                ["verbs"] = new JsonArray(t.Verbs.Select(v => (JsonNode?)v).ToArray()),
            };
            if (t.ShortNames.Length > 0) r["shortNames"] = new JsonArray(t.ShortNames.Select(v => (JsonNode?)v).ToArray());
            if (t.Categorized) r["categories"] = new JsonArray("all");
            r["storageVersionHash"] = StorageVersionHash(t);
            resources.Add(r);
            foreach (var sub in Subresources(t)) resources.Add(sub);
        }
        return new JsonObject
        {
            ["kind"] = "APIResourceList",
            ["apiVersion"] = "v1",
            ["groupVersion"] = group.Length == 0 ? version : group + "/" + version,
            ["resources"] = resources,
        };
    }

    private static IEnumerable<JsonObject> Subresources(ResourceType t)
    {
        JsonObject Sub(string name, string kind, params string[] verbs) => new()
        {
            ["name"] = t.Plural + "/" + name,
            ["singularName"] = "",
            ["namespaced"] = t.Namespaced,
            ["kind"] = kind,
            ["verbs"] = new JsonArray(verbs.Select(v => (JsonNode?)v).ToArray()),
        };
        var list = new List<(string, JsonObject)>();
        if (t.Kind == "Pod")
        {
            list.Add(("exec", Sub("exec", "PodExecOptions", "create", "get")));
            list.Add(("log", Sub("log", "Pod", "get")));
            list.Add(("portforward", Sub("portforward", "PodPortForwardOptions", "create", "get")));
        }
        if (t.HasScale)
        {
            var scale = Sub("scale", "Scale", "get", "patch", "update");
            scale.Insert(3, "group", "autoscaling");
            scale.Insert(4, "version", "v1");
            list.Add(("scale", scale));
        }
        if (t.HasStatus) list.Add(("status", Sub("status", t.Kind, "get", "patch", "update")));
        return list.OrderBy(p => p.Item1, StringComparer.Ordinal).Select(p => p.Item2);
    }

    /// <summary>Stable per resource, like the real hash of the storage version (its value means nothing to clients).</summary>
    private static string StorageVersionHash(ResourceType t) =>
        Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(t.ApiVersion + "/" + t.Kind)).AsSpan(0, 8));

    public const string Readyz =
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]informer-sync ok\n[+]poststarthook/generic-apiserver-start-informers ok\n[+]shutdown ok\nreadyz check passed\n";
}
