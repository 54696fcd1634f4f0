using KtConnect.Engine;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Tests.Unit.Kube;

public sealed class LabelSelectorTests
{
    [Theory]
    [InlineData("", "")]
    [InlineData("app=web", "app=web")]
    [InlineData("app==web", "app=web")]
    [InlineData(" app = web , tier != db ", "app=web,tier!=db")]
    [InlineData("env in (prod, dev),!canary", "env in (dev,prod),!canary")]
    [InlineData("env notin (a),x", "env notin (a),x")]
    [InlineData("kt.dev/role=shadow", "kt.dev/role=shadow")]
    [InlineData("a=", "a=")]
    [InlineData("n>3,m<10", "n>3,m<10")]
    public void Parses_and_prints_canonically(string input, string canonical) =>
        Assert.Equal(canonical, LabelSelector.Parse(input).ToString());

    [Theory]
    [InlineData("a=b,")]
    [InlineData(",a")]
    [InlineData("a in (b")]
    [InlineData("a!b")]
    [InlineData("a b")]
    [InlineData("Bad_Prefix/x=y")]
    [InlineData("a=-bad-")]
    [InlineData("n>x")]
    [InlineData("toolonglabelnamexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=1")]
    public void Rejects_malformed_selectors(string input)
    {
        var ex = Assert.Throws<KtException>(() => LabelSelector.Parse(input));
        Assert.Equal("KubeInvalidLabelSelector", ex.ErrorId);
        Assert.False(LabelSelector.TryParse(input, out _));
    }

    [Fact]
    public void Matches_like_apimachinery()
    {
        var labels = new Dictionary<string, string> { ["app"] = "web", ["env"] = "prod", ["n"] = "5" };
        Assert.True(LabelSelector.Parse("app=web,env in (prod,dev),!canary,n>3").Matches(labels));
        Assert.False(LabelSelector.Parse("app!=web").Matches(labels));
        Assert.True(LabelSelector.Parse("missing!=x").Matches(labels));
        Assert.True(LabelSelector.Parse("env notin (dev)").Matches(labels));
        Assert.False(LabelSelector.Parse("n<5").Matches(labels));
        Assert.True(LabelSelector.Everything.Matches(null));
        Assert.False(LabelSelector.Parse("app").Matches(null));
    }

    [Fact]
    public void Builds_from_labels_and_specs()
    {
        var s = LabelSelector.Everything.Equal("control-by", "kt").In("kt-role", "shadow", "router").DoesNotExist("gone");
        Assert.Equal("control-by=kt,kt-role in (router,shadow),!gone", s.ToString());
        Assert.Equal("a=1,b=2", LabelSelector.FromLabels(new Dictionary<string, string> { ["b"] = "2", ["a"] = "1" }).ToString());
        var spec = new LabelSelectorSpec
        {
            MatchLabels = new() { ["app"] = "x" },
            MatchExpressions = [new LabelSelectorRequirementSpec { Key = "tier", Operator = "NotIn", Values = ["db"] }, new() { Key = "k", Operator = "Exists" }],
        };
        Assert.Equal("app=x,tier notin (db),k", LabelSelector.FromSpec(spec).ToString());
    }
}
