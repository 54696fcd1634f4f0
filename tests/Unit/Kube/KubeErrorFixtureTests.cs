using System.Net;
using KtConnect.Engine;
using KtConnect.Engine.Kube;

namespace KtConnect.Tests.Unit.Kube;

public sealed class KubeErrorFixtureTests
{
    public static TheoryData<string, Type, string, int> Cases => new()
    {
        { "2n-put-scale-stale-rv-conflict.json", typeof(KubeConflictException), "KubeConflict", 409 },
        { "3e-patch-unsupported-content-type-415.json", typeof(KubeUnsupportedMediaTypeException), "KubeUnsupportedMediaType", 415 },
        { "3f-patch-content-type-application-json-415.json", typeof(KubeUnsupportedMediaTypeException), "KubeUnsupportedMediaType", 415 },
        { "3g-patch-json-patch-test-fails-422.json", typeof(KubeInvalidException), "KubeInvalid", 422 },
        { "4a-get-missing-pod-404.json", typeof(KubeNotFoundException), "KubeNotFound", 404 },
        { "4b-create-existing-409-alreadyexists.json", typeof(KubeAlreadyExistsException), "KubeAlreadyExists", 409 },
        { "4c-put-stale-resourceversion-409-conflict.json", typeof(KubeConflictException), "KubeConflict", 409 },
        { "4d-create-invalid-pod-422.json", typeof(KubeInvalidException), "KubeInvalid", 422 },
        { "4e-bad-bearer-token-401.json", typeof(KubeUnauthorizedException), "KubeUnauthorized", 401 },
        { "4f-anonymous-403.json", typeof(KubeForbiddenException), "KubeForbidden", 403 },
        { "4h-serviceaccount-token-no-rights-403.json", typeof(KubeForbiddenException), "KubeForbidden", 403 },
        { "4i-impersonate-nobody-403.json", typeof(KubeForbiddenException), "KubeForbidden", 403 },
        { "4j-service-clusterip-out-of-range-422.json", typeof(KubeInvalidException), "KubeInvalid", 422 },
        { "4k-malformed-json-400.json", typeof(KubeBadRequestException), "KubeBadRequest", 400 },
        { "4l-method-not-allowed-405.json", typeof(KubeMethodNotAllowedException), "KubeMethodNotAllowed", 405 },
        { "4m-unknown-resource-404.json", typeof(KubeNotFoundException), "KubeNotFound", 404 },
        { "4n-unknown-group-404.json", typeof(KubeNotFoundException), "KubeNotFound", 404 },
        { "4o-create-in-missing-namespace-404.json", typeof(KubeNotFoundException), "KubeNotFound", 404 },
        { "4q-kind-mismatch-400.json", typeof(KubeBadRequestException), "KubeBadRequest", 400 },
        { "6c-portforward-ws-portforward.k8s.io.json", typeof(KubeForbiddenException), "KubeForbidden", 403 },
        { "6h-portforward-ws-no-ports-param.json", typeof(KubeBadRequestException), "KubeBadRequest", 400 },
        { "6i-portforward-plain-http-no-upgrade-400.json", typeof(KubeBadRequestException), "KubeBadRequest", 400 },
        { "7h-exec-ws-no-stream-selected.json", typeof(KubeBadRequestException), "KubeBadRequest", 400 },
        { "7i-exec-plain-http-no-upgrade-400.json", typeof(KubeBadRequestException), "KubeBadRequest", 400 },
        { "9c-delete-missing-404.json", typeof(KubeNotFoundException), "KubeNotFound", 404 },
        { "9f-get-namespace-after-deletion-404.json", typeof(KubeNotFoundException), "KubeNotFound", 404 },
    };

    private static readonly KubeRequestInfo Info = new("list", "pods", "fixtures", null, "https://10.255.255.1:6443", "fx");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_error_fixture_becomes_its_typed_exception(string file, Type type, string errorId, int code)
    {
        var fx = KubeFixtures.Load(file);
        var ex = KubeErrorFactory.Create(KubeErrorFactory.FromResponse(KubeFixtures.Status(fx), KubeFixtures.Body(fx), null, Info));
        Assert.IsType(type, ex);
        Assert.Equal(errorId, ex.ErrorId);
        Assert.Equal(code, ex.Code);
        Assert.Contains("https://10.255.255.1:6443", ex.Message, StringComparison.Ordinal);
        Assert.Contains("fx", ex.Message, StringComparison.Ordinal);
        var body = fx.GetProperty("response").GetProperty("body");
        if (body.ValueKind == System.Text.Json.JsonValueKind.Object)
        {
            Assert.Equal(body.GetProperty("message").GetString(), ex.ServerMessage);
            Assert.Equal(body.GetProperty("reason").GetString(), ex.Reason);
            Assert.Contains(ex.ServerMessage, ex.Message, StringComparison.Ordinal);
            Assert.NotNull(ex.Status);
        }
        else if (body.ValueKind == System.Text.Json.JsonValueKind.String && body.GetString()!.Length > 0)
        {
            Assert.Contains(body.GetString()!.Trim(), ex.Message, StringComparison.Ordinal);
            Assert.Null(ex.Status);
        }
    }

