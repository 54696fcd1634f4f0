using System.Text.Json.Nodes;
using KtConnect.KubeSim.Cluster;
using KtConnect.KubeSim.Store;
using KtConnect.Tests.Integration.Sessions.Connect;
using KtConnect.Tests.Integration.Sessions.Forward;

namespace KtConnect.Tests.Integration.Sessions.Clean;

/// <summary>
/// `kt clean`, the journal's immediate recovery after SIGKILL and `kt recover`, with `kt` processes in the laptop
/// namespace sharing one HOME (one machine, one journal).
/// </summary>
[Collection(ForwardClusterCollection.Name)]
public sealed class CleanEndToEndTests(ForwardClusterFixture f)
{
    private const int SigTerm = 15;

    private static string Unix(DateTimeOffset t) => t.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>What a ktctl or KtConnect session that died 10 minutes ago on another machine leaves behind.</summary>
    private void ApplyStaleLeftovers()
    {
        var old = Unix(DateTimeOffset.UtcNow.AddMinutes(-10));
        f.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"kt-connect-shadow-stale","namespace":"dev",
             "labels":{"control-by":"kt","kt-role":"shadow-connect"},"annotations":{"kt-last-heart-beat":"{{{old}}}"}},
             "spec":{"containers":[{"name":"standalone","image":"ktconnect/echo:1.0","ports":[{"containerPort":8080}]}]}}
            """);
        f.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kt-connect-shadow-stale","namespace":"dev",
             "labels":{"control-by":"kt"},"annotations":{"kt-last-heart-beat":"{{{old}}}"}},"data":{"authorized":"ssh-ed25519 AAAA"}}
            """);
        f.Cluster.Apply($$$"""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"old-preview","namespace":"dev",
             "labels":{"control-by":"kt"},"annotations":{"kt-last-heart-beat":"{{{old}}}"}},
             "spec":{"selector":{"kt-role":"shadow-preview","kt-target":"gone"},"ports":[{"port":80,"targetPort":80}]}}
            """);
    }

    private string ShadowOf(KtProcess kt) =>
        f.Cluster.Pods("dev", "kt-role=shadow-connect").Select(p => p["metadata"]!["name"]!.GetValue<string>())
            .Single(n => kt.Stdout.Contains(n, StringComparison.Ordinal));

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Clean_removes_only_stale_leftovers_and_leaves_a_live_session_of_another_process_working()
    {
        var live = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2230");
        try
        {
            var liveShadow = ShadowOf(live);
            ApplyStaleLeftovers();

            var dry = await f.Kt.RunAsync(["clean", "-n", "dev", "--dryRun"]);
            Assert.True(dry.ExitCode == 0, dry.StandardOutput + dry.StandardError);
            Assert.Contains("Delete Pod dev/kt-connect-shadow-stale", dry.StandardOutput, StringComparison.Ordinal);
            Assert.DoesNotContain(liveShadow, dry.StandardOutput, StringComparison.Ordinal);
            Assert.NotNull(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "kt-connect-shadow-stale"));

            var clean = await f.Kt.RunAsync(["clean", "-n", "dev"]);
            Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
            await f.Cluster.WaitUntilAsync(() => f.Cluster.Store.Get(ResourceTypes.Pods, "dev", "kt-connect-shadow-stale") is null,
                "the stale shadow to be gone");
            Assert.Null(f.Cluster.Store.Get(ResourceTypes.ConfigMaps, "dev", "kt-connect-shadow-stale"));
            Assert.Null(f.Cluster.Store.Get(ResourceTypes.Services, "dev", "old-preview"));

            // The live session's shadow and ConfigMap are untouched, and it still works.
            Assert.NotNull(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", liveShadow));
            Assert.Null(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", liveShadow)!["metadata"]!["deletionTimestamp"]);
            Assert.NotNull(f.Cluster.Store.Get(ResourceTypes.ConfigMaps, "dev", liveShadow));
            var (code, output, pod) = await f.CurlInLaptopAsync("--socks5-hostname", "127.0.0.1:2230", "http://orders.dev.svc.cluster.local/");
            Assert.True(code == 0, output + live.Stderr);
            Assert.NotNull(pod);
        }
        finally
        {
            Assert.Equal(0, await live.SignalAndWaitAsync(SigTerm));
        }
        await f.Cluster.WaitUntilAsync(() => f.KtObjects().Count == 0, "no kt object left");
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task After_SIGKILL_the_next_kt_connect_in_the_namespace_removes_the_dead_sessions_shadow_at_once()
    {
        var killed = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2231");
        var deadShadow = ShadowOf(killed);
        await KtRunner.KillAsync(killed.Process);
        // The heartbeat is fresh: a threshold clean would leave it for minutes.
        var dry = await f.Kt.RunAsync(["clean", "-n", "dev", "--dryRun"]);
        Assert.Contains($"journal: would undo delete Pod dev/{deadShadow}", dry.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain($"cluster: would Delete Pod dev/{deadShadow}", dry.StandardOutput, StringComparison.Ordinal);
        Assert.NotNull(f.Cluster.Store.Get(ResourceTypes.Pods, "dev", deadShadow));

        var next = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2232");
        try
        {
            // Undone before the new session started: gone (or going) by the time it runs.
            var pod = f.Cluster.Store.Get(ResourceTypes.Pods, "dev", deadShadow);
            Assert.True(pod is null || pod["metadata"]?["deletionTimestamp"] is not null, "the dead session's shadow is still there");
            Assert.Null(f.Cluster.Store.Get(ResourceTypes.ConfigMaps, "dev", deadShadow));
            var (code, output, _) = await f.CurlInLaptopAsync("--socks5-hostname", "127.0.0.1:2232", "http://orders/");
            Assert.True(code == 0, output + next.Stderr);
        }
        finally
        {
            Assert.Equal(0, await next.SignalAndWaitAsync(SigTerm));
        }
        await f.Cluster.WaitUntilAsync(() => f.KtObjects().Count == 0, "no kt object left");
        Assert.Empty(Directory.Exists(Path.Combine(f.Kt.Home, ".kt", "journal")) ? Directory.GetFiles(Path.Combine(f.Kt.Home, ".kt", "journal"), "*.json") : []);
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Kt_recover_restores_a_service_whose_selector_an_exchange_changed()
    {
        f.Cluster.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"payments","namespace":"dev",
             "annotations":{"kt-selector":"{\"app\":\"orders\"}","kt-lock":"1700000000"}},
             "spec":{"selector":{"kt-role":"shadow-exchange","kt-target":"nobody"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        try
        {
            var r = await f.Kt.RunAsync(["recover", "-n", "dev", "payments"]);
            Assert.True(r.ExitCode == 0, r.StandardOutput + r.StandardError);
            Assert.Contains("done: Restore selector of Service dev/payments to {\"app\":\"orders\"}", r.StandardOutput, StringComparison.Ordinal);
            var svc = f.Cluster.Store.Get(ResourceTypes.Services, "dev", "payments")!;
            Assert.Equal("""{"app":"orders"}""", svc["spec"]!["selector"]!.ToJsonString());
            var annotations = svc["metadata"]?["annotations"] as JsonObject;
            Assert.False(annotations?.ContainsKey("kt-selector") ?? false);
            Assert.False(annotations?.ContainsKey("kt-lock") ?? false);

            var again = await f.Kt.RunAsync(["recover", "-n", "dev", "payments"]);
            Assert.Equal(0, again.ExitCode);
            Assert.Contains("nothing to recover", again.StandardOutput, StringComparison.Ordinal);
            var unknown = await f.Kt.RunAsync(["recover", "-n", "dev", "nope"]);
            Assert.Equal(1, unknown.ExitCode);
            Assert.Contains("RecoverServiceNotFound", unknown.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            f.Cluster.Store.Delete(ResourceTypes.Services, "dev", "payments");
        }
    }
}
