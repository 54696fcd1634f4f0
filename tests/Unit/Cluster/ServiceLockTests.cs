using KtConnect.Engine;
using KtConnect.Engine.Cluster;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Store;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Cluster;

public sealed class ServiceLockTests
{
    private const string Ns = "kt-test";

    private static string? Lock(KubeSimServer s) =>
        s.Store.Get(ResourceTypes.Services, Ns, "orders")?["metadata"]?["annotations"]?[KtConventions.LockAnnotation]?.GetValue<string>();

    private static async Task<SimCluster> StartAsync()
    {
        var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false });
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},"spec":{"selector":{"app":"orders"},"ports":[{"port":80}]}}""");
        return sim;
    }

    [Fact]
    public async Task A_release_that_did_not_happen_is_tried_again_by_the_next()
    {
        // A start cancelled while releasing its lock: the session's undo disposes the lock, which must remove it then.
        await using var sim = await StartAsync();
        var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held.ReleaseAsync(new CancellationToken(canceled: true)));
        Assert.Equal(held.Value, Lock(sim.Server));
        await held.DisposeAsync();
        Assert.Null(Lock(sim.Server));
    }

    [Fact]
    public async Task One_holder_at_a_time_and_release_removes_only_our_lock()
    {
        await using var sim = await StartAsync();
        var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        Assert.Equal(held.Value, Lock(sim.Server));
        var e = await Assert.ThrowsAsync<KtException>(() => ServiceLock.AcquireAsync(sim.Client, Ns, "orders", 2, TimeSpan.FromMilliseconds(10)));
        Assert.Equal("ServiceLocked", e.ErrorId);
        Assert.Contains("orders", e.Message, StringComparison.Ordinal);
        await held.DisposeAsync();
        Assert.Null(Lock(sim.Server));

        // A stale lock (older than 180 s, left by a crashed ktctl) is taken over.
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"] = new System.Text.Json.Nodes.JsonObject
            {
                [KtConventions.LockAnnotation] = KtConventions.FormatUnixSeconds(sim.Client.Clock.UtcNow.AddMinutes(-4)),
            };
            return o;
        });
        var taker = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders", 1);
        Assert.Equal(taker.Value, Lock(sim.Server));
        // Once someone else holds it (our lock went stale and was taken over), our release leaves theirs alone.
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"]![KtConventions.LockAnnotation] = "12345";
            return o;
        });
        await taker.ReleaseAsync(CancellationToken.None);
        Assert.Equal("12345", Lock(sim.Server));
    }

    [Fact]
    public async Task Concurrent_lockers_never_both_win()
    {
        await using var sim = await StartAsync();
        var attempts = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            try
            {
                return await ServiceLock.AcquireAsync(sim.Client, Ns, "orders", 3, TimeSpan.FromMilliseconds(10));
            }
            catch (KtException e) when (e.ErrorId == "ServiceLocked")
            {
                return null;
            }
        })));
        var winner = Assert.Single(attempts, a => a is not null);
        Assert.Equal(winner!.Value, Lock(sim.Server));
        await winner.DisposeAsync();
        Assert.Null(Lock(sim.Server));
    }

    [Fact]
    public async Task A_lock_kept_renewing_gets_newer_values_each_told_first_and_stops_once_someone_else_holds_it()
    {
        await using var sim = await StartAsync();
        var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        var first = held.Value;
        var told = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var results = new System.Collections.Concurrent.ConcurrentQueue<(string Value, bool? Written, string? OnServer)>();
        held.KeepRenewing(
            (next, _) => { told.Enqueue(next); return Task.CompletedTask; },
            (next, written, _) => { results.Enqueue((next, written, Lock(sim.Server))); return Task.CompletedTask; },
            TimeSpan.FromMilliseconds(100));
        // Values are whole seconds of cluster time: the first renewal comes within about a second.
        await Wait.UntilAsync(() => !results.IsEmpty, "a renewal", TimeSpan.FromSeconds(10));
        var (value, written, onServer) = results.First();
        Assert.True(written == true);
        Assert.True(long.Parse(value, System.Globalization.CultureInfo.InvariantCulture) > long.Parse(first, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(value, onServer);
        Assert.Equal(value, told.First());

        // Someone takes it over (ours went stale): the next renewal does not write, and renewal ends.
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"]![KtConventions.LockAnnotation] = "1800000000";
            return o;
        });
        await Wait.UntilAsync(() => results.Any(r => r.Written == false), "a renewal that finds the lock taken", TimeSpan.FromSeconds(10));
        var count = results.Count;
        await Task.Delay(1500);
        Assert.Equal(count, results.Count);
        Assert.Equal("1800000000", Lock(sim.Server));
        await held.DisposeAsync();
        Assert.Equal("1800000000", Lock(sim.Server));
    }

    [Fact]
    public async Task A_renewed_lock_is_released_with_its_latest_value()
    {
        await using var sim = await StartAsync();
        var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        var first = held.Value;
        held.KeepRenewing(interval: TimeSpan.FromMilliseconds(100));
        await Wait.UntilAsync(() => held.Value != first, "a renewal", TimeSpan.FromSeconds(10));
        await held.ReleaseAsync(CancellationToken.None);
        Assert.Null(Lock(sim.Server));
    }

    /// <summary>
    /// A renewal's patch (test our value, replace it) done to the store as the API server would: applied only when its
    /// test holds. Returns whether it was applied, or null for a patch that is not a renewal (left to the server).
    /// </summary>
    private static async Task<bool?> ApplyRenewalAsync(SimCluster sim, Microsoft.AspNetCore.Http.HttpContext http)
    {
        using var reader = new StreamReader(http.Request.Body);
        var ops = System.Text.Json.Nodes.JsonNode.Parse(await reader.ReadToEndAsync())!.AsArray();
        string? Op(string name) => ops.FirstOrDefault(o => o?["op"]?.GetValue<string>() == name)?["value"]?.GetValue<string>();
        if (Op("replace") is not { } value) return null;
        if (Lock(sim.Server) != Op("test")) return false;
        sim.Server.Store.Mutate(ResourceTypes.Services, Ns, "orders", o =>
        {
            o["metadata"]!["annotations"]![KtConventions.LockAnnotation] = value;
            return o;
        });
        return true;
    }

    [Fact]
    public async Task A_renewal_applied_whose_answer_was_lost_is_learned_from_the_service_and_released_with_its_value()
    {
        await using var sim = await StartAsync();
        var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        var first = held.Value;
        var lost = 0;
        sim.Server.Hooks.BeforeRequest = async http =>
        {
            if (http.Request.Method != "PATCH" || Volatile.Read(ref lost) != 0 || await ApplyRenewalAsync(sim, http) is null) return false;
            // The server applied the renewal, and the connection breaks before its answer.
            Interlocked.Exchange(ref lost, 1);
            http.Abort();
            return true;
        };
        var results = new System.Collections.Concurrent.ConcurrentQueue<(string Value, bool? Written)>();
        held.KeepRenewing(renewed: (next, written, _) => { results.Enqueue((next, written)); return Task.CompletedTask; },
            interval: TimeSpan.FromMilliseconds(100));
        await Wait.UntilAsync(() => Volatile.Read(ref lost) != 0 && !results.IsEmpty, "a renewal whose answer was lost", TimeSpan.FromSeconds(10));
        var (value, written) = results.First();
        Assert.True(written == true, $"told {written} for {value}");
        Assert.NotEqual(first, value);
        // Renewal goes on from the value learned (a renewal from the old one would find the lock taken and stop).
        await Wait.UntilAsync(() => results.Count >= 2, "the next renewal", TimeSpan.FromSeconds(10));
        Assert.All(results, r => Assert.True(r.Written == true, $"told {r.Written} for {r.Value}"));
        await held.ReleaseAsync(CancellationToken.None);
        Assert.Null(Lock(sim.Server));
    }

    [Fact]
    public async Task Renewals_whose_answers_and_looks_were_lost_are_learned_later_and_the_release_removes_the_value_that_landed()
    {
        await using var sim = await StartAsync();
        var held = await ServiceLock.AcquireAsync(sim.Client, Ns, "orders");
        var lostPatches = 0;
        var abortNextLook = false;
        sim.Server.Hooks.BeforeRequest = async http =>
        {
            if (http.Request.Method == "GET" && Volatile.Read(ref abortNextLook) && http.Request.Path.Value!.EndsWith("/services/orders", StringComparison.Ordinal))
            {
                Volatile.Write(ref abortNextLook, false);
                http.Abort();
                return true;
            }
            // Applied or not, as the API server would; then neither its answer nor the look after it arrives.
            if (http.Request.Method != "PATCH" || Volatile.Read(ref lostPatches) >= 2 || await ApplyRenewalAsync(sim, http) is null) return false;
            Interlocked.Increment(ref lostPatches);
            Volatile.Write(ref abortNextLook, true);
            http.Abort();
            return true;
        };
        var results = new System.Collections.Concurrent.ConcurrentQueue<(string Value, bool? Written)>();
        // Each renewal in a second of its own, so that each carries a value of its own.
        held.KeepRenewing(renewed: (next, written, _) => { results.Enqueue((next, written)); return Task.CompletedTask; },
            interval: TimeSpan.FromMilliseconds(1100));
        // Two renewals nobody heard back from (the first landed, the second did not), then one that finds the first there.
        await Wait.UntilAsync(() => results.Count(r => r.Written == true) >= 2, "renewals that land again", TimeSpan.FromSeconds(20));
        Assert.Equal([null, null], results.Take(2).Select(r => r.Written));
        Assert.NotEqual(results.First().Value, results.Skip(1).First().Value);
        var landed = results.First().Value;
        Assert.Contains((landed, (bool?)true), results);
        await held.ReleaseAsync(CancellationToken.None);
        Assert.Null(Lock(sim.Server));
    }
}
