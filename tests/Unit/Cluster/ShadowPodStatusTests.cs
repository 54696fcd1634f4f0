using System.Text.Json;
using KtConnect.Engine.Cluster;
using KtConnect.Engine.Kube.Json;
using KtConnect.Engine.Kube.Models;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class ShadowPodStatusTests
{
    private static Pod Pod(string json) =>
        JsonSerializer.Deserialize("""{"metadata":{"name":"kt-connect-shadow-x"},"spec":{"containers":[{"name":"standalone","image":"img:1"}]}""" + json + "}",
            KubeJsonContext.Default.Pod)!;

    [Theory]
    [InlineData("", ShadowPodStage.Scheduling, 20)]
    [InlineData(""","status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],"containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ContainerCreating"}}}]}""", ShadowPodStage.PullingImage, 50)]
    [InlineData(""","status":{"phase":"Running","conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"False"}],"containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"state":{"running":{}}}]}""", ShadowPodStage.Starting, 80)]
    [InlineData(""","status":{"phase":"Running","conditions":[{"type":"PodScheduled","status":"True"},{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"standalone","ready":true,"restartCount":0,"state":{"running":{}}}]}""", ShadowPodStage.Ready, 100)]
    public void Stages_and_percentages(string status, ShadowPodStage stage, int percent)
    {
        var p = ShadowPodStatus.Evaluate(Pod(status));
        Assert.Null(p.Failure);
        Assert.Equal(stage, p.Stage);
        Assert.Equal(percent, p.Percent);
        Assert.Equal(stage == ShadowPodStage.Ready, p.IsReady);
    }

    [Theory]
    [InlineData(""","status":{"phase":"Pending","containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"state":{"waiting":{"reason":"InvalidImageName","message":"couldn't parse image reference"}}}]}""", "ShadowPodImagePullFailed", "InvalidImageName")]
    [InlineData(""","status":{"phase":"Pending","containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"state":{"waiting":{"reason":"ImagePullBackOff"}}}]}""", "ShadowPodImagePullFailed", "ImagePullBackOff")]
    [InlineData(""","status":{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}""", "ShadowPodCrashed", "Evicted")]
    [InlineData(""","status":{"phase":"Running","containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"state":{"terminated":{"exitCode":1,"reason":"Error","message":"boom"}}}]}""", "ShadowPodCrashed", "Error")]
    [InlineData(""","status":{"phase":"Pending","containerStatuses":[{"name":"standalone","ready":false,"restartCount":0,"state":{"waiting":{"reason":"CreateContainerConfigError","message":"configmap not found"}}}]}""", "ShadowPodCrashed", "CreateContainerConfigError")]
    public void Failures_are_precise(string status, string errorId, string reason)
    {
        var p = ShadowPodStatus.Evaluate(Pod(status));
        Assert.NotNull(p.Failure);
        Assert.Equal(errorId, p.Failure.ErrorId);
        Assert.Equal(reason, p.Failure.Reason);
        Assert.Equal("kt-connect-shadow-x", p.Failure.PodName);
    }

    [Fact]
    public async Task Without_watch_permission_the_wait_polls()
    {
        await using var sim = await SimCluster.StartAsync();
        sim.Server.Hooks.Authorize = i => i.Verb is not ("watch" or "list");
        var shadows = new ShadowPods(sim.Client) { PollInterval = TimeSpan.FromMilliseconds(50) };
        await using var handle = await shadows.CreateAsync(ShadowPodTests.Spec("kt-connect-shadow-poll"), null);
        var pod = await shadows.WaitRunningAsync(handle, null, TimeSpan.FromSeconds(30));
        Assert.Equal("Running", pod.Status!.Phase);
    }

    [Fact]
    public async Task A_deployments_pod_is_found_by_its_target()
    {
        await using var sim = await SimCluster.StartAsync();
        var shadows = new ShadowPods(sim.Client);
        await using var handle = await shadows.CreateAsync(ShadowPodTests.Spec("kt-connect-shadow-dep", deployment: true), null);
        var waiting = shadows.WaitRunningAsync(handle, null, TimeSpan.FromSeconds(30));
        // KubeSim has no deployment controller: create the pod its ReplicaSet would.
        var template = (await sim.Client.Deployments.GetAsync(handle.Name, "kt-test")).Spec!.Template!;
        await sim.Client.Pods.CreateAsync(new Pod
        {
            Metadata = new ObjectMeta { Name = handle.Name + "-5d9c7-abcde", Labels = template.Metadata!.Labels },
            Spec = template.Spec,
        }, "kt-test");
        var pod = await waiting;
        Assert.Equal(handle.Target, pod.Metadata.GetLabel("kt-target"));
        Assert.Null(pod.Metadata.GetLabel("control-by"));
    }
}