    [Fact]
    public void Invalid_keeps_every_cause_with_field_and_reason()
    {
        var fx = KubeFixtures.Load("4d-create-invalid-pod-422.json");
        var ex = Assert.IsType<KubeInvalidException>(KubeErrorFactory.Create(
            KubeErrorFactory.FromResponse(422, KubeFixtures.Body(fx), null, Info)));
        var causes = ex.Details!.Causes!;
        Assert.Equal(3, causes.Count);
        Assert.Equal(["metadata.name", "spec.containers[0].image", "spec.containers[0].ports[0].containerPort"], causes.Select(c => c.Field));
        Assert.Equal(["FieldValueInvalid", "FieldValueRequired", "FieldValueInvalid"], causes.Select(c => c.Reason));
        Assert.Equal("Bad_Name", ex.Details.Name);
        Assert.Equal("Pod", ex.Details.Kind);
        Assert.Equal(KtErrorCategory.InvalidData, ex.Category);
    }

    [Fact]
    public void Forbidden_names_the_verb_and_resource_refused()
    {
        var fx = KubeFixtures.Load("4h-serviceaccount-token-no-rights-403.json");
        var ex = Assert.IsType<KubeForbiddenException>(KubeErrorFactory.Create(
            KubeErrorFactory.FromResponse(403, KubeFixtures.Body(fx), null, Info)));
        Assert.Equal("list", ex.Verb);
        Assert.Equal("pods", ex.Resource);
        Assert.StartsWith("Forbidden: list pods in namespace \"fixtures\" refused by https://10.255.255.1:6443", ex.Message, StringComparison.Ordinal);
        Assert.Contains("system:serviceaccount:fixtures:no-rights", ex.Message, StringComparison.Ordinal);
        Assert.Equal(KtErrorCategory.PermissionDenied, ex.Category);
        Assert.Equal("pods", ex.Details!.Kind);
    }

    [Fact]
    public void Conflict_keeps_details_of_the_scale_subresource()
    {
        var fx = KubeFixtures.Load("2n-put-scale-stale-rv-conflict.json");
        var ex = Assert.IsType<KubeConflictException>(KubeErrorFactory.Create(KubeErrorFactory.FromResponse(409, KubeFixtures.Body(fx), null, Info)));
        Assert.Equal("deployments", ex.Details!.Kind);
        Assert.Equal("apps", ex.Details.Group);
        Assert.Contains("the object has been modified", ex.ServerMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Unauthorized_has_no_details()
    {
        var fx = KubeFixtures.Load("4e-bad-bearer-token-401.json");
        var ex = KubeErrorFactory.Create(KubeErrorFactory.FromResponse(401, KubeFixtures.Body(fx), null, Info));
        Assert.IsType<KubeUnauthorizedException>(ex);
        Assert.Null(ex.Details);
        Assert.Equal(KtErrorCategory.AuthenticationError, ex.Category);
    }

    [Fact]
    public void Retry_after_comes_from_details_or_header()
    {
        var body = """{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too many","reason":"TooManyRequests","details":{"retryAfterSeconds":7},"code":429}"""u8.ToArray();
        var ex = KubeErrorFactory.Create(KubeErrorFactory.FromResponse(429, body, null, Info));
        Assert.IsType<KubeTooManyRequestsException>(ex);
        Assert.Equal(7, ex.RetryAfterSeconds);
        var ex2 = KubeErrorFactory.Create(KubeErrorFactory.FromResponse(503, "busy"u8, "3", Info));
        Assert.IsType<KubeServiceUnavailableException>(ex2);
        Assert.Equal(3, ex2.RetryAfterSeconds);
    }

    [Theory]
    [InlineData("Expired", 410, typeof(KubeGoneException))]
    [InlineData("Gone", 410, typeof(KubeGoneException))]
    [InlineData("NotAcceptable", 406, typeof(KubeNotAcceptableException))]
    [InlineData("RequestEntityTooLarge", 413, typeof(KubeRequestEntityTooLargeException))]
    [InlineData("InternalError", 500, typeof(KubeInternalErrorException))]
    [InlineData("ServerTimeout", 500, typeof(KubeServerTimeoutException))]
    [InlineData("Timeout", 504, typeof(KubeServerTimeoutException))]
    [InlineData("", 409, typeof(KubeConflictException))]
    [InlineData("SomethingNew", 404, typeof(KubeNotFoundException))]
    [InlineData("SomethingNew", 418, typeof(KubeApiException))]
    public void Every_reason_maps_to_a_type(string reason, int code, Type type)
    {
        var body = System.Text.Encoding.UTF8.GetBytes($$"""{"kind":"Status","apiVersion":"v1","status":"Failure","message":"m","reason":"{{reason}}","code":{{code}}}""");
        Assert.IsType(type, KubeErrorFactory.Create(KubeErrorFactory.FromResponse(code, body, null, Info)));
    }

    [Fact]
    public async Task A_non_json_404_through_the_client_is_one_clear_not_found()
    {
        var handler = new ScriptedHandler().Then(HttpStatusCode.NotFound, "404 page not found\n", "text/plain");
        using var client = ScriptedHandler.Client(handler);
        var ex = await Assert.ThrowsAsync<KubeNotFoundException>(() => client.Pods.GetAsync("x"));
        Assert.Contains("404 page not found", ex.Message, StringComparison.Ordinal);
        Assert.Contains("https://kube.test:6443", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ctx-test", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_non_json_success_body_is_a_protocol_error()
    {
        var handler = new ScriptedHandler().Then(HttpStatusCode.OK, "<html>proxy login</html>", "text/html");
        using var client = ScriptedHandler.Client(handler);
        var ex = await Assert.ThrowsAsync<KubeProtocolException>(() => client.Pods.GetAsync("x"));
        Assert.Equal("KubeUnexpectedResponse", ex.ErrorId);
        Assert.Contains("https://kube.test:6443", ex.Message, StringComparison.Ordinal);
    }
}
