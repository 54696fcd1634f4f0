using KtConnect.Engine.Cluster;
using KtConnect.Engine.Kube.Models;
using KtConnect.KubeSim.Api;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster;

/// <summary>
/// A shared router counts its users in kt-ref-count and lists KtConnect's sessions beside it, so that leaving (a session
/// stopping, or the undo of a crashed one) takes out only a count that is its own.
/// </summary>
public sealed class MeshRouterTests
{
    private const string Ns = "kt-test";
    private const string RouterName = "orders-kt-router";

    private static async Task<SimCluster> StartWithRouterAsync(string count, string? members)
    {
        var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        var annotations = new Dictionary<string, string>
        {
            [KtConventions.RefCountAnnotation] = count,
            [KtConventions.ConfigAnnotation] = "service=orders",
        };
        if (members is not null) annotations[KtConventions.MembersAnnotation] = members;
        await sim.Client.Pods.CreateAsync(new Pod
        {
            Metadata = new ObjectMeta
            {
                Name = RouterName,
                Labels = new() { [KtConventions.RoleLabel] = KtConventions.Roles.Router, [KtConventions.TargetLabel] = "t", [KtConventions.ControlByLabel] = "kt" },
                Annotations = annotations,
            },
            Spec = new PodSpec { Containers = [new Container { Name = KtConventions.ContainerName, Image = "router" }] },
        }, Ns);
        await sim.Client.Services.CreateAsync(new Service
        {
            Metadata = new ObjectMeta { Name = "orders", Annotations = new() { [KtConventions.SelectorAnnotation] = """{"app":"orders"}""" } },
            Spec = new ServiceSpec
            {
                Selector = new() { [KtConventions.RoleLabel] = KtConventions.Roles.Router, [KtConventions.TargetLabel] = "t" },
                Ports = [new ServicePort { Port = 80, TargetPort = 8080 }],
            },
        }, Ns);
        await sim.Client.Services.CreateAsync(new Service
        {
            Metadata = new ObjectMeta { Name = "orders-kt-stuntman", Labels = new() { [KtConventions.ControlByLabel] = "kt" } },
            Spec = new ServiceSpec { Selector = new() { ["app"] = "orders" }, Ports = [new ServicePort { Port = 80, TargetPort = 8080 }] },
        }, Ns);
        return sim;
    }

    private static async Task<(string Count, string Members)> StateAsync(SimCluster sim)
    {
        var router = await sim.Client.Pods.GetAsync(RouterName, Ns);
        return (router.Metadata.GetAnnotation(KtConventions.RefCountAnnotation)!, router.Metadata.GetAnnotation(KtConventions.MembersAnnotation) ?? "");
    }

    [Fact]
    public async Task A_join_counts_a_session_once_and_a_leave_takes_out_only_a_session_that_is_counted()
    {
        // Two users already: one of kt-connect (counted, not listed) and session a.
        await using var sim = await StartWithRouterAsync("2", "a");
        var (_, joined) = await ShadowPods.ChangeMembershipAsync(sim.Client.Pods, RouterName, Ns, "b", join: true, CancellationToken.None);
        Assert.True(joined);
        Assert.Equal(("3", "a,b"), await StateAsync(sim));
        // The same join again (its first answer was lost): not counted twice.
        var (_, again) = await ShadowPods.ChangeMembershipAsync(sim.Client.Pods, RouterName, Ns, "b", join: true, CancellationToken.None);
        Assert.False(again);
        Assert.Equal(("3", "a,b"), await StateAsync(sim));

        // A session that is not listed (it crashed before its join reached the server) takes nobody's count.
        await MeshRouter.LeaveAsync(sim.Client, Ns, "orders", "c", "version:v3", lockHeld: false, restoreIfGone: false, warn: null, CancellationToken.None);
        Assert.Equal(("3", "a,b"), await StateAsync(sim));
        var (_, left) = await ShadowPods.ChangeMembershipAsync(sim.Client.Pods, RouterName, Ns, "b", join: false, CancellationToken.None);
        Assert.True(left);
        Assert.Equal(("2", "a"), await StateAsync(sim));
        var (_, leftAgain) = await ShadowPods.ChangeMembershipAsync(sim.Client.Pods, RouterName, Ns, "b", join: false, CancellationToken.None);
        Assert.False(leftAgain);
        Assert.Equal(("2", "a"), await StateAsync(sim));
    }

