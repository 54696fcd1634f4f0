using System.Text;
using System.Text.Json.Nodes;
using KtConnect.KubeSim.Controllers;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>A stored Pod flattened for the node: image, ports, args, env and ConfigMap/Secret volumes.</summary>
public sealed class PodSpecMapperTests
{
    private readonly ObjectStore _store = new();

    public PodSpecMapperTests()
    {
        _store.Create(ResourceTypes.Namespaces, null, new JsonObject { ["metadata"] = new JsonObject { ["name"] = "ns" } });
    }

    private JsonObject Pod(string containerJson, string volumesJson = "[]") =>
        _store.Create(ResourceTypes.Pods, "ns", (JsonObject)JsonNode.Parse(
            "{\"metadata\":{\"name\":\"p\",\"labels\":{\"app\":\"a\"}},\"spec\":{\"containers\":[" + containerJson + "],\"volumes\":" + volumesJson + "}}")!);

    [Fact]
    public void Image_ports_args_and_every_kind_of_env_are_resolved()
    {
        _store.Create(ResourceTypes.ConfigMaps, "ns", (JsonObject)JsonNode.Parse("""{"metadata":{"name":"cm"},"data":{"mode":"fast","level":"3"}}""")!);
        _store.Create(ResourceTypes.Secrets, "ns", (JsonObject)JsonNode.Parse("""{"metadata":{"name":"s"},"data":{"token":"czNjcjN0"}}""")!);
        var pod = Pod("""
            {"name":"c","image":"ktconnect/echo:1","args":["--x"],"ports":[{"containerPort":8080,"name":"http"},{"containerPort":53,"protocol":"UDP"}],
             "envFrom":[{"configMapRef":{"name":"cm"},"prefix":"CM_"}],
             "env":[{"name":"A","value":"1"},{"name":"MODE","valueFrom":{"configMapKeyRef":{"name":"cm","key":"mode"}}},
                    {"name":"TOKEN","valueFrom":{"secretKeyRef":{"name":"s","key":"token"}}},
                    {"name":"NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
                    {"name":"APP","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['app']"}}},
                    {"name":"GONE","valueFrom":{"configMapKeyRef":{"name":"missing","key":"k","optional":true}}}]}
            """);

        var spec = PodSpecMapper.Map(pod, _store);

        Assert.Equal("ns/p", spec.Key);
        Assert.Equal("ktconnect/echo:1", spec.Image);
        Assert.Equal(["--x"], spec.Args!);
        Assert.Equal([(8080, "TCP", "http"), (53, "UDP", null)], spec.ContainerPorts.Select(p => (p.Port, p.Protocol, p.Name)));
        Assert.Equal("1", spec.Env["A"]);
        Assert.Equal("fast", spec.Env["MODE"]);
        Assert.Equal("s3cr3t", spec.Env["TOKEN"]);
        Assert.Equal("p", spec.Env["NAME"]);
        Assert.Equal("a", spec.Env["APP"]);
        Assert.Equal("3", spec.Env["CM_level"]);
        Assert.False(spec.Env.ContainsKey("GONE"));
    }

    [Fact]
    public void Volumes_become_files_per_mount_path_with_items_binary_data_and_secrets()
    {
        _store.Create(ResourceTypes.ConfigMaps, "ns", (JsonObject)JsonNode.Parse("""{"metadata":{"name":"cm"},"data":{"a":"x","b":"y"},"binaryData":{"bin":"AAE="}}""")!);
        _store.Create(ResourceTypes.Secrets, "ns", (JsonObject)JsonNode.Parse("""{"metadata":{"name":"s"},"data":{"key":"czNjcjN0"}}""")!);
        var pod = Pod(
            """{"name":"c","image":"i","volumeMounts":[{"name":"all","mountPath":"/cfg"},{"name":"one","mountPath":"/one"},{"name":"sec","mountPath":"/sec"},{"name":"tmp","mountPath":"/tmp/x"},{"name":"undeclared","mountPath":"/u"}]}""",
            """[{"name":"all","configMap":{"name":"cm"}},{"name":"one","configMap":{"name":"cm","items":[{"key":"b","path":"renamed"}]}},{"name":"sec","secret":{"secretName":"s"}},{"name":"tmp","emptyDir":{}}]""");

        var spec = PodSpecMapper.Map(pod, _store);

        Assert.Equal(["/cfg", "/one", "/sec", "/tmp/x"], spec.Volumes.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("x", Encoding.UTF8.GetString(spec.Volumes["/cfg"]["a"]));
        Assert.Equal(new byte[] { 0, 1 }, spec.Volumes["/cfg"]["bin"]);
        Assert.Equal(["renamed"], spec.Volumes["/one"].Keys);
        Assert.Equal("s3cr3t", Encoding.UTF8.GetString(spec.Volumes["/sec"]["key"]));
        Assert.Empty(spec.Volumes["/tmp/x"]);
    }

    [Fact]
    public void A_missing_volume_source_is_FailedMount_and_a_missing_env_key_is_CreateContainerConfigError()
    {
        var mount = Pod("""{"name":"c","image":"i","volumeMounts":[{"name":"v","mountPath":"/v"}]}""", """[{"name":"v","configMap":{"name":"nope"}}]""");
        Assert.Equal("FailedMount", Assert.Throws<PodConfigException>(() => PodSpecMapper.Map(mount, _store)).Reason);
        _store.Delete(ResourceTypes.Pods, "ns", "p");

        _store.Create(ResourceTypes.ConfigMaps, "ns", (JsonObject)JsonNode.Parse("""{"metadata":{"name":"cm"},"data":{}}""")!);
        var env = Pod("""{"name":"c","image":"i","env":[{"name":"X","valueFrom":{"configMapKeyRef":{"name":"cm","key":"absent"}}}]}""");
        var e = Assert.Throws<PodConfigException>(() => PodSpecMapper.Map(env, _store));
        Assert.Equal("CreateContainerConfigError", e.Reason);
        Assert.Contains("absent", e.Message, StringComparison.Ordinal);
    }
}
