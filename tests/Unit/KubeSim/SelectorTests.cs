using System.Text.Json.Nodes;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Unit.KubeSim;

public sealed class SelectorTests
{
    private static readonly Dictionary<string, string> Labels = new() { ["app"] = "web", ["tier"] = "front", ["n"] = "5" };

    [Theory]
    [InlineData("", true)]
    [InlineData("app=web", true)]
    [InlineData("app==web", true)]
    [InlineData("app!=web", false)]
    [InlineData("app!=db", true)]
    [InlineData("missing!=x", true)]
    [InlineData("app in (db, web)", true)]
    [InlineData("app in (db)", false)]
    [InlineData("app notin (db)", true)]
    [InlineData("missing notin (db)", true)]
    [InlineData("tier", true)]
    [InlineData("!tier", false)]
    [InlineData("! missing", true)]
    [InlineData("app=web,tier=front", true)]
    [InlineData("app=web,tier=back", false)]
    [InlineData("n>4", true)]
    [InlineData("n<5", false)]
    [InlineData("example.com/key=web", false)]
    public void Label_selector_matches_like_apimachinery(string selector, bool matches) =>
        Assert.Equal(matches, LabelSelector.Parse(selector).Matches(Labels));

    [Theory]
    [InlineData("app in web")]
    [InlineData("app in (a")]
    [InlineData("=x")]
    [InlineData("app=web,")]
    [InlineData("app ~ x")]
    public void Malformed_label_selectors_are_400(string selector)
    {
        var e = Assert.Throws<KubeApiException>(() => LabelSelector.Parse(selector));
        Assert.Equal(400, e.Code);
        Assert.StartsWith("unable to parse requirement", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("metadata.name=p1", true)]
    [InlineData("metadata.namespace==ns", true)]
    [InlineData("status.phase=Running,spec.nodeName=node-a", true)]
    [InlineData("status.phase!=Running", false)]
    [InlineData("spec.nodeName=", false)]
    [InlineData("spec.missing=", true)]
    public void Field_selector_matches_dotted_paths(string selector, bool matches)
    {
        var pod = JsonNode.Parse("""{"metadata":{"name":"p1","namespace":"ns"},"spec":{"nodeName":"node-a"},"status":{"phase":"Running"}}""")!.AsObject();
        Assert.Equal(matches, FieldSelector.Parse(selector).Matches(pod));
    }

    [Fact]
    public void Scale_selector_string_is_sorted_like_the_real_formatter()
    {
        var selector = JsonNode.Parse("""{"matchLabels":{"b":"2","a":"1"},"matchExpressions":[{"key":"c","operator":"In","values":["y","x"]},{"key":"d","operator":"DoesNotExist"}]}""")!.AsObject();
        Assert.Equal("!d,a=1,b=2,c in (x,y)", LabelSelector.Format(selector));
    }

    [Fact]
    public void Go_json_escaping_matches_encoding_json()
    {
        var node = new JsonObject { ["s"] = "a<b>&\"\\\n\t\u0001 é 'x' +" };
        Assert.Equal("{\"s\":\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\t\\u0001 é 'x' +\"}\n",
            System.Text.Encoding.UTF8.GetString(KubeJson.ToBytesWithNewline(node)));
    }
}
