using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class PatchTests
{
    private static JsonNode Parse(string json) => JsonNode.Parse(json)!;

    [Fact]
    public void Merge_patch_merges_objects_deletes_nulls_and_replaces_lists()
    {
        var result = Patches.MergePatch(Parse("""{"a":{"b":1,"c":2},"l":[1,2],"x":"keep"}"""), Parse("""{"a":{"b":null,"d":3},"l":[3]}"""));
        Assert.True(JsonNode.DeepEquals(Parse("""{"a":{"c":2,"d":3},"l":[3],"x":"keep"}"""), result));
    }

    [Fact]
    public void Json_patch_applies_every_operation_and_a_failed_test_is_the_generic_422()
    {
        var doc = Parse("""{"a":{"b":[1,2,3]},"m":{"k/x":"v"}}""");
        var result = Patches.JsonPatch(doc, (JsonArray)Parse("""
            [{"op":"test","path":"/m/k~1x","value":"v"},
             {"op":"add","path":"/a/b/1","value":9},
             {"op":"remove","path":"/a/b/0"},
             {"op":"replace","path":"/m/k~1x","value":"w"},
             {"op":"copy","from":"/m","path":"/n"},
             {"op":"move","from":"/n","path":"/o"},
             {"op":"add","path":"/a/b/-","value":4}]
            """));
        Assert.True(JsonNode.DeepEquals(Parse("""{"a":{"b":[9,2,3,4]},"m":{"k/x":"w"},"o":{"k/x":"w"}}"""), result), result!.ToJsonString());

        var e = Assert.Throws<KubeApiException>(() => Patches.JsonPatch(doc, (JsonArray)Parse("""[{"op":"test","path":"/a/b/0","value":7}]""")));
        Assert.Equal(422, e.Code);
        Assert.Equal("the server rejected our request due to an error in our request", e.Status["message"]!.GetValue<string>());
        Assert.Throws<KubeApiException>(() => Patches.JsonPatch(doc, (JsonArray)Parse("""[{"op":"remove","path":"/nope"}]""")));
    }

    [Fact]
    public void Strategic_merge_merges_containers_env_ports_and_volumes_by_their_keys()
    {
        var deployment = Parse("""
            {"spec":{"template":{"spec":{
              "containers":[{"name":"app","image":"a:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}],"ports":[{"containerPort":80,"protocol":"TCP"}]},
                            {"name":"side","image":"s:1"}],
              "volumes":[{"name":"v1","emptyDir":{}}]}}}}
            """);
        var patch = Parse("""
            {"spec":{"template":{"spec":{
              "containers":[{"name":"app","image":"a:2","env":[{"name":"B","value":"3"},{"name":"C","value":"4"}],"ports":[{"containerPort":8080}]}],
              "volumes":[{"name":"v2","configMap":{"name":"cm"}}]}}}}
            """);
        var result = Patches.StrategicMergePatch(deployment, patch)!;
        var containers = result["spec"]!["template"]!["spec"]!["containers"]!.AsArray();
        Assert.Equal(2, containers.Count);
        var app = containers.Single(c => c!["name"]!.GetValue<string>() == "app")!;
        Assert.Equal("a:2", app["image"]!.GetValue<string>());
        Assert.Equal("B=3,C=4,A=1", string.Join(',', app["env"]!.AsArray().Select(e => e!["name"] + "=" + e["value"])));
        Assert.Equal("8080,80", string.Join(',', app["ports"]!.AsArray().Select(p => p!["containerPort"]!.ToJsonString())));
        Assert.Equal("v2,v1", string.Join(',', result["spec"]!["template"]!["spec"]!["volumes"]!.AsArray().Select(v => v!["name"]!.GetValue<string>())));
    }

    [Fact]
    public void Strategic_merge_honours_patch_delete_and_replace_directives()
    {
        var doc = Parse("""{"spec":{"containers":[{"name":"a","image":"1"},{"name":"b","image":"2"}],"selector":{"x":"1","y":"2"}}}""");
        var deleted = Patches.StrategicMergePatch(doc, Parse("""{"spec":{"containers":[{"name":"a","$patch":"delete"}]}}"""))!;
        Assert.Equal("b", deleted["spec"]!["containers"]![0]!["name"]!.GetValue<string>());
        Assert.Single(deleted["spec"]!["containers"]!.AsArray());

        var replaced = Patches.StrategicMergePatch(doc, Parse("""{"spec":{"selector":{"$patch":"replace","z":"3"}}}"""))!;
        Assert.True(JsonNode.DeepEquals(Parse("""{"z":"3"}"""), replaced["spec"]!["selector"]));

        var replacedList = Patches.StrategicMergePatch(doc, Parse("""{"spec":{"containers":[{"name":"c","image":"3"},{"$patch":"replace"}]}}"""))!;
        Assert.Equal("c", string.Join(',', replacedList["spec"]!["containers"]!.AsArray().Select(c => c!["name"]!.GetValue<string>())));

        var nulled = Patches.StrategicMergePatch(doc, Parse("""{"spec":{"selector":{"x":null}}}"""))!;
        Assert.True(JsonNode.DeepEquals(Parse("""{"y":"2"}"""), nulled["spec"]!["selector"]));
    }

    [Fact]
    public void Strategic_merge_replaces_lists_without_a_merge_key()
    {
        var doc = Parse("""{"spec":{"args":["a","b"],"finalizers":["x"]}}""");
        var result = Patches.StrategicMergePatch(doc, Parse("""{"spec":{"args":["c"],"finalizers":["y"]}}"""))!;
        Assert.Equal("""["c"]""", result["spec"]!["args"]!.ToJsonString());
        Assert.Equal("""["x","y"]""", result["spec"]!["finalizers"]!.ToJsonString());
    }
}
