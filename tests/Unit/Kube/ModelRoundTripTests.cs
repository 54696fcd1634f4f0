using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using KtConnect.Engine.Kube.Json;

namespace KtConnect.Tests.Unit.Kube;

/// <summary>Every recorded object read into our models and written back is the same JSON: nothing unmodelled is lost.</summary>
public sealed class ModelRoundTripTests
{
    private static void RoundTrips<T>(string file, JsonTypeInfo<T> typeInfo)
    {
        var body = KubeFixtures.Load(file).GetProperty("response").GetProperty("body");
        var model = body.Deserialize(typeInfo)!;
        var back = JsonSerializer.SerializeToElement(model, typeInfo);
        Assert.True(KubeFixtures.JsonEquals(body, back), file + " changed on a round trip:\n" + back.GetRawText());
    }

    [Fact] public void Namespace_round_trips() => RoundTrips("2a-create-namespace.json", KubeJsonContext.Default.Namespace);
    [Fact] public void Deployment_round_trips() => RoundTrips("2c-create-deployment.json", KubeJsonContext.Default.Deployment);
    [Fact] public void Deployment_with_status_round_trips() => RoundTrips("2e-get-deployment.json", KubeJsonContext.Default.Deployment);
    [Fact] public void Service_round_trips() => RoundTrips("2d-create-service.json", KubeJsonContext.Default.Service);
    [Fact] public void Pod_list_round_trips() => RoundTrips("2h-list-pods-labelselector.json", KubeJsonContext.Default.KubeListPod);
    [Fact] public void Paged_list_round_trips() => RoundTrips("2i-list-pods-limit1.json", KubeJsonContext.Default.KubeListPod);
    [Fact] public void Scale_round_trips() => RoundTrips("2k-get-deployment-scale.json", KubeJsonContext.Default.Scale);
    [Fact] public void Pod_round_trips() => RoundTrips("2o-get-pod.json", KubeJsonContext.Default.Pod);
    [Fact] public void Patched_service_round_trips() => RoundTrips("3c-patch-service-strategic-merge-patch.json", KubeJsonContext.Default.Service);
    [Fact] public void Node_list_round_trips() => RoundTrips("8a-list-nodes.json", KubeJsonContext.Default.KubeListNode);
    [Fact] public void Terminating_namespace_round_trips() => RoundTrips("9d-delete-namespace.json", KubeJsonContext.Default.Namespace);
    [Fact] public void Status_round_trips() => RoundTrips("9a-delete-deployment.json", KubeJsonContext.Default.KubeStatus);

    [Fact]
    public void Modelled_fields_are_read()
    {
        var pod = KubeFixtures.Load("2o-get-pod.json").GetProperty("response").GetProperty("body").Deserialize(KubeJsonContext.Default.Pod)!;
        Assert.Equal("Running", pod.Status!.Phase);
        Assert.Equal(pod.Status.PodIP, pod.Status.PodIPs![0].Ip);
        Assert.Equal(22, pod.Spec!.Containers[0].Ports![0].ContainerPort);
        Assert.Equal("ReplicaSet", pod.Metadata.OwnerReferences![0].Kind);
        Assert.True(pod.Metadata.OwnerReferences[0].Controller);
        Assert.Equal(new DateTimeOffset(2026, 11, 21, 14, 1, 0, TimeSpan.Zero), pod.Metadata.CreationTimestamp);
        Assert.True(pod.Status.ContainerStatuses![0].Ready);
        Assert.True(pod.Metadata.ExtensionData!.ContainsKey("managedFields"));

        var svc = KubeFixtures.Load("2d-create-service.json").GetProperty("response").GetProperty("body").Deserialize(KubeJsonContext.Default.Service)!;
        Assert.StartsWith("10.96.", svc.Spec!.ClusterIP, StringComparison.Ordinal);
        Assert.Equal(svc.Spec.ClusterIP, svc.Spec.ClusterIPs![0]);
        Assert.Equal("ClusterIP", svc.Spec.Type);

        var scale = KubeFixtures.Load("2k-get-deployment-scale.json").GetProperty("response").GetProperty("body").Deserialize(KubeJsonContext.Default.Scale)!;
        Assert.Equal(2, scale.Spec!.Replicas);
        Assert.Equal("app=sshd-fx", scale.Status!.Selector);
    }

    [Fact]
    public void Int_or_string_and_micro_time_round_trip()
    {
        var svc = JsonSerializer.Deserialize("""{"spec":{"ports":[{"port":80,"targetPort":"http"},{"port":81,"targetPort":8081}]}}""", KubeJsonContext.Default.Service)!;
        Assert.Equal("http", svc.Spec!.Ports![0].TargetPort!.Value.StringValue);
        Assert.Equal(8081, svc.Spec.Ports[1].TargetPort!.Value.IntValue);
        Assert.Contains("\"targetPort\":\"http\"", JsonSerializer.Serialize(svc, KubeJsonContext.Default.Service), StringComparison.Ordinal);
        var lease = JsonSerializer.Deserialize("""{"metadata":{"name":"l"},"spec":{"renewTime":"2026-11-21T14:01:00.123456Z"}}""", KubeJsonContext.Default.Lease)!;
        Assert.Contains("\"renewTime\":\"2026-11-21T14:01:00.123456Z\"", JsonSerializer.Serialize(lease, KubeJsonContext.Default.Lease), StringComparison.Ordinal);
    }
}
