using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>Our client against the in-process KubeSim API server: REST verbs, errors, retries.</summary>
public sealed class KubeSimRestTests
{
    private static ConfigMap Cm(string name, Dictionary<string, string>? labels = null) => new()
    {
        Metadata = new ObjectMeta { Name = name, Labels = labels },
        Data = new() { ["k"] = "v" },
    };

    private static Pod PodOf(string name, Dictionary<string, string> labels) => new()
    {
        Metadata = new ObjectMeta { Name = name, Labels = labels },
        Spec = new PodSpec { Containers = [new Container { Name = "c", Image = "busybox" }] },
    };

    [Fact]
    public async Task Crud_keeps_unknown_fields_and_bumps_the_resource_version()
    {
        await using var sim = await SimCluster.StartAsync();
        var created = await sim.Client.ConfigMaps.CreateAsync(Cm("cm1"));
        Assert.Equal("kt-test", created.Metadata.Namespace);
        Assert.False(string.IsNullOrEmpty(created.Metadata.Uid));

        // A field this client does not know survives get and replace.
        sim.Server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm2","namespace":"kt-test"},"futureField":{"x":[1,2]}}""");
        var cm2 = await sim.Client.ConfigMaps.GetAsync("cm2");
        cm2.Data = new() { ["added"] = "yes" };
        var replaced = await sim.Client.ConfigMaps.ReplaceAsync(cm2);
        Assert.NotEqual(cm2.Metadata.ResourceVersion, replaced.Metadata.ResourceVersion);
        Assert.Equal("""{"x":[1,2]}""", replaced.ExtensionData!["futureField"].GetRawText());
        Assert.Equal("yes", (await sim.Client.ConfigMaps.GetAsync("cm2")).Data!["added"]);

        var list = await sim.Client.ConfigMaps.ListAsync();
        Assert.Equal(["cm1", "cm2"], list.Items.Select(i => i.Metadata.Name).Order());
        Assert.All(list.Items, i => Assert.Equal("ConfigMap", i.Kind));

