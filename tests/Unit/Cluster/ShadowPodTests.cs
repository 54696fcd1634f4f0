using System.Text.Json.Nodes;
using KtConnect.Engine.Cluster;
using KtConnect.Engine;
using Microsoft.AspNetCore.Http;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Unit.Common;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class ShadowPodTests
{
    private const string Ns = "kt-test";
    private const string PublicKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 kt@laptop";

    internal static ShadowPodSpec Spec(string name, bool deployment = false) => new()
    {
        Name = name,
        Namespace = Ns,
        AuthorizedKey = PublicKey,
        User = "alice",
        UseDeployment = deployment,
        ImagePullSecret = "regcred",
        NodeSelector = new Dictionary<string, string> { ["pool"] = "dev" },
        ServiceAccount = "kt-sa",
        Quota = PodQuota.Parse("0.5c,512m"),
        ExtraLabels = new Dictionary<string, string> { ["team"] = "a" },
        ExtraAnnotations = new Dictionary<string, string> { ["note"] = "x" },
        Environment = ShadowPodSpec.ConnectEnvironment("udp", false, "corp.example"),
    };

    internal static int KtObjects(KubeSimServer server) =>
        new[] { ResourceTypes.Pods, ResourceTypes.ConfigMaps, ResourceTypes.Deployments, ResourceTypes.Services }
            .Sum(t => server.Store.List(t, Ns, LabelSelectorParse("control-by=kt")).Items.Count);

    private static KtConnect.KubeSim.Store.LabelSelector LabelSelectorParse(string s) => KtConnect.KubeSim.Store.LabelSelector.Parse(s);

    [Fact]
    public void Extra_labels_never_replace_the_labels_the_shadow_must_carry()
    {
        // A scale-mode shadow carries the Service's selector; a --withLabel app=... over it would leave the Service empty.
        var spec = Spec("orders-kt-exchange-abcde") with
        {
            Role = KtConventions.Roles.ShadowExchange,
            RoleLabels = new Dictionary<string, string> { ["app"] = "orders" },
            ExtraLabels = new Dictionary<string, string> { ["app"] = "alice", ["team"] = "a" },
        };
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders", ["team"] = "a", ["kt-role"] = "shadow-exchange", ["control-by"] = "kt" },
            spec.Labels());
    }

    [Theory]
    [InlineData("kt-role", null, "ShadowLabelReserved")]
    [InlineData("control-by", null, "ShadowLabelReserved")]
    [InlineData("team", "lots", "PodQuotaInvalid")]
    [InlineData("team", "0.5c,512Mi", null)]
    public void Shadow_options_are_checked_before_any_change(string label, string? quota, string? errorId)
    {
        var options = new KtConnect.Engine.Sessions.Exchange.ExchangeOptions
        {
            Service = "orders",
            Ports = [KtConnect.Engine.Sessions.Exchange.ExposedPort.Parse("8080")],
            Labels = new Dictionary<string, string> { [label] = "x" },
            PodQuota = quota,
        };
        Assert.Equal(errorId, (Record.Exception(options.Validate) as KtException)?.ErrorId);
        // A forward makes no shadow: it takes the shadow options and ignores them, as its help says.
        var forward = new KtConnect.Engine.Sessions.Forward.ForwardOptions { Service = "orders", Labels = options.Labels, PodQuota = quota };
        Assert.Null(Record.Exception(forward.Validate));
    }

    [Fact]
    public async Task Created_pod_and_configmap_match_kt_connect_field_by_field()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var undo = new List<(string, Func<CancellationToken, Task>)>();
        var handle = await new ShadowPods(sim.Client).CreateAsync(Spec("kt-connect-shadow-abcde"), (d, u) => undo.Add((d, u)));
        Assert.Single(undo);

        var pod = await sim.Client.Pods.GetAsync("kt-connect-shadow-abcde", Ns);
        Assert.Equal(new Dictionary<string, string> { ["control-by"] = "kt", ["kt-role"] = "shadow-connect", ["team"] = "a" }, pod.Metadata.Labels);
        var a = pod.Metadata.Annotations!;
        Assert.Equal("alice", a["kt-user"]);
        Assert.Equal("1", a["kt-ref-count"]);
        Assert.Equal("x", a["note"]);
        Assert.True(KtConventions.TryParseUnixSeconds(a["kt-last-heart-beat"], out var beat));
        Assert.InRange((sim.Client.Clock.UtcNow - beat).Duration(), TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Assert.False(a.ContainsKey("kt-config"));
        var spec = pod.Spec!;
        Assert.Equal("kt-sa", spec.ServiceAccountName);
        Assert.Equal("regcred", Assert.Single(spec.ImagePullSecrets!).Name);
        Assert.Equal("dev", spec.NodeSelector!["pool"]);
        var c = Assert.Single(spec.Containers);
        Assert.Equal("standalone", c.Name);
        Assert.Equal(KtConventions.DefaultShadowImage, c.Image);
        Assert.Equal("IfNotPresent", c.ImagePullPolicy);
        Assert.Equal(["AUDIT_WRITE"], c.SecurityContext!.Capabilities!.Add!);
        Assert.Equal(["KT_DNS_PROTOCOL=udp", "KT_LOG_LEVEL=info", "KT_LOCAL_DOMAIN=corp.example"], c.Env!.Select(e => e.Name + "=" + e.Value));
        Assert.Equal("0.5", c.Resources!.Limits!["cpu"]);
        Assert.Equal("512Mi", c.Resources.Requests!["memory"]);
        var mount = Assert.Single(c.VolumeMounts!);
        Assert.Equal(("ssh-public-key", "/root/authorized"), (mount.Name, mount.MountPath));
        var volume = Assert.Single(spec.Volumes!, v => v.Name == "ssh-public-key");
        Assert.Equal("kt-connect-shadow-abcde", volume.ConfigMap!.Name);
        var item = Assert.Single(volume.ConfigMap.Items!);
        Assert.Equal(("authorized", "authorized_keys"), (item.Key, item.Path));
        Assert.Null(c.Ports);

        var cm = await sim.Client.ConfigMaps.GetAsync("kt-connect-shadow-abcde", Ns);
        Assert.Equal("kt", cm.Metadata.Labels!["control-by"]);
        Assert.Equal("shadow-connect", cm.Metadata.Labels["kt-role"]);
        Assert.True(cm.Metadata.Annotations!.ContainsKey("kt-last-heart-beat"));
        Assert.Equal(new Dictionary<string, string> { ["authorized"] = PublicKey }, cm.Data);
        var owner = Assert.Single(cm.Metadata.OwnerReferences!);
        Assert.Equal(("Pod", pod.Metadata.Uid), (owner.Kind, owner.Uid));

        await undo[0].Item2(CancellationToken.None);
        Assert.Equal(0, KtObjects(sim.Server));
        await handle.DisposeAsync(); // idempotent
    }

    [Fact]
    public async Task Deployment_variant_keeps_control_by_off_the_template_and_sets_a_target()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var s = Spec("kt-connect-shadow-fghij", deployment: true) with
        {
            Role = KtConventions.Roles.ShadowExchange,
            Config = [new("service", "orders")],
            Ports = [ShadowPort.Default(8080), new ShadowPort(9090, "grpc")],
            AlwaysPullImage = true,
        };
        await using var handle = await new ShadowPods(sim.Client).CreateAsync(s, null);
        Assert.Matches("^[a-zA-Z]{20}$", handle.Target);
        var d = await sim.Client.Deployments.GetAsync(s.Name, Ns);
        Assert.Equal("kt", d.Metadata.Labels!["control-by"]);
        Assert.Equal(handle.Target, d.Metadata.Labels["kt-target"]);
        Assert.Equal("service=orders", d.Metadata.Annotations!["kt-config"]);
        Assert.Null(s.BuildDeployment(DateTimeOffset.UnixEpoch).Spec!.Replicas); // unset, as ktctl (the server defaults it to 1)
        Assert.NotNull(d.Spec);
        var expected = new Dictionary<string, string> { ["kt-role"] = "shadow-exchange", ["kt-target"] = handle.Target!, ["team"] = "a" };
        Assert.Equal(expected, d.Spec.Selector!.MatchLabels);
        Assert.Equal(expected, d.Spec.Template!.Metadata!.Labels);
        var c = Assert.Single(d.Spec.Template.Spec!.Containers);
        Assert.Equal("Always", c.ImagePullPolicy);
        Assert.Equal(["http-8080:8080", "grpc:9090"], c.Ports!.Select(p => p.Name + ":" + p.ContainerPort));
        Assert.Equal("Deployment", Assert.Single((await sim.Client.ConfigMaps.GetAsync(s.Name, Ns)).Metadata.OwnerReferences!).Kind);
        await handle.DeleteAsync(CancellationToken.None);
        Assert.Equal(0, KtObjects(sim.Server));
    }

    [Fact]
    public async Task Waiting_reports_progress_and_returns_the_running_pod()
    {
        await using var sim = await SimCluster.StartAsync();
        var shadows = new ShadowPods(sim.Client);
        await using var handle = await shadows.CreateAsync(Spec("kt-connect-shadow-run"), null);
        var output = new RecordingOutput();
        var pod = await shadows.WaitRunningAsync(handle, output, TimeSpan.FromSeconds(30));
        Assert.Equal("Running", pod.Status!.Phase);
        Assert.Contains(output.Progress, p => p.Completed && p.Percent == 100);
        Assert.All(output.Progress, p => Assert.Equal(ShadowPods.ProgressActivity, p.Activity));
    }

    [Fact]
    public async Task Image_pull_failure_names_the_image_and_the_flags()
    {
        var e = await WaitWithStatusAsync(pod =>
        {
            pod["spec"]!["nodeName"] = "kubesim-node";
            pod["status"] = JsonNode.Parse("""
                {"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],
                 "containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"image":"bad/image:1",
                   "state":{"waiting":{"reason":"ErrImagePull","message":"rpc error: pull access denied"}}}]}
                """);
        });
        Assert.Equal("ShadowPodImagePullFailed", e.ErrorId);
        Assert.Equal("ErrImagePull", e.Reason);
        Assert.Contains("bad/image:1", e.Message, StringComparison.Ordinal);
        Assert.Contains("--image", e.Message, StringComparison.Ordinal);
        Assert.Contains("--imagePullSecret", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unschedulable_quotes_the_scheduler()
    {
        var e = await WaitWithStatusAsync(pod => pod["status"] = JsonNode.Parse("""
            {"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable",
              "message":"0/3 nodes are available: 3 node(s) didn't match node selector."}]}
            """));
        Assert.Equal("ShadowPodUnschedulable", e.ErrorId);
        Assert.Contains("0/3 nodes are available: 3 node(s) didn't match node selector.", e.Message, StringComparison.Ordinal);
        Assert.Contains("--nodeSelector", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Crash_loop_gives_the_tail_of_the_reason()
    {
        var e = await WaitWithStatusAsync(pod =>
        {
            pod["spec"]!["nodeName"] = "kubesim-node";
            pod["status"] = JsonNode.Parse("""
                {"phase":"Running","containerStatuses":[{"name":"standalone","ready":false,"restartCount":4,
                  "state":{"waiting":{"reason":"CrashLoopBackOff","message":"back-off 40s restarting failed container"}},
                  "lastState":{"terminated":{"exitCode":255,"reason":"Error","message":"sshd: no hostkeys available -- exiting."}}}]}
                """);
        });
        Assert.Equal("ShadowPodCrashed", e.ErrorId);
        Assert.Contains("no hostkeys available", e.Message, StringComparison.Ordinal);
        Assert.Contains("exit code 255", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Timeout_names_the_phase_it_was_stuck_in()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        await using var handle = await shadows.CreateAsync(Spec("kt-connect-shadow-slow"), null);
        var e = await Assert.ThrowsAsync<ShadowPodException>(() => shadows.WaitRunningAsync(handle, null, TimeSpan.FromSeconds(1)));
        Assert.Equal("ShadowPodTimeout", e.ErrorId);
        Assert.Equal("Scheduling", e.Reason);
        Assert.Contains("scheduling", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forbidden_create_names_verb_and_resource_and_leaves_nothing()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        sim.Server.Hooks.Authorize = i => !(i.Verb == "create" && i.Resource == "pods");
        var undo = new List<Func<CancellationToken, Task>>();
        var e = await Assert.ThrowsAsync<ShadowPodException>(() => new ShadowPods(sim.Client).CreateAsync(Spec("kt-connect-shadow-deny"), (_, u) => undo.Add(u)));
        Assert.Equal("ShadowPodForbidden", e.ErrorId);
        Assert.Contains("create pods", e.Message, StringComparison.Ordinal);
        Assert.Contains("RBAC", e.Message, StringComparison.Ordinal);
        sim.Server.Hooks.Authorize = null;
        Assert.Equal(0, KtObjects(sim.Server)); // the ConfigMap made before the denial is gone
        foreach (var u in undo) await u(CancellationToken.None); // and the registered undo stays harmless
    }

    [Fact]
    public async Task Pod_security_rejection_is_told_apart_from_rbac()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        sim.Server.Hooks.BeforeRequest = async ctx =>
        {
            if (ctx.Request.Method != "POST" || !ctx.Request.Path.Value!.EndsWith("/pods", StringComparison.Ordinal)) return false;
            ctx.Response.StatusCode = 403;
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"kt-connect-shadow-psa\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true","reason":"Forbidden","details":{"name":"kt-connect-shadow-psa","kind":"pods"},"code":403}""" + "\n");
            return true;
        };
        var e = await Assert.ThrowsAsync<ShadowPodException>(() => new ShadowPods(sim.Client).CreateAsync(Spec("kt-connect-shadow-psa"), null));
        Assert.Equal("ShadowPodSecurityRejected", e.ErrorId);
        Assert.Contains("baseline", e.Message, StringComparison.Ordinal);
        sim.Server.Hooks.BeforeRequest = null;
        Assert.Equal(0, KtObjects(sim.Server));
    }

    private static async Task<ShadowPodException> WaitWithStatusAsync(Action<JsonObject> setStatus)
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var shadows = new ShadowPods(sim.Client);
        await using var handle = await shadows.CreateAsync(Spec("kt-connect-shadow-fail"), null);
        sim.Server.Store.Mutate(ResourceTypes.Pods, Ns, handle.Name, pod =>
        {
            setStatus(pod);
            return pod;
        }, keepStatus: true);
        return await Assert.ThrowsAsync<ShadowPodException>(() => shadows.WaitRunningAsync(handle, null, TimeSpan.FromSeconds(30)));
    }
}