    [Fact]
    public async Task The_last_listed_user_to_leave_gives_the_service_back_and_deletes_the_stuntman_and_the_router()
    {
        await using var sim = await StartWithRouterAsync("1", "a");
        await MeshRouter.LeaveAsync(sim.Client, Ns, "orders", "a", "version:v1", lockHeld: false, restoreIfGone: false, warn: null, CancellationToken.None);
        Assert.Null(await sim.Client.Pods.TryGetAsync(RouterName, Ns));
        Assert.Null(await sim.Client.Services.TryGetAsync("orders-kt-stuntman", Ns));
        var service = await sim.Client.Services.GetAsync("orders", Ns);
        Assert.Equal(new Dictionary<string, string> { ["app"] = "orders" }, service.Spec!.Selector);
        Assert.Null(service.Metadata.GetAnnotation(KtConventions.SelectorAnnotation));
    }

    [Fact]
    public async Task An_undo_does_not_leave_while_another_session_holds_the_services_lock()
    {
        await using var sim = await StartWithRouterAsync("1", "a");
        await using var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        var e = await Assert.ThrowsAsync<KtConnect.Engine.KtException>(() => MeshRouter.LeaveAsync(sim.Client, Ns, "orders", "a", "version:v1",
            lockHeld: false, restoreIfGone: false, warn: null, CancellationToken.None));
        Assert.Equal("ServiceLocked", e.ErrorId);
        Assert.Equal(("1", "a"), await StateAsync(sim));
        Assert.NotNull(await sim.Client.Services.TryGetAsync("orders-kt-stuntman", Ns));
    }

    [Fact]
    public async Task A_leave_that_others_stay_in_keeps_a_version_route_another_session_serves_now()
    {
        // Session a crashed; its version v1 was taken since by session b, whose mesh Service names it. Undoing a's place
        // takes a's count only: a `router remove` would take b's route (this router cannot even run one: it has no pod).
        await using var sim = await StartWithRouterAsync("2", "a,b");
        await sim.Client.Services.CreateAsync(new Service
        {
            Metadata = new ObjectMeta { Name = "orders-kt-mesh-v1", Labels = new() { [KtConventions.ControlByLabel] = "kt" }, Annotations = new() { [ExchangeHolders.SessionAnnotation] = "b" } },
            Spec = new ServiceSpec { Selector = new() { ["app"] = "shadow-b" }, Ports = [new ServicePort { Port = 80, TargetPort = 8080 }] },
        }, Ns);
        await MeshRouter.LeaveAsync(sim.Client, Ns, "orders", "a", "version:v1", lockHeld: false, restoreIfGone: false, warn: null, CancellationToken.None);
        Assert.Equal(("1", "b"), await StateAsync(sim));
        Assert.NotNull(await sim.Client.Services.TryGetAsync("orders-kt-stuntman", Ns));
    }

    [Fact]
    public async Task An_undo_whose_route_removal_fails_keeps_its_place_so_it_is_tried_again()
    {
        // The router has no pod to run `router remove` in: the undo fails and the session stays counted and listed.
        await using var sim = await StartWithRouterAsync("2", "a,b");
        var e = await Assert.ThrowsAnyAsync<KtConnect.Engine.KtException>(() => MeshRouter.LeaveAsync(sim.Client, Ns, "orders", "a", "version:v1",
            lockHeld: false, restoreIfGone: false, warn: null, CancellationToken.None));
        Assert.True(e.ErrorId == "KubeExecFailed", e.ErrorId + ": " + e.Message); // the route removal, not the lock
        Assert.Equal(("2", "a,b"), await StateAsync(sim));
    }
}
