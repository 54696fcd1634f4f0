using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>
/// kt-connect's cluster-side bookkeeping (reference/kt-connect.md §2): label and annotation keys, their values,
/// object names and the formats of the annotation values, so ktctl and KtConnect understand each other's objects.
/// </summary>
public static partial class KtConventions
{
    // Labels.
    public const string ControlByLabel = "control-by";
    public const string ControlByValue = "kt";
    public const string RoleLabel = "kt-role";
    public const string TargetLabel = "kt-target";

    // Annotations.
    public const string ConfigAnnotation = "kt-config";
    public const string UserAnnotation = "kt-user";
    public const string SelectorAnnotation = "kt-selector";
    public const string RefCountAnnotation = "kt-ref-count";
    public const string HeartbeatAnnotation = "kt-last-heart-beat";
    public const string LockAnnotation = "kt-lock";

    /// <summary>
    /// KtConnect's own, beside kt-ref-count on a shared router or shared shadow: the sessions counted in it (comma-separated journal
    /// session ids), changed in the same patch as the count, so a leave or a crashed session's undo takes out only a
    /// count that is its own. kt-connect counts without it.
    /// </summary>
    public const string MembersAnnotation = "ktconnect.io/members";

    // kt-config keys.
    public const string ConfigService = "service";
    public const string ConfigApp = "app";
    public const string ConfigReplicas = "replicas";

    // Pod layout.
    public const string ContainerName = "standalone";
    public const string DefaultShadowImage = "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow:v0.3.7";

    /// <summary>kt-connect's router image (nginx + /usr/sbin/router) for mesh auto mode.</summary>
    public const string DefaultRouterImage = "registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-router:v0.3.7";
    public const string SshVolumeName = "ssh-public-key";
    public const string SshMountPath = "/root/authorized";
    public const string AuthorizedKeysFile = "authorized_keys";
    public const string ConfigMapAuthorizedKey = "authorized";
    public const string ConfigMapPrivateKey = "privateKey";
    public const string AuditWriteCapability = "AUDIT_WRITE";
    public const int SshPort = 22;

    // Names.
    public const string ConnectShadowPrefix = "kt-connect-shadow-";
    public const string SharedShadowName = "kt-connect-shadow-daemon";

    /// <summary>ktctl's default staleness threshold (<c>--thresholdInMinus</c> 5).</summary>
    public static readonly TimeSpan DefaultStaleThreshold = TimeSpan.FromMinutes(5);

    /// <summary>A <c>kt-lock</c> older than this is stale (ktctl general/lock.go LockTimeout).</summary>
    public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(180);

    /// <summary>The <c>kt-role</c> values.</summary>
    public static class Roles
    {
        public const string ShadowConnect = "shadow-connect";
        public const string ShadowExchange = "shadow-exchange";
        public const string ShadowMesh = "shadow-mesh";
        public const string ShadowPreview = "shadow-preview";
        public const string Router = "router";
    }

    private const string Lower = "abcdefghijklmnopqrstuvwxyz";
    private const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /// <summary><paramref name="length"/> random lowercase letters (name suffixes).</summary>
    public static string RandomLowercase(int length = 5) => RandomNumberGenerator.GetString(Lower, length);

    /// <summary>A new <c>kt-target</c> value: 20 random letters [a-zA-Z].</summary>
    public static string NewTarget() => RandomNumberGenerator.GetString(Letters, 20);

    public static string ConnectShadowName() => ConnectShadowPrefix + RandomLowercase();

    public static string ExchangeShadowName(string serviceOrDeployment) => serviceOrDeployment + "-kt-exchange-" + RandomLowercase();

    public static string MeshShadowName(string service, string version) => service + "-kt-mesh-" + version;

    public static string RouterName(string service) => service + "-kt-router";

    public static string StuntmanName(string service) => service + "-kt-stuntman";

    public static string PreviewShadowName(string name) => name + "-kt-" + RandomLowercase();

