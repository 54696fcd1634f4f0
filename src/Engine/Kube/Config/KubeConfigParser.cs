using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace KtConnect.Engine.Kube.Config;

/// <summary>One kubeconfig file as written, with relative paths resolved against its directory.</summary>
internal sealed class KubeConfigFile
{
    public required string Path { get; init; }

    public string? CurrentContext { get; init; }

    public List<KubeCluster> Clusters { get; } = [];

    public List<KubeUser> Users { get; } = [];

    public List<KubeContext> Contexts { get; } = [];
}

/// <summary>
/// Parses one kubeconfig (YAML, or JSON, which is read with System.Text.Json so tabs and the like are fine)
/// into <see cref="KubeConfigFile"/>. Unknown keys are ignored as client-go does; wrong shapes, bad base64 and
/// duplicate names within the file are <see cref="KubeConfigInvalidException"/> naming the file and line.
/// </summary>
internal static class KubeConfigParser
{
    public const string ExecExtensionName = "client.authentication.k8s.io/exec";

    public static KubeConfigFile ParseFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KubeConfigInvalidException(path, null, "cannot read the kubeconfig: " + e.Message, e);
        }
        return Parse(text, path);
    }

    public static KubeConfigFile Parse(string text, string path)
    {
        var root = LoadRoot(text, path);
        var r = new Reader(path);
        if (root is null) return new KubeConfigFile { Path = path };
        if (root is not YamlMappingNode map) throw r.Error(root, "the document is not a mapping (expected apiVersion, kind, clusters, users, contexts)");

        var file = new KubeConfigFile { Path = path, CurrentContext = r.Str(map, "current-context") };
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? "";

        foreach (var (entry, name) in r.Named(map, "clusters"))
        {
            var c = r.Map(entry, "cluster") ?? new YamlMappingNode();
            file.Clusters.Add(new KubeCluster
            {
                Name = name,
                SourceFile = path,
                Server = r.Str(c, "server"),
                TlsServerName = r.Str(c, "tls-server-name"),
                InsecureSkipTlsVerify = r.Bool(c, "insecure-skip-tls-verify"),
                CertificateAuthority = Resolve(dir, r.Str(c, "certificate-authority")),
                CertificateAuthorityData = r.Base64(c, "certificate-authority-data"),
                ProxyUrl = r.Str(c, "proxy-url"),
                DisableCompression = r.Bool(c, "disable-compression"),
                ExecExtension = ExecExtension(r, c),
            });
        }
        foreach (var (entry, name) in r.Named(map, "users"))
        {
            var u = r.Map(entry, "user") ?? new YamlMappingNode();
            file.Users.Add(new KubeUser
            {
                Name = name,
                SourceFile = path,
                ClientCertificate = Resolve(dir, r.Str(u, "client-certificate")),
                ClientCertificateData = r.Base64(u, "client-certificate-data"),
                ClientKey = Resolve(dir, r.Str(u, "client-key")),
                ClientKeyData = r.Base64(u, "client-key-data"),
                Token = r.Str(u, "token"),
                TokenFile = Resolve(dir, r.Str(u, "tokenFile")),
                Impersonate = r.Str(u, "as"),
                ImpersonateUid = r.Str(u, "as-uid"),
                ImpersonateGroups = r.StrList(u, "as-groups"),
                ImpersonateUserExtra = Extra(r, u),
                Username = r.Str(u, "username"),
                Password = r.Str(u, "password"),
                AuthProvider = AuthProvider(r, u),
                Exec = Exec(r, u, dir),
            });
        }
        foreach (var (entry, name) in r.Named(map, "contexts"))
        {
            var c = r.Map(entry, "context") ?? new YamlMappingNode();
            file.Contexts.Add(new KubeContext
            {
                Name = name,
                SourceFile = path,
                Cluster = r.Str(c, "cluster"),
                User = r.Str(c, "user"),
                Namespace = r.Str(c, "namespace"),
            });
        }
        return file;
    }

    private static YamlNode? LoadRoot(string text, string path)
    {
        var trimmed = text.AsSpan().TrimStart("\uFEFF \t\r\n");
        if (trimmed.IsEmpty) return null;
        if (trimmed[0] == '{')
        {
            try
            {
                using var doc = JsonDocument.Parse(text.TrimStart('\uFEFF'), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
                return FromJson(doc.RootElement);
            }
            catch (JsonException e)
            {
                throw new KubeConfigInvalidException(path, e.LineNumber is long l ? (int)l + 1 : null, "not valid JSON: " + e.Message, e);
            }
        }
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            if (stream.Documents.Count == 0) return null;
            var root = stream.Documents[0].RootNode;
            return root is YamlScalarNode s && IsNull(s) ? null : root;
        }
        catch (YamlException e)
        {
            throw new KubeConfigInvalidException(path, e.Start.Line > 0 ? (int)e.Start.Line : null, "not valid YAML: " + e.Message, e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet 16 throws this (without a position) for some truncated flow collections.
            throw new KubeConfigInvalidException(path, null, "not valid YAML (an unterminated [ or { ?)", e);
        }
    }

    // JSON is turned into the YAML node model so one reader handles both. Strings stay quoted (never null/bool).
    private static YamlNode FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var m = new YamlMappingNode();
                foreach (var p in e.EnumerateObject()) m.Children[new YamlScalarNode(p.Name)] = FromJson(p.Value);
                return m;
            case JsonValueKind.Array:
                var s = new YamlSequenceNode();
                foreach (var item in e.EnumerateArray()) s.Children.Add(FromJson(item));
                return s;
            case JsonValueKind.String:
                return new YamlScalarNode(e.GetString()) { Style = ScalarStyle.DoubleQuoted };
            case JsonValueKind.Null:
                return new YamlScalarNode("null") { Style = ScalarStyle.Plain };
            default:
                return new YamlScalarNode(e.GetRawText()) { Style = ScalarStyle.Plain };
        }
    }

    private static bool IsNull(YamlScalarNode s) =>
        s.Style is ScalarStyle.Plain or ScalarStyle.Any && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

    private static string? Resolve(string dir, string? path)
    {
        if (string.IsNullOrEmpty(path)) return null;
        return System.IO.Path.IsPathRooted(path) ? path : System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, path));
    }

    private static JsonNode? ExecExtension(Reader r, YamlMappingNode cluster)
    {
        foreach (var ext in r.Seq(cluster, "extensions"))
        {
            if (ext is not YamlMappingNode m) throw r.Error(ext, "extensions entries must be mappings with name and extension");
            if (r.Str(m, "name") == ExecExtensionName) return m.Children.TryGetValue(new YamlScalarNode("extension"), out var v) ? ToJson(v) : null;
        }
        return null;
    }

    private static Dictionary<string, IReadOnlyList<string>> Extra(Reader r, YamlMappingNode user)
    {
        var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var extra = r.Map(user, "as-user-extra");
        if (extra is null) return result;
        foreach (var (k, v) in extra.Children)
        {
            var key = r.ScalarText(k) ?? throw r.Error(k, "as-user-extra keys must be strings");
            result[key] = v switch
            {
                YamlSequenceNode seq => seq.Children.Select(n => r.ScalarText(n) ?? throw r.Error(n, $"as-user-extra '{key}' values must be strings")).ToList(),
                YamlScalarNode s when IsNull(s) => [],
                _ => throw r.Error(v, $"as-user-extra '{key}' must be a list of strings"),
            };
        }
        return result;
    }

    private static KubeAuthProvider? AuthProvider(Reader r, YamlMappingNode user)
    {
        var ap = r.Map(user, "auth-provider");
        if (ap is null) return null;
        var name = r.Str(ap, "name") ?? throw r.Error(ap, "auth-provider has no name");
        var config = new Dictionary<string, string>(StringComparer.Ordinal);
        var cm = r.Map(ap, "config");
        if (cm is not null)
        {
            foreach (var (k, v) in cm.Children)
            {
                var key = r.ScalarText(k) ?? throw r.Error(k, "auth-provider config keys must be strings");
                var value = r.ScalarText(v);
                if (value is not null) config[key] = value;
            }
        }
        return new KubeAuthProvider { Name = name, Config = config };
    }

    private static KubeExecConfig? Exec(Reader r, YamlMappingNode user, string dir)
    {
        var ex = r.Map(user, "exec");
        if (ex is null) return null;
        var command = r.Str(ex, "command");
        if (string.IsNullOrEmpty(command)) throw r.Error(ex, "exec has no command");
        // client-go resolves the command only when it contains a separator; bare names are looked up in PATH.
        if (command.Contains(System.IO.Path.DirectorySeparatorChar) || command.Contains(System.IO.Path.AltDirectorySeparatorChar))
            command = Resolve(dir, command)!;
        var env = new List<KeyValuePair<string, string>>();
        foreach (var e in r.Seq(ex, "env"))
        {
            if (e is not YamlMappingNode em) throw r.Error(e, "exec env entries must be mappings with name and value");
            var name = r.Str(em, "name");
            if (string.IsNullOrEmpty(name)) throw r.Error(em, "exec env entry has no name");
            env.Add(new(name, r.Str(em, "value") ?? ""));
        }
        return new KubeExecConfig
        {
            Command = command,
            Args = r.StrList(ex, "args"),
            Env = env,
            ApiVersion = r.Str(ex, "apiVersion"),
            InstallHint = r.Str(ex, "installHint"),
            ProvideClusterInfo = r.Bool(ex, "provideClusterInfo"),
            InteractiveMode = r.Str(ex, "interactiveMode"),
        };
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(kv =>
            KeyValuePair.Create(kv.Key is YamlScalarNode ks ? ks.Value ?? "" : kv.Key.ToString(), ToJson(kv.Value)))),
        YamlSequenceNode s => new JsonArray(s.Children.Select(ToJson).ToArray()),
        YamlScalarNode sc when IsNull(sc) => null,
        YamlScalarNode sc when sc.Style is ScalarStyle.Plain or ScalarStyle.Any => PlainScalar(sc.Value!),
        YamlScalarNode sc => JsonValue.Create(sc.Value),
        _ => null,
    };

    // YAML plain scalars are untyped: give booleans and numbers their JSON types, as sigs.k8s.io/yaml does.
    private static JsonNode PlainScalar(string v)
    {
        if (v is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (v is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)) return JsonValue.Create(d);
        return JsonValue.Create(v);
    }

    /// <summary>Typed access to mapping keys; every shape error names the file and line.</summary>
    private sealed class Reader(string file)
    {
        public KubeConfigInvalidException Error(YamlNode? node, string message) =>
            new(file, node is null || node.Start.Line <= 0 ? null : (int)node.Start.Line, message);

        private static YamlNode? Get(YamlMappingNode m, string key) =>
            m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

        public string? ScalarText(YamlNode node) => node switch
        {
            YamlScalarNode s when IsNull(s) => null,
            YamlScalarNode s => s.Value,
            _ => null,
        };

        public string? Str(YamlMappingNode m, string key)
        {
            var v = Get(m, key);
            if (v is null) return null;
            if (v is not YamlScalarNode s) throw Error(v, $"'{key}' must be a string");
            var text = ScalarText(s);
            return string.IsNullOrEmpty(text) ? null : text;
        }

        public bool Bool(YamlMappingNode m, string key)
        {
            var v = Get(m, key);
            if (v is null || v is YamlScalarNode s0 && IsNull(s0)) return false;
            if (v is YamlScalarNode s)
            {
                switch (s.Value?.ToLowerInvariant())
                {
                    case "true" or "yes" or "on": return true;
                    case "false" or "no" or "off": return false;
                }
            }
            throw Error(v, $"'{key}' must be true or false");
        }

        public YamlMappingNode? Map(YamlMappingNode m, string key)
        {
            var v = Get(m, key);
            return v switch
            {
                null => null,
                YamlMappingNode mm => mm,
                YamlScalarNode s when IsNull(s) => null,
                _ => throw Error(v, $"'{key}' must be a mapping"),
            };
        }

        public IEnumerable<YamlNode> Seq(YamlMappingNode m, string key)
        {
            var v = Get(m, key);
            return v switch
            {
                null => [],
                YamlSequenceNode s => s.Children,
                YamlScalarNode s when IsNull(s) => [],
                _ => throw Error(v, $"'{key}' must be a list"),
            };
        }

        public List<string> StrList(YamlMappingNode m, string key) =>
            Seq(m, key).Select(n => n is YamlScalarNode s ? s.Value ?? "" : throw Error(n, $"'{key}' must be a list of strings")).ToList();

        public byte[]? Base64(YamlMappingNode m, string key)
        {
            var text = Str(m, key);
            if (text is null) return null;
            try
            {
                // Go's []byte JSON decoding is standard base64; YAML block scalars may carry line breaks.
                return Convert.FromBase64String(text.Replace("\n", "", StringComparison.Ordinal).Replace("\r", "", StringComparison.Ordinal).Trim());
            }
            catch (FormatException e)
            {
                throw new KubeConfigInvalidException(file, (int)Get(m, key)!.Start.Line, $"'{key}' is not valid base64 (it must be the base64 encoding of the PEM text)", e);
            }
        }

        /// <summary>The entries of a named list (clusters, users, contexts); a name twice in one file is an error as in client-go.</summary>
        public IEnumerable<(YamlMappingNode Entry, string Name)> Named(YamlMappingNode m, string key)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var n in Seq(m, key))
            {
                if (n is not YamlMappingNode entry) throw Error(n, $"'{key}' entries must be mappings with a name");
                var name = Str(entry, "name");
                if (string.IsNullOrEmpty(name)) throw Error(entry, $"an entry of '{key}' has no name");
                if (!seen.Add(name)) throw Error(entry, $"'{key}' defines '{name}' twice");
                yield return (entry, name);
            }
        }
    }
}
