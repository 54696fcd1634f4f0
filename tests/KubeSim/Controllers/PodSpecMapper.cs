using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Node;
using KtConnect.KubeSim.Store;

namespace KtConnect.KubeSim.Controllers;

/// <summary>
/// Flattens a stored Pod into the node's <see cref="PodSpecLite"/> as the kubelet would prepare a container:
/// the first container's image, ports, args, environment (values, field refs, ConfigMap/Secret key refs,
/// envFrom) and its ConfigMap/Secret volumes resolved from the store into mount path → files.
/// A reference to a missing ConfigMap or Secret that is not optional is a <see cref="PodConfigException"/>
/// (the kubelet's FailedMount / CreateContainerConfigError, retried until the object appears).
/// </summary>
public static class PodSpecMapper
{
    public static PodSpecLite Map(JsonObject pod, ObjectStore store)
    {
        var ns = pod["metadata"]!["namespace"]!.GetValue<string>();
        var name = pod["metadata"]!["name"]!.GetValue<string>();
        var spec = pod["spec"] as JsonObject ?? throw new PodConfigException("CreateContainerConfigError", "pod has no spec");
        var container = (spec["containers"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault()
            ?? throw new PodConfigException("CreateContainerConfigError", "pod has no containers");
        var image = container["image"]?.GetValue<string>() ?? "";

        var ports = new List<ContainerPortLite>();
        foreach (var p in (container["ports"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if (p["containerPort"]?.GetValue<int>() is int port)
                ports.Add(new ContainerPortLite(port, p["protocol"]?.GetValue<string>() ?? "TCP", p["name"]?.GetValue<string>()));
        }

        // Volumes first: the kubelet mounts them (FailedMount) before it builds the container's environment.
        var volumes = new Dictionary<string, IReadOnlyDictionary<string, byte[]>>(StringComparer.Ordinal);
        var declared = (spec["volumes"] as JsonArray ?? []).OfType<JsonObject>()
            .Where(v => v["name"] is not null).ToDictionary(v => v["name"]!.GetValue<string>(), StringComparer.Ordinal);
        foreach (var m in (container["volumeMounts"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var mountPath = m["mountPath"]?.GetValue<string>();
            var volName = m["name"]?.GetValue<string>();
            if (mountPath is null || volName is null || !declared.TryGetValue(volName, out var volume)) continue;
            IReadOnlyDictionary<string, byte[]>? files = null;
            if (volume["configMap"] is JsonObject cm)
                files = ConfigMapFiles(store, ns, cm["name"]?.GetValue<string>(), cm["items"] as JsonArray, Optional(cm), "volume");
            else if (volume["secret"] is JsonObject sec)
                files = SecretFiles(store, ns, sec["secretName"]?.GetValue<string>(), sec["items"] as JsonArray, Optional(sec));
            else if (volume["emptyDir"] is not null)
                files = new Dictionary<string, byte[]>();
            if (files is not null) volumes[mountPath] = files;
        }

        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var from in (container["envFrom"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var prefix = from["prefix"]?.GetValue<string>() ?? "";
            if (from["configMapRef"] is JsonObject cmRef)
            {
                foreach (var (k, v) in ConfigMapFiles(store, ns, cmRef["name"]?.GetValue<string>(), null, Optional(cmRef), "configmap")) env[prefix + k] = Encoding.UTF8.GetString(v);
            }
            if (from["secretRef"] is JsonObject sRef)
            {
                foreach (var (k, v) in SecretFiles(store, ns, sRef["name"]?.GetValue<string>(), null, Optional(sRef))) env[prefix + k] = Encoding.UTF8.GetString(v);
            }
        }
        foreach (var e in (container["env"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var key = e["name"]?.GetValue<string>();
            if (key is null) continue;
            if (e["value"] is JsonNode value) env[key] = value.GetValue<string>();
            else if (e["valueFrom"] is JsonObject vf && Resolve(vf, pod, store, ns) is { } resolved) env[key] = resolved;
            else if (e["valueFrom"] is null) env[key] = "";
        }

        var args = (container["args"] as JsonArray)?.Select(a => a?.GetValue<string>() ?? "").ToList();
        var command = (container["command"] as JsonArray)?.Select(a => a?.GetValue<string>() ?? "").ToList();
        return new PodSpecLite(ns, name, image, ports, env, volumes, args, command,
            Flag(container, "stdin"), Flag(container, "stdinOnce"), Flag(container, "tty"));
    }

    private static bool Flag(JsonObject container, string field) => container[field] is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    private static bool Optional(JsonObject o) => o["optional"]?.GetValue<bool>() ?? false;

    private static string? Resolve(JsonObject valueFrom, JsonObject pod, ObjectStore store, string ns)
    {
        if (valueFrom["fieldRef"]?["fieldPath"]?.GetValue<string>() is { } path)
        {
            return path switch
            {
                "metadata.name" => pod["metadata"]?["name"]?.GetValue<string>(),
                "metadata.namespace" => ns,
                "metadata.uid" => pod["metadata"]?["uid"]?.GetValue<string>(),
                "spec.nodeName" => pod["spec"]?["nodeName"]?.GetValue<string>(),
                "spec.serviceAccountName" => pod["spec"]?["serviceAccountName"]?.GetValue<string>(),
                "status.hostIP" => pod["status"]?["hostIP"]?.GetValue<string>(),
                _ when path.StartsWith("metadata.labels['", StringComparison.Ordinal) =>
                    pod["metadata"]?["labels"]?[path["metadata.labels['".Length..^2]]?.GetValue<string>() ?? "",
                _ when path.StartsWith("metadata.annotations['", StringComparison.Ordinal) =>
                    pod["metadata"]?["annotations"]?[path["metadata.annotations['".Length..^2]]?.GetValue<string>() ?? "",
                // status.podIP is not known before the node gives the pod its address.
                _ => "",
            };
        }
        if (valueFrom["configMapKeyRef"] is JsonObject cmk)
        {
            var key = cmk["key"]?.GetValue<string>() ?? "";
            var files = ConfigMapFiles(store, ns, cmk["name"]?.GetValue<string>(), null, Optional(cmk), "configmap");
            if (files.TryGetValue(key, out var v)) return Encoding.UTF8.GetString(v);
            if (Optional(cmk)) return null;
            throw new PodConfigException("CreateContainerConfigError", $"couldn't find key {key} in ConfigMap {ns}/{cmk["name"]}");
        }
        if (valueFrom["secretKeyRef"] is JsonObject sk)
        {
            var key = sk["key"]?.GetValue<string>() ?? "";
            var files = SecretFiles(store, ns, sk["name"]?.GetValue<string>(), null, Optional(sk));
            if (files.TryGetValue(key, out var v)) return Encoding.UTF8.GetString(v);
            if (Optional(sk)) return null;
            throw new PodConfigException("CreateContainerConfigError", $"couldn't find key {key} in Secret {ns}/{sk["name"]}");
        }
        return null;
    }

    private static Dictionary<string, byte[]> ConfigMapFiles(ObjectStore store, string ns, string? name, JsonArray? items, bool optional, string use)
    {
        var cm = name is null ? null : store.Get(ResourceTypes.ConfigMaps, ns, name);
        if (cm is null)
        {
            if (optional) return [];
            throw use == "volume"
                ? new PodConfigException("FailedMount", $"MountVolume.SetUp failed for volume \"{name}\" : configmap \"{name}\" not found")
                : new PodConfigException("CreateContainerConfigError", $"configmap \"{name}\" not found");
        }
        var all = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (k, v) in cm["data"] as JsonObject ?? []) all[k] = Encoding.UTF8.GetBytes(v?.GetValue<string>() ?? "");
        foreach (var (k, v) in cm["binaryData"] as JsonObject ?? []) all[k] = Convert.FromBase64String(v?.GetValue<string>() ?? "");
        return Select(all, items);
    }

    private static Dictionary<string, byte[]> SecretFiles(ObjectStore store, string ns, string? name, JsonArray? items, bool optional)
    {
        var secret = name is null ? null : store.Get(ResourceTypes.Secrets, ns, name);
        if (secret is null)
        {
            if (optional) return [];
            throw new PodConfigException("FailedMount", $"MountVolume.SetUp failed for volume \"{name}\" : secret \"{name}\" not found");
        }
        var all = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (k, v) in secret["data"] as JsonObject ?? []) all[k] = Convert.FromBase64String(v?.GetValue<string>() ?? "");
        foreach (var (k, v) in secret["stringData"] as JsonObject ?? []) all[k] = Encoding.UTF8.GetBytes(v?.GetValue<string>() ?? "");
        return Select(all, items);
    }

    // `items` projects chosen keys to chosen relative paths; without it every key is a file of its name.
    private static Dictionary<string, byte[]> Select(Dictionary<string, byte[]> all, JsonArray? items)
    {
        if (items is null || items.Count == 0) return all;
        var selected = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var item in items.OfType<JsonObject>())
        {
            var key = item["key"]?.GetValue<string>();
            if (key is not null && all.TryGetValue(key, out var v)) selected[item["path"]?.GetValue<string>() ?? key] = v;
        }
        return selected;
    }
}

/// <summary>A pod that cannot be prepared yet (missing ConfigMap/Secret): <see cref="Reason"/> is the kubelet's word for it.</summary>
public sealed class PodConfigException(string reason, string message)
    : Engine.KtException("KubeSimPodConfig", Engine.KtErrorCategory.ObjectNotFound, message)
{
    public string Reason { get; } = reason;
}