    /// <summary>Port name on Services kt creates.</summary>
    public static string ServicePortName(int port) => "kt-" + port.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The labels every object KtConnect creates carries: <c>control-by=kt</c>, plus <c>kt-role</c> when given.
    /// </summary>
    public static Dictionary<string, string> BaseLabels(string? role = null)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal) { [ControlByLabel] = ControlByValue };
        if (role is not null) labels[RoleLabel] = role;
        return labels;
    }

    /// <summary>Label selector text for everything kt made: <c>control-by=kt</c>.</summary>
    public const string ControlBySelector = ControlByLabel + "=" + ControlByValue;

    /// <summary>The local user for <c>kt-user</c>: <c>$SUDO_USER</c> when set, else the OS user.</summary>
    public static string CurrentUser(Func<string, string?>? getEnvironmentVariable = null)
    {
        var sudo = (getEnvironmentVariable ?? Environment.GetEnvironmentVariable)("SUDO_USER");
        return string.IsNullOrEmpty(sudo) ? Environment.UserName : sudo;
    }

    /// <summary>Heartbeat/lock value: Unix seconds, invariant digits.</summary>
    public static string FormatUnixSeconds(DateTimeOffset time) => time.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

    /// <summary>Reads a heartbeat/lock value; false when absent or not an integer.</summary>
    public static bool TryParseUnixSeconds(string? value, out DateTimeOffset time)
    {
        time = default;
        if (string.IsNullOrWhiteSpace(value)
            || !long.TryParse(value.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var seconds)
            || seconds < -62135596800L || seconds > 253402300799L)
        {
            return false;
        }
        time = DateTimeOffset.FromUnixTimeSeconds(seconds);
        return true;
    }

    /// <summary>Formats <c>kt-config</c>: <c>k=v,k=v</c> in the given order.</summary>
    public static string FormatConfig(IEnumerable<KeyValuePair<string, string>> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var sb = new StringBuilder();
        foreach (var (k, v) in entries)
        {
            if (k.Contains(',', StringComparison.Ordinal) || k.Contains('=', StringComparison.Ordinal) || v.Contains(',', StringComparison.Ordinal))
            {
                throw new ArgumentException($"kt-config entry '{k}={v}' cannot contain ',' (or '=' in the key).", nameof(entries));
            }
            if (sb.Length > 0) sb.Append(',');
            sb.Append(k).Append('=').Append(v);
        }
        return sb.ToString();
    }

    /// <summary>
    /// Parses <c>kt-config</c> as ktctl's <c>util.String2Map</c> does: entries split on ',', each on its first '=';
    /// entries without '=' are ignored; keys and values are trimmed.
    /// </summary>
    public static Dictionary<string, string> ParseConfig(string? value)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(value)) return map;
        foreach (var part in value.Split(','))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) continue;
            map[part[..eq].Trim()] = part[(eq + 1)..].Trim();
        }
        return map;
    }

    /// <summary>A selector as a label-selector query (<c>k=v,k2=v2</c>, sorted keys) for list and watch calls.</summary>
    internal static string SelectorQuery(IReadOnlyDictionary<string, string> selector) =>
        string.Join(',', selector.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value));

    /// <summary><c>kt-selector</c>: the Service's original selector as a JSON object (<c>{"app":"tomcat"}</c>), keys sorted like Go's encoder.</summary>
    public static string FormatSelector(IReadOnlyDictionary<string, string> selector)
    {
        ArgumentNullException.ThrowIfNull(selector);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (k, v) in selector.OrderBy(p => p.Key, StringComparer.Ordinal)) writer.WriteString(k, v);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    /// <summary>Parses <c>kt-selector</c>; a value that is not a JSON object of strings throws <see cref="KtAnnotationInvalidException"/>.</summary>
    public static Dictionary<string, string> ParseSelector(string value, string? objectName = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        try
        {
            using var doc = JsonDocument.Parse(value);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException("not a JSON object");
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String) throw new JsonException($"value of '{p.Name}' is not a string");
                map[p.Name] = p.Value.GetString()!;
            }
            return map;
        }
        catch (JsonException e)
        {
            throw new KtAnnotationInvalidException(SelectorAnnotation, value, objectName, e.Message, e);
        }
    }

    /// <summary>Reads <c>kt-ref-count</c>; absent or malformed counts as 0 (ktctl's strconv.Atoi failure path).</summary>
    public static int ParseRefCount(string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 0;

    /// <summary>The sessions listed in <see cref="MembersAnnotation"/>.</summary>
    public static IReadOnlySet<string> ParseMembers(KubeObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return (o.Metadata.GetAnnotation(MembersAnnotation) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>An RFC 1123 label, what Kubernetes allows as a namespace name.</summary>
    public static bool IsDnsLabel(string? name) => name is { Length: > 0 and <= 63 } && DnsLabelPattern().IsMatch(name);

    [System.Text.RegularExpressions.GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial System.Text.RegularExpressions.Regex DnsLabelPattern();
}

/// <summary>A kt annotation whose value cannot be read (for example a <c>kt-selector</c> that is not JSON).</summary>
public sealed class KtAnnotationInvalidException(string annotation, string value, string? objectName, string detail, Exception? inner = null)
    : KtException("KtAnnotationInvalid", KtErrorCategory.InvalidData,
        $"Annotation '{annotation}' on '{objectName ?? "?"}' has an unreadable value '{value}': {detail}. Restore the object by hand or remove the annotation.",
        inner, objectName)
{
    public string Annotation { get; } = annotation;

    public string Value { get; } = value;
}