        var deleted = await sim.Client.ConfigMaps.DeleteAsync("cm1");
        Assert.Equal("Success", deleted.Status!.Status);
        Assert.Null(deleted.Object);
        var ex = await Assert.ThrowsAsync<KubeNotFoundException>(() => sim.Client.ConfigMaps.GetAsync("cm1"));
        Assert.Equal("KubeNotFound", ex.ErrorId);
        Assert.Contains("configmaps \"cm1\"", ex.Message, StringComparison.Ordinal);
        Assert.Null(await sim.Client.ConfigMaps.TryGetAsync("cm1"));
        Assert.False(await sim.Client.ConfigMaps.DeleteIfExistsAsync("cm1"));
        await Assert.ThrowsAsync<KubeAlreadyExistsException>(() => sim.Client.ConfigMaps.CreateAsync(Cm("cm2")));
        Assert.True(sim.Client.Clock.IsKnown);
    }

    [Fact]
    public async Task A_stale_replace_conflicts_and_update_with_retry_reapplies()
    {
        await using var sim = await SimCluster.StartAsync();
        var original = await sim.Client.ConfigMaps.CreateAsync(Cm("cm"));
        await sim.Client.ConfigMaps.PatchAsync("cm", KubePatch.Merge("""{"data":{"other":"1"}}"""));
        original.Data!["k"] = "stale";
        var conflict = await Assert.ThrowsAsync<KubeConflictException>(() => sim.Client.ConfigMaps.ReplaceAsync(original));
        Assert.Contains("the object has been modified", conflict.ServerMessage, StringComparison.Ordinal);

        var calls = 0;
        var updated = await sim.Client.ConfigMaps.UpdateWithRetryAsync("cm", cm =>
        {
            calls++;
            if (calls == 1)
            {
                // Another writer gets in between our read and our write: the first PUT must conflict.
                sim.Server.Apply("""{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"kt-test"},"data":{"k":"v","other":"2"}}""");
            }
            cm.Data!["mine"] = "x";
            return true;
        });
        Assert.Equal(2, calls);
        Assert.Equal("x", updated.Data!["mine"]);
        Assert.Equal("2", updated.Data["other"]);

        // A mutation that changes nothing sends no PUT.
        var before = sim.Server.Hooks.Requests.Count(r => r.Method == "PUT");
        await sim.Client.ConfigMaps.UpdateWithRetryAsync("cm", _ => false);
        Assert.Equal(before, sim.Server.Hooks.Requests.Count(r => r.Method == "PUT"));
    }

    [Fact]
    public async Task Selectors_and_paging()
    {
        await using var sim = await SimCluster.StartAsync();
        await sim.Client.Pods.CreateAsync(PodOf("a1", new() { ["app"] = "a", ["tier"] = "web" }));
        await sim.Client.Pods.CreateAsync(PodOf("a2", new() { ["app"] = "a", ["tier"] = "db" }));
        await sim.Client.Pods.CreateAsync(PodOf("b1", new() { ["app"] = "b" }));
        for (var i = 0; i < 5; i++) await sim.Client.ConfigMaps.CreateAsync(Cm("cm" + i));

        var sel = LabelSelector.Everything.Equal("app", "a").NotIn("tier", "db");
        var pods = await sim.Client.Pods.ListAsync(options: new ListOptions { LabelSelector = sel.ToString() });
        Assert.Equal(["a1"], pods.Items.Select(p => p.Metadata.Name));
        var byField = await sim.Client.Pods.ListAsync(options: new ListOptions { FieldSelector = "metadata.name=b1" });
        Assert.Equal(["b1"], byField.Items.Select(p => p.Metadata.Name));
        var everywhere = await sim.Client.Pods.ListAsync(KubeClient.AllNamespaces, new ListOptions { LabelSelector = "app" });
        Assert.Equal(3, everywhere.Items.Count);

        var page = await sim.Client.ConfigMaps.ListAsync(options: new ListOptions { Limit = 2 });
        Assert.Equal(2, page.Items.Count);
        Assert.False(string.IsNullOrEmpty(page.Metadata.Continue));
        var all = await sim.Client.ConfigMaps.ListAllAsync(pageSize: 2);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => "cm" + i), all.Items.Select(c => c.Metadata.Name!).Where(n => n.StartsWith("cm", StringComparison.Ordinal)).Order());
        Assert.Null(all.Metadata.Continue);
        Assert.False(string.IsNullOrEmpty(all.Metadata.ResourceVersion));
        Assert.True(sim.Server.Hooks.Requests.Count(r => r.PathAndQuery.Contains("continue=", StringComparison.Ordinal)) >= 2);
    }

    [Fact]
    public async Task The_three_patch_types_send_their_content_types()
    {
        await using var sim = await SimCluster.StartAsync();
        await sim.Client.Services.CreateAsync(new Service
        {
            Metadata = new ObjectMeta { Name = "svc" },
            Spec = new ServiceSpec { Selector = new() { ["app"] = "a" }, Ports = [new ServicePort { Name = "ssh", Port = 22, TargetPort = 22 }] },
        });
        var merged = await sim.Client.Services.PatchAsync("svc", KubePatch.Merge(new JsonObject
        {
            ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { ["kt-selector"] = "app=a" } },
            ["spec"] = new JsonObject { ["selector"] = new JsonObject { ["tier"] = "web" } },
        }));
        Assert.Equal("app=a", merged.Metadata.GetAnnotation("kt-selector"));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "a", ["tier"] = "web" }, merged.Spec!.Selector);

        var json = await sim.Client.Services.PatchAsync("svc", KubePatch.Json(new JsonPatchBuilder()
            .Test("/spec/selector/app", "a")
            .Add("/metadata/annotations/" + JsonPatchBuilder.Escape("kt/original"), "x")
            .Remove("/spec/selector/tier")));
        Assert.Equal("x", json.Metadata.GetAnnotation("kt/original"));
        Assert.Equal(new Dictionary<string, string> { ["app"] = "a" }, json.Spec!.Selector);

        var strategic = await sim.Client.Services.PatchAsync("svc",
            KubePatch.StrategicMerge("""{"spec":{"ports":[{"name":"alt","port":2222,"targetPort":22}]}}"""));
        Assert.Equal([22, 2222], strategic.Spec!.Ports!.Select(p => p.Port).Order());

        var failed = await Assert.ThrowsAsync<KubeInvalidException>(() => sim.Client.Services.PatchAsync("svc",
            KubePatch.Json(new JsonPatchBuilder().Test("/spec/selector/app", "nope"))));
        Assert.Equal(422, failed.Code);

        var types = sim.Server.Hooks.Requests.Where(r => r.Method == "PATCH").Select(r => r.ContentType ?? "").ToArray();
        Assert.Equal(["application/merge-patch+json", "application/json-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json"], types);
    }

    [Fact]
    public async Task Scale_get_patch_and_replace_with_conflict()
    {
        await using var sim = await SimCluster.StartAsync();
        await sim.Client.Deployments.CreateAsync(new Deployment
        {
            Metadata = new ObjectMeta { Name = "web" },
            Spec = new DeploymentSpec
            {
                Replicas = 2,
                Selector = new LabelSelectorSpec { MatchLabels = new() { ["app"] = "web" } },
                Template = new PodTemplateSpec
                {
                    Metadata = new ObjectMeta { Labels = new() { ["app"] = "web" } },
                    Spec = new PodSpec { Containers = [new Container { Name = "c", Image = "nginx" }] },
                },
            },
        });
        var scale = await sim.Client.Deployments.GetScaleAsync("web");
        Assert.Equal(2, scale.Spec!.Replicas);
        Assert.Equal("autoscaling/v1", scale.ApiVersion);
        var patched = await sim.Client.Deployments.SetReplicasAsync("web", 1);
        Assert.Equal(1, patched.Spec!.Replicas);
        Assert.Equal(1, (await sim.Client.Deployments.GetAsync("web")).Spec!.Replicas);

        var fresh = await sim.Client.Deployments.GetScaleAsync("web");
        fresh.Spec!.Replicas = 3;
        var replaced = await sim.Client.Deployments.ReplaceScaleAsync("web", fresh);
        Assert.Equal(3, replaced.Spec!.Replicas);
        scale.Spec.Replicas = 1; // still carries the first resourceVersion
        var ex = await Assert.ThrowsAsync<KubeConflictException>(() => sim.Client.Deployments.ReplaceScaleAsync("web", scale));
        Assert.Equal("deployments.apps/scale", ex.Resource);
    }

    [Fact]
    public async Task Delete_returns_the_status_or_the_gracefully_deleted_object()
    {
        await using var sim = await SimCluster.StartAsync();
        var pod = PodOf("p", new() { ["app"] = "p" });
        pod.Spec!.NodeName = "kubesim-node";
        await sim.Client.Pods.CreateAsync(pod);
        var graceful = await sim.Client.Pods.DeleteAsync("p", options: new DeleteOptions { GracePeriodSeconds = 30, PropagationPolicy = PropagationPolicy.Background });
        Assert.NotNull(graceful.Object);
        Assert.NotNull(graceful.Object.Metadata.DeletionTimestamp);
        Assert.Contains(sim.Server.Hooks.Requests, r => r.Method == "DELETE" && r.PathAndQuery.Contains("gracePeriodSeconds=30&propagationPolicy=Background", StringComparison.Ordinal));

        await sim.Client.ConfigMaps.CreateAsync(Cm("cm"));
        var uidMismatch = await Assert.ThrowsAsync<KubeConflictException>(() => sim.Client.ConfigMaps.DeleteAsync("cm", options: new DeleteOptions { PreconditionUid = "other" }));
        Assert.Contains("Precondition failed", uidMismatch.ServerMessage, StringComparison.Ordinal);
        Assert.NotNull((await sim.Client.ConfigMaps.DeleteAsync("cm")).Status);
    }

    [Fact]
    public async Task Too_many_requests_are_retried_after_retry_after_and_then_surface()
    {
        await using var sim = await SimCluster.StartAsync();
        var refusals = 2;
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (!ctx.Request.Path.Value!.Contains("/configmaps", StringComparison.Ordinal) || Interlocked.Decrement(ref refusals) < 0) return false;
            ctx.Response.StatusCode = 429;
            ctx.Response.Headers["Retry-After"] = "0";
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":0},"code":429}""" + "\n");
            return true;
        };
        var list = await sim.Client.ConfigMaps.ListAsync();
        Assert.NotNull(list);
        Assert.Equal(3, sim.Server.Hooks.Requests.Count(r => r.PathAndQuery.EndsWith("/configmaps", StringComparison.Ordinal)));

        refusals = 100;
        var ex = await Assert.ThrowsAsync<KubeTooManyRequestsException>(() => sim.Client.ConfigMaps.ListAsync());
        Assert.Equal(0, ex.RetryAfterSeconds);
        Assert.Equal(3 + 1 + sim.Client.Options.MaxThrottleRetries, sim.Server.Hooks.Requests.Count(r => r.PathAndQuery.EndsWith("/configmaps", StringComparison.Ordinal)));
    }

    private sealed class RotatingCredentials(string first, string second) : IKubeCredentials
    {
        public int Refreshes { get; private set; }
        public System.Security.Cryptography.X509Certificates.X509Certificate2? CurrentClientCertificate => null;

        public ValueTask ApplyAsync(Action<string, string> setHeader, CancellationToken cancellationToken)
        {
            setHeader("Authorization", "Bearer " + (Refreshes == 0 ? first : second));
            return ValueTask.CompletedTask;
        }

        public ValueTask<bool> OnUnauthorizedAsync(CancellationToken cancellationToken)
        {
            Refreshes++;
            return ValueTask.FromResult(Refreshes == 1);
        }
    }

    [Fact]
    public async Task Unauthorized_refreshes_credentials_once_then_surfaces()
    {
        await using var sim = await SimCluster.StartAsync();
        var rotating = new RotatingCredentials("expired-token", sim.Server.AdminToken);
        using var client = sim.NewClient(rotating);
        Assert.NotNull(await client.Namespaces.GetAsync("kt-test"));
        Assert.Equal(1, rotating.Refreshes);

        using var bad = sim.NewClient(new StaticCredentials("nobody-knows-me"));
        var ex = await Assert.ThrowsAsync<KubeUnauthorizedException>(() => bad.Pods.ListAsync());
        Assert.Equal(401, ex.Code);
        Assert.Contains("kubesim-ctx", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forbidden_names_what_was_refused_and_can_i_agrees()
    {
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.Authorize = info => !(info.Resource == "pods" && info.Verb == "list") || info.Namespace != "kt-test";
        var ex = await Assert.ThrowsAsync<KubeForbiddenException>(() => sim.Client.Pods.ListAsync());
        Assert.Equal("list", ex.Verb);
        Assert.Contains("cannot list resource \"pods\"", ex.ServerMessage, StringComparison.Ordinal);
        Assert.StartsWith("Forbidden: list pods in namespace \"kt-test\"", ex.Message, StringComparison.Ordinal);
        var review = await sim.Client.CanIAsync("list", "pods");
        Assert.False(review.Allowed);
        Assert.True((await sim.Client.CanIAsync("get", "pods")).Allowed);
    }

    [Fact]
    public async Task A_server_url_with_a_path_prefix_is_kept_for_rest_watch_and_websockets()
    {
        await using var sim = await SimCluster.StartAsync(new KtConnect.KubeSim.Api.KubeSimOptions { PathPrefix = "/k8s/clusters/c-1" });
        await sim.Client.ConfigMaps.CreateAsync(Cm("cm"));
        Assert.Single((await sim.Client.ConfigMaps.ListAsync()).Items);
        await foreach (var ev in sim.Client.ConfigMaps.WatchAsync(null, new WatchOptions { TimeoutSeconds = 1 }))
            Assert.Equal("cm", ev.Object!.Metadata.Name);
        await sim.Client.Pods.CreateAsync(PodOf("box", new() { ["app"] = "box" }));
        Assert.Equal("x\n", (await sim.Client.RunAsync("box", ["echo", "x"])).Stdout);
        Assert.All(sim.Server.Hooks.Requests, r => Assert.StartsWith("/k8s/clusters/c-1/", r.PathAndQuery, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tls_server_name_is_sent_as_host_for_rest_and_websockets()
    {
        await using var sim = await SimCluster.StartAsync(new KtConnect.KubeSim.Api.KubeSimOptions { ExtraCertificateNames = ["api.kubesim.test"] });
        var config = sim.Configuration(new StaticCredentials(sim.Server.AdminToken));
        using var client = new KubeClient(new KubeClientConfiguration
        {
            Server = config.Server,
            ContextName = config.ContextName,
            Namespace = config.Namespace,
            CertificateAuthorities = config.CertificateAuthorities,
            Credentials = config.Credentials,
            TlsServerName = "api.kubesim.test",
        });
        await client.Pods.CreateAsync(PodOf("box", new() { ["app"] = "box" }));
        Assert.Equal("x\n", (await client.RunAsync("box", ["echo", "x"])).Stdout);
    }

    [Fact]
    public async Task Version_and_raw_get()
    {
        await using var sim = await SimCluster.StartAsync();
        Assert.StartsWith("v1.", await sim.Client.GetServerVersionAsync(), StringComparison.Ordinal);
        var nodes = await sim.Client.Nodes.ListAsync();
        Assert.Contains(nodes.Items, n => n.Status!.Addresses!.Any(a => a.Type == "InternalIP"));
        var svc = await sim.Client.Services.GetAsync("kubernetes", "default");
        Assert.Equal(443, svc.Spec!.Ports![0].Port);
        Assert.Equal(6443, svc.Spec.Ports[0].TargetPort!.Value.IntValue);
    }
}
