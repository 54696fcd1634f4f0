using KtConnect.Engine.Cluster;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class KtConventionsTests
{
    [Fact]
    public void Names_follow_kt_connect_patterns()
    {
        Assert.Matches("^kt-connect-shadow-[a-z]{5}$", KtConventions.ConnectShadowName());
        Assert.Matches("^orders-kt-exchange-[a-z]{5}$", KtConventions.ExchangeShadowName("orders"));
        Assert.Equal("orders-kt-mesh-v2", KtConventions.MeshShadowName("orders", "v2"));
        Assert.Equal("orders-kt-router", KtConventions.RouterName("orders"));
        Assert.Equal("orders-kt-stuntman", KtConventions.StuntmanName("orders"));
        Assert.Matches("^next-kt-[a-z]{5}$", KtConventions.PreviewShadowName("next"));
        Assert.Matches("^[a-zA-Z]{20}$", KtConventions.NewTarget());
        Assert.Equal("kt-connect-shadow-daemon", KtConventions.SharedShadowName);
        Assert.Equal("kt-8080", KtConventions.ServicePortName(8080));
        Assert.Equal("http-80", ShadowPort.Default(80).Name);
        Assert.Equal("standalone", KtConventions.ContainerName);
        Assert.Equal("registry.cn-hangzhou.aliyuncs.com/rdc-incubator/kt-connect-shadow:v0.3.7", KtConventions.DefaultShadowImage);
    }

    [Fact]
    public void Config_round_trips_like_String2Map()
    {
        Assert.Equal("app=billing,replicas=2", KtConventions.FormatConfig([new("app", "billing"), new("replicas", "2")]));
        var map = KtConventions.ParseConfig("app=billing, replicas=2,junk,=x,k=v=w");
        Assert.Equal("billing", map["app"]);
        Assert.Equal("2", map["replicas"]);
        Assert.Equal("v=w", map["k"]);
        Assert.Equal(3, map.Count);
        Assert.Empty(KtConventions.ParseConfig(null));
        Assert.Throws<ArgumentException>(() => KtConventions.FormatConfig([new("a", "b,c")]));
    }

    [Fact]
    public void Selector_is_json_with_sorted_keys_and_bad_json_is_typed()
    {
        var text = KtConventions.FormatSelector(new Dictionary<string, string> { ["version"] = "v1", ["app"] = "tomcat" });
        Assert.Equal("{\"app\":\"tomcat\",\"version\":\"v1\"}", text);
        Assert.Equal("tomcat", KtConventions.ParseSelector(text)["app"]);
        Assert.Equal("KtAnnotationInvalid", Assert.Throws<KtAnnotationInvalidException>(() => KtConventions.ParseSelector("app=tomcat", "ns/svc")).ErrorId);
        Assert.Throws<KtAnnotationInvalidException>(() => KtConventions.ParseSelector("{\"app\":1}"));
    }

    [Fact]
    public void Heartbeat_is_unix_seconds()
    {
        var t = new DateTimeOffset(2026, 11, 21, 15, 0, 0, TimeSpan.Zero);
        Assert.Equal("1795273200", KtConventions.FormatUnixSeconds(t));
        Assert.True(KtConventions.TryParseUnixSeconds("1795273200", out var back));
        Assert.Equal(t, back);
        Assert.False(KtConventions.TryParseUnixSeconds("soon", out _));
        Assert.False(KtConventions.TryParseUnixSeconds(null, out _));
        Assert.Equal(0, KtConventions.ParseRefCount("x"));
        Assert.Equal(3, KtConventions.ParseRefCount("3"));
    }

    [Fact]
    public void User_prefers_sudo_user()
    {
        Assert.Equal("alice", KtConventions.CurrentUser(n => n == "SUDO_USER" ? "alice" : null));
        Assert.Equal(Environment.UserName, KtConventions.CurrentUser(_ => null));
    }

    [Theory]
    [InlineData("0.5c,512m", "0.5", "512Mi")]
    [InlineData("1c", "1", null)]
    [InlineData("2g", null, "2Gi")]
    [InlineData("256Mi, 0.25c", "0.25", "256Mi")]
    [InlineData("100k", null, "100Ki")]
    public void Pod_quota_parses(string text, string? cpu, string? memory)
    {
        var q = PodQuota.Parse(text);
        Assert.Equal(cpu, q.Cpu);
        Assert.Equal(memory, q.Memory);
        var r = q.ToResources();
        Assert.Equal(r.Limits, r.Requests);
        if (cpu is not null) Assert.Equal(cpu, r.Limits!["cpu"]);
        if (memory is not null) Assert.Equal(memory, r.Limits!["memory"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("c")]
    [InlineData("-1c")]
    [InlineData("1c,2c")]
    [InlineData("512x")]
    [InlineData("1c,,512m")]
    [InlineData("512mi")]
    public void Bad_pod_quota_is_typed(string text) =>
        Assert.Equal("PodQuotaInvalid", Assert.Throws<PodQuotaInvalidException>(() => PodQuota.Parse(text)).ErrorId);
}
