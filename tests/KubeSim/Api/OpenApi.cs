using System.Security.Cryptography;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Api;

/// <summary>
/// Minimal but valid OpenAPI documents for the types KubeSim serves: <c>/openapi/v2</c> (Swagger 2.0, JSON only) and
/// <c>/openapi/v3</c> (the discovery of per-group-version OpenAPI 3.0 documents). They carry what kubectl reads:
/// every path and operation with <c>x-kubernetes-group-version-kind</c> and <c>x-kubernetes-action</c>, the query
/// parameters (<c>fieldValidation</c> on PATCH is what makes kubectl 1.32 validate on the server instead of
/// downloading the v2 schema), and one schema per kind that names apiVersion, kind and metadata and otherwise keeps
/// unknown fields. The schemas are skeletal, so the PATCH operations do not advertise strategic merge patch (kubectl
/// would try to compute the patch from these schemas and fail): kubectl then uses its compiled-in types, as it does
/// for any server whose document lacks them.
/// </summary>
internal static class OpenApi
{
    private const string ObjectMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    private const string ListMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
    private const string Status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    private const string Patch = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
    private const string DeleteOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
    private const string Scale = "io.k8s.api.autoscaling.v1.Scale";

    /// <summary>The path of a group version in <c>/openapi/v3</c>: "api/v1" or "apis/{group}/{version}".</summary>
    public static string GroupVersionPath(string group, string version) => group.Length == 0 ? "api/" + version : $"apis/{group}/{version}";

    /// <summary>GET /openapi/v3: <c>{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=..."}, ...}}</c>.</summary>
    public static JsonObject V3Discovery(string pathPrefix)
    {
        var paths = new JsonObject();
        foreach (var (group, version) in ResourceTypes.GroupVersions)
        {
            var path = GroupVersionPath(group, version);
            paths[path] = new JsonObject { ["serverRelativeURL"] = $"{pathPrefix}/openapi/v3/{path}?hash={Hash(V3Document(group, version))}" };
        }
        return new JsonObject { ["paths"] = paths };
    }

    /// <summary>The OpenAPI 3.0 document of one group version, or null for a group version KubeSim does not serve.</summary>
    public static JsonObject? V3For(string groupVersionPath)
    {
        foreach (var (group, version) in ResourceTypes.GroupVersions)
        {
            if (GroupVersionPath(group, version) == groupVersionPath) return V3Document(group, version);
        }
        return null;
    }

    public static JsonObject V3Document(string group, string version)
    {
        var types = ResourceTypes.All.Where(t => t.Group == group && t.Version == version).ToList();
        var paths = new JsonObject();
        foreach (var t in types) AddPaths(paths, t, v3: true);
        var schemas = CommonSchemas(v3: true);
        foreach (var t in types) AddKindSchemas(schemas, t, v3: true);
        if (types.Any(t => t.HasScale)) schemas[Scale] = KindSchema(new ResourceType("autoscaling", "v1", "scale", "Scale", true, [], []), v3: true);
        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.20.2" },
            ["paths"] = paths,
            ["components"] = new JsonObject { ["schemas"] = schemas },
        };
    }

    /// <summary>GET /openapi/v2: one Swagger 2.0 document for everything.</summary>
    public static JsonObject V2Document()
    {
        var paths = new JsonObject();
        foreach (var t in ResourceTypes.All) AddPaths(paths, t, v3: false);
        var definitions = CommonSchemas(v3: false);
        foreach (var t in ResourceTypes.All) AddKindSchemas(definitions, t, v3: false);
        definitions[Scale] = KindSchema(new ResourceType("autoscaling", "v1", "scale", "Scale", true, [], []), v3: false);
        return new JsonObject
        {
            ["swagger"] = "2.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.20.2" },
            ["paths"] = paths,
            ["definitions"] = definitions,
            ["security"] = new JsonArray(new JsonObject { ["BearerToken"] = new JsonArray() }),
            ["securityDefinitions"] = new JsonObject
            {
                ["BearerToken"] = new JsonObject
                {
                    ["description"] = "Bearer Token authentication",
                    ["type"] = "apiKey",
                    ["name"] = "authorization",
                    ["in"] = "header",
                },
            },
        };
    }

    /// <summary>The hash the real server puts in serverRelativeURL: SHA-512 of the document, upper-case hex.</summary>
    public static string Hash(JsonNode doc) => Convert.ToHexString(SHA512.HashData(KubeJson.ToBytesWithNewline(doc)));

    public static string SchemaName(ResourceType t) => $"io.k8s.api.{t.InternalGroup}.{t.Version}.{t.Kind}";

    private static string Ref(string name, bool v3) => (v3 ? "#/components/schemas/" : "#/definitions/") + name;

    private static JsonObject Gvk(ResourceType t) => new() { ["group"] = t.Group, ["kind"] = t.Kind, ["version"] = t.Version };

    private static void AddPaths(JsonObject paths, ResourceType t, bool v3)
    {
        var root = "/" + GroupVersionPath(t.Group, t.Version);
        var groupName = t.Group.Length == 0 ? "Core" : Capitalize(t.Group.Split('.')[0]);
        var scoped = t.Namespaced ? "Namespaced" : "";
        var op = $"{groupName}{Capitalize(t.Version)}{scoped}{t.Kind}";
        var collection = t.Namespaced ? $"{root}/namespaces/{{namespace}}/{t.Plural}" : $"{root}/{t.Plural}";
        var nsParam = t.Namespaced ? new[] { PathParam("namespace", v3) } : [];
        var schema = SchemaName(t);
        var listSchema = schema + "List";

        var coll = new JsonObject();
        if (t.Supports("list")) coll["get"] = Operation("list" + op, "list", t, v3, [.. nsParam, .. ListParams(v3)], null, listSchema);
        if (t.Supports("create")) coll["post"] = Operation("create" + op, "post", t, v3, [.. nsParam, .. WriteParams(v3, patch: false)], ["*/*"], schema, 201);
        if (t.Supports("deletecollection"))
        {
            coll["delete"] = Operation("deletecollection" + op, "deletecollection", t, v3, [.. nsParam, .. ListParams(v3), Query("dryRun", v3)], ["*/*"], Status,
                bodySchema: DeleteOptions);
        }
        if (coll.Count > 0) paths[collection] = coll;
        if (t.Namespaced && t.Supports("list"))
        {
            // The cluster-wide list (kubectl get -A).
            paths[$"{root}/{t.Plural}"] = new JsonObject
            {
                ["get"] = Operation($"list{groupName}{Capitalize(t.Version)}{t.Kind}ForAllNamespaces", "list", t, v3, ListParams(v3), null, listSchema),
            };
        }
        if (!t.Supports("get")) return;

        JsonObject[] objParams = [PathParam("name", v3), .. nsParam];
        var one = new JsonObject { ["get"] = Operation("read" + op, "get", t, v3, objParams, null, schema) };
        if (t.Supports("update")) one["put"] = Operation("replace" + op, "put", t, v3, [.. objParams, .. WriteParams(v3, patch: false)], ["*/*"], schema);
        if (t.Supports("patch")) one["patch"] = Operation("patch" + op, "patch", t, v3, [.. objParams, .. WriteParams(v3, patch: true)], PatchTypes, schema, bodySchema: Patch);
        if (t.Supports("delete")) one["delete"] = Operation("delete" + op, "delete", t, v3, [.. objParams, Query("dryRun", v3)], ["*/*"], Status, bodySchema: DeleteOptions);
        paths[$"{collection}/{{name}}"] = one;

        if (t.HasStatus)
        {
            paths[$"{collection}/{{name}}/status"] = new JsonObject
            {
                ["get"] = Operation("read" + op + "Status", "get", t, v3, objParams, null, schema),
                ["put"] = Operation("replace" + op + "Status", "put", t, v3, [.. objParams, .. WriteParams(v3, patch: false)], ["*/*"], schema),
                ["patch"] = Operation("patch" + op + "Status", "patch", t, v3, [.. objParams, .. WriteParams(v3, patch: true)], PatchTypes, schema, bodySchema: Patch),
            };
        }
        if (t.HasScale)
        {
            var scaleType = new ResourceType("autoscaling", "v1", "scale", "Scale", true, [], []);
            paths[$"{collection}/{{name}}/scale"] = new JsonObject
            {
                ["get"] = Operation("read" + op + "Scale", "get", scaleType, v3, objParams, null, Scale),
                ["put"] = Operation("replace" + op + "Scale", "put", scaleType, v3, [.. objParams, .. WriteParams(v3, patch: false)], ["*/*"], Scale),
                ["patch"] = Operation("patch" + op + "Scale", "patch", scaleType, v3, [.. objParams, .. WriteParams(v3, patch: true)], PatchTypes, Scale,
                    bodySchema: Patch),
            };
        }
    }

    /// <summary>Patch types advertised; strategic merge is left out on purpose (see the class summary).</summary>
    private static readonly string[] PatchTypes = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"];

    private static JsonObject Operation(string id, string action, ResourceType t, bool v3, JsonObject[] parameters, string[]? consumes, string responseSchema,
        int okCode = 200, string? bodySchema = null)
    {
        var op = new JsonObject
        {
            ["description"] = $"{action} {t.Kind}",
            ["operationId"] = id,
            ["tags"] = new JsonArray(t.Group.Length == 0 ? "core_" + t.Version : t.Group.Split('.')[0] + "_" + t.Version),
            ["parameters"] = new JsonArray([.. parameters.Select(p => p.DeepClone())]),
        };
        var okSchema = new JsonObject { ["$ref"] = Ref(responseSchema, v3) };
        if (v3)
        {
            if (consumes is not null)
            {
                var content = new JsonObject();
                foreach (var c in consumes) content[c] = new JsonObject { ["schema"] = new JsonObject { ["$ref"] = Ref(bodySchema ?? responseSchema, v3) } };
                op["requestBody"] = new JsonObject { ["content"] = content, ["required"] = action != "delete" && action != "deletecollection" };
            }
            op["responses"] = new JsonObject
            {
                [okCode.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
                {
                    ["description"] = "OK",
                    ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = okSchema } },
                },
                ["401"] = new JsonObject { ["description"] = "Unauthorized" },
            };
        }
        else
        {
            op["consumes"] = new JsonArray([.. (consumes ?? ["*/*"]).Select(c => (JsonNode)c)]);
            op["produces"] = new JsonArray("application/json");
            op["schemes"] = new JsonArray("https");
            if (consumes is not null)
            {
                ((JsonArray)op["parameters"]!).Add(new JsonObject
                {
                    ["name"] = "body",
                    ["in"] = "body",
                    ["required"] = action != "delete" && action != "deletecollection",
                    ["schema"] = new JsonObject { ["$ref"] = Ref(bodySchema ?? responseSchema, v3) },
                });
            }
            op["responses"] = new JsonObject
            {
                [okCode.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject { ["description"] = "OK", ["schema"] = okSchema },
                ["401"] = new JsonObject { ["description"] = "Unauthorized" },
            };
        }
        op["x-kubernetes-action"] = action;
        op["x-kubernetes-group-version-kind"] = Gvk(t);
        return op;
    }

    private static JsonObject PathParam(string name, bool v3) => Param(name, "path", v3, required: true);

    private static JsonObject Query(string name, bool v3, string type = "string") => Param(name, "query", v3, required: false, type);

    private static JsonObject Param(string name, string where, bool v3, bool required, string type = "string")
    {
        var p = new JsonObject { ["name"] = name, ["in"] = where, ["description"] = name };
        if (required) p["required"] = true;
        if (v3) p["schema"] = new JsonObject { ["type"] = type, ["uniqueItems"] = true };
        else
        {
            p["type"] = type;
            p["uniqueItems"] = true;
        }
        return p;
    }

    private static JsonObject[] ListParams(bool v3) =>
    [
        Query("allowWatchBookmarks", v3, "boolean"), Query("continue", v3), Query("fieldSelector", v3), Query("labelSelector", v3),
        Query("limit", v3, "integer"), Query("resourceVersion", v3), Query("timeoutSeconds", v3, "integer"), Query("watch", v3, "boolean"),
    ];

    private static JsonObject[] WriteParams(bool v3, bool patch) => patch
        ? [Query("dryRun", v3), Query("fieldManager", v3), Query("fieldValidation", v3), Query("force", v3, "boolean")]
        : [Query("dryRun", v3), Query("fieldManager", v3), Query("fieldValidation", v3)];

    private static JsonObject CommonSchemas(bool v3)
    {
        JsonObject Str() => new() { ["type"] = "string" };
        JsonObject StrMap() => new() { ["type"] = "object", ["additionalProperties"] = new JsonObject { ["type"] = "string", ["default"] = "" } };
        JsonObject Free() => new() { ["type"] = "object", ["x-kubernetes-preserve-unknown-fields"] = true };
        return new JsonObject
        {
            [ObjectMeta] = new JsonObject
            {
                ["description"] = "ObjectMeta is metadata that all persisted resources must have.",
                ["type"] = "object",
                ["properties"] = new JsonObject
                {
                    ["annotations"] = StrMap(),
                    ["creationTimestamp"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
                    ["deletionGracePeriodSeconds"] = new JsonObject { ["type"] = "integer", ["format"] = "int64" },
                    ["deletionTimestamp"] = new JsonObject { ["type"] = "string", ["format"] = "date-time" },
                    ["finalizers"] = new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "string", ["default"] = "" } },
                    ["generateName"] = Str(),
                    ["generation"] = new JsonObject { ["type"] = "integer", ["format"] = "int64" },
                    ["labels"] = StrMap(),
                    ["managedFields"] = new JsonObject { ["type"] = "array", ["items"] = Free() },
                    ["name"] = Str(),
                    ["namespace"] = Str(),
                    ["ownerReferences"] = new JsonObject { ["type"] = "array", ["items"] = Free() },
                    ["resourceVersion"] = Str(),
                    ["selfLink"] = Str(),
                    ["uid"] = Str(),
                },
            },
            [ListMeta] = new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject
                {
                    ["continue"] = Str(),
                    ["remainingItemCount"] = new JsonObject { ["type"] = "integer", ["format"] = "int64" },
                    ["resourceVersion"] = Str(),
                    ["selfLink"] = Str(),
                },
            },
            [Status] = WithGvk(Free(), "", "v1", "Status"),
            [DeleteOptions] = WithGvk(Free(), "", "v1", "DeleteOptions"),
            [Patch] = new JsonObject { ["description"] = "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", ["type"] = "object" },
        };

        static JsonObject WithGvk(JsonObject s, string g, string v, string k)
        {
            s["x-kubernetes-group-version-kind"] = new JsonArray(new JsonObject { ["group"] = g, ["kind"] = k, ["version"] = v });
            return s;
        }
    }

    private static void AddKindSchemas(JsonObject schemas, ResourceType t, bool v3)
    {
        schemas[SchemaName(t)] = KindSchema(t, v3);
        schemas[SchemaName(t) + "List"] = new JsonObject
        {
            ["description"] = $"{t.Kind}List is a list of {t.Kind}.",
            ["type"] = "object",
            ["required"] = new JsonArray("items"),
            ["properties"] = new JsonObject
            {
                ["apiVersion"] = new JsonObject { ["type"] = "string" },
                ["items"] = new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["$ref"] = Ref(SchemaName(t), v3) } },
                ["kind"] = new JsonObject { ["type"] = "string" },
                ["metadata"] = new JsonObject { ["$ref"] = Ref(ListMeta, v3) },
            },
            ["x-kubernetes-group-version-kind"] = new JsonArray(new JsonObject { ["group"] = t.Group, ["kind"] = t.Kind + "List", ["version"] = t.Version }),
        };
    }

    private static JsonObject KindSchema(ResourceType t, bool v3) => new()
    {
        ["description"] = $"{t.Kind} (KubeSim: apiVersion, kind and metadata are described; every other field is kept as sent).",
        ["type"] = "object",
        ["properties"] = new JsonObject
        {
            ["apiVersion"] = new JsonObject { ["type"] = "string" },
            ["kind"] = new JsonObject { ["type"] = "string" },
            ["metadata"] = new JsonObject { ["$ref"] = Ref(ObjectMeta, v3) },
        },
        ["x-kubernetes-preserve-unknown-fields"] = true,
        ["x-kubernetes-group-version-kind"] = new JsonArray(Gvk(t)),
    };

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    // ---------------------------------------------------------------- v2 as protobuf

    /// <summary>The media type client-go asks /openapi/v2 for (kubectl up to 1.26 needs it; later ones read v3).</summary>
    public const string V2ProtobufMediaType = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

    /// <summary>
    /// /openapi/v2 as gnostic's openapi.v2.Document protobuf: swagger, info and every path with its operations
    /// (operationId, consumes/produces, non-body parameters, responses, the x-kubernetes-action and
    /// x-kubernetes-group-version-kind vendor extensions as YAML), which kubectl 1.20 reads to learn that a kind
    /// takes dryRun. The definitions are left out, so kubectl finds no schema for any kind: it skips client-side
    /// validation and computes apply patches from its compiled-in types, as it does for kinds a server does not describe.
    /// </summary>
    public static byte[] V2Protobuf()
    {
        var doc = V2Document();
        var pathItems = new List<byte[]>();
        foreach (var (path, item) in doc["paths"]!.AsObject())
        {
            var ops = new List<byte[]>();
            foreach (var (verb, number) in new[] { ("get", 2), ("put", 3), ("post", 4), ("delete", 5), ("patch", 8) })
            {
                if (item![verb] is JsonObject op) ops.Add(Pb.Msg(number, Operation(op)));
            }
            pathItems.Add(Pb.Msg(2, Pb.Cat(Pb.Str(1, path), Pb.Msg(2, Pb.Cat([.. ops])))));
        }
        var info = Pb.Cat(Pb.Str(1, doc["info"]!["title"]!.GetValue<string>()), Pb.Str(2, doc["info"]!["version"]!.GetValue<string>()));
        return Pb.Cat(Pb.Str(1, "2.0"), Pb.Msg(2, info), Pb.Msg(8, Pb.Cat([.. pathItems])));

        static byte[] Operation(JsonObject op)
        {
            var parts = new List<byte[]>();
            foreach (var tag in op["tags"] as JsonArray ?? []) parts.Add(Pb.Str(1, tag!.GetValue<string>()));
            parts.Add(Pb.Str(3, op["description"]?.GetValue<string>() ?? ""));
            parts.Add(Pb.Str(5, op["operationId"]!.GetValue<string>()));
            foreach (var p in op["produces"] as JsonArray ?? []) parts.Add(Pb.Str(6, p!.GetValue<string>()));
            foreach (var c in op["consumes"] as JsonArray ?? []) parts.Add(Pb.Str(7, c!.GetValue<string>()));
            foreach (var p in op["parameters"] as JsonArray ?? [])
            {
                var name = p!["name"]!.GetValue<string>();
                var where = p["in"]!.GetValue<string>();
                var required = p["required"]?.GetValue<bool>() ?? false;
                byte[] parameter = where == "body"
                    ? Pb.Msg(1, Pb.Cat(Pb.Str(2, name), Pb.Str(3, where), Pb.Bool(4, required)))
                    : Pb.Msg(2, Pb.Msg(where == "path" ? 4 : 3, Pb.Cat(Pb.Bool(1, required), Pb.Str(2, where), Pb.Str(4, name),
                        Pb.Str(where == "path" ? 5 : 6, p["type"]?.GetValue<string>() ?? "string"))));
                parts.Add(Pb.Msg(8, Pb.Msg(1, parameter)));
            }
            var responses = new List<byte[]>();
            foreach (var (code, response) in op["responses"]!.AsObject())
            {
                responses.Add(Pb.Msg(1, Pb.Cat(Pb.Str(1, code), Pb.Msg(2, Pb.Msg(1, Pb.Str(1, response!["description"]!.GetValue<string>()))))));
            }
            parts.Add(Pb.Msg(9, Pb.Cat([.. responses])));
            foreach (var scheme in op["schemes"] as JsonArray ?? []) parts.Add(Pb.Str(10, scheme!.GetValue<string>()));
            parts.Add(Pb.Msg(13, Pb.Cat(Pb.Str(1, "x-kubernetes-action"), Pb.Msg(2, Pb.Str(2, op["x-kubernetes-action"]!.GetValue<string>() + "\n")))));
            var gvk = op["x-kubernetes-group-version-kind"]!;
            var group = gvk["group"]!.GetValue<string>();
            var yaml = $"group: {(group.Length == 0 ? "\"\"" : group)}\nkind: {gvk["kind"]!.GetValue<string>()}\nversion: {gvk["version"]!.GetValue<string>()}\n";
            parts.Add(Pb.Msg(13, Pb.Cat(Pb.Str(1, "x-kubernetes-group-version-kind"), Pb.Msg(2, Pb.Str(2, yaml)))));
            return Pb.Cat([.. parts]);
        }
    }

    /// <summary>Protobuf wire encoding: length-delimited fields, varints (proto3: empty strings and false are not written).</summary>
    private static class Pb
    {
        public static byte[] Cat(params byte[][] parts) => [.. parts.SelectMany(p => p)];

        public static byte[] Str(int field, string value) => value.Length == 0 ? [] : Msg(field, System.Text.Encoding.UTF8.GetBytes(value));

        public static byte[] Bool(int field, bool value) => value ? Cat(Varint((ulong)(field << 3)), [1]) : [];

        public static byte[] Msg(int field, byte[] value) => Cat(Varint((ulong)((field << 3) | 2)), Varint((ulong)value.Length), value);

        private static byte[] Varint(ulong v)
        {
            var bytes = new List<byte>();
            while (v >= 0x80)
            {
                bytes.Add((byte)(v | 0x80));
                v >>= 7;
            }
            bytes.Add((byte)v);
            return [.. bytes];
        }
    }
}
