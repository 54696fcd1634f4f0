using KtConnect.Engine.Cluster;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.Sessions.Connect;

/// <summary>Two `kt connect --shareShadow` processes on one laptop: one pod, counted; each leaves without breaking the other.</summary>
[Collection(ConnectClusterCollection.Name)]
public sealed class SharedShadowEndToEndTests(ConnectClusterFixture f)
{
    private const int SigTerm = 15;

    private async Task<(int Code, string Output)> OrdersThrough(int proxyPort)
    {
        var r = await f.Cluster.RunInLaptopAsync(["curl", "-sS", "--connect-timeout", "5", "--max-time", "20",
            "--socks5-hostname", $"127.0.0.1:{proxyPort}", "http://orders.dev.svc.cluster.local/"]);
        return (r.ExitCode, r.StandardOutput + r.StandardError);
    }

    private int SharedPods() => f.Cluster.Pods("dev", KtConventions.RoleLabel + "=" + KtConventions.Roles.ShadowConnect)
        .Count(p => p["metadata"]?["name"]?.GetValue<string>() == KtConventions.SharedShadowName);

    private string? RefCount() => f.Cluster.Store.Get(ResourceTypes.Pods, "dev", KtConventions.SharedShadowName)?["metadata"]?["annotations"]?
        [KtConventions.RefCountAnnotation]?.GetValue<string>();

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task Two_shared_sessions_use_one_counted_pod_and_the_last_one_out_removes_it()
    {
        var before = f.Cluster.Snapshot("dev");
        var first = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2231", "--shareShadow");
        KtProcess? second = null;
        try
        {
            second = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2232", "--shareShadow");
            Assert.Equal(1, SharedPods());
            Assert.Equal("2", RefCount());
            foreach (var port in new[] { 2231, 2232 })
            {
                var (code, output) = await OrdersThrough(port);
                Assert.True(code == 0, $"{port}: {output}\n{first.Stderr}\n{second.Stderr}");
                Assert.Contains("orders-", output, StringComparison.Ordinal);
            }

            Assert.Equal(0, await first.SignalAndWaitAsync(SigTerm));
            Assert.Equal(1, SharedPods());
            Assert.Equal("1", RefCount());
            var (after, afterOutput) = await OrdersThrough(2232);
            Assert.True(after == 0, afterOutput + "\n" + second.Stderr);
            Assert.Contains("orders-", afterOutput, StringComparison.Ordinal);
        }
        finally
        {
            if (!first.Process.HasExited) await first.SignalAndWaitAsync(SigTerm);
            if (second is not null) Assert.Equal(0, await second.SignalAndWaitAsync(SigTerm));
        }

        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before");
    }

    /// <summary>
    /// A crashed user's count is journalled and listed: `kt clean` on this machine releases it at once, so the last live
    /// user removes the shadow. Before, the count stayed and the shadow outlived every user until its heartbeat went stale.
    /// </summary>
    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", "curl")]
    public async Task After_SIGKILL_of_a_shared_session_kt_clean_releases_its_count_and_the_last_live_user_removes_the_shadow()
    {
        var before = f.Cluster.Snapshot("dev");
        var crashed = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2233", "--shareShadow");
        KtProcess? live = null;
        try
        {
            live = await f.StartKtAsync("connect", "-n", "dev", "--mode", "socks", "--proxyPort", "2234", "--shareShadow");
            Assert.Equal("2", RefCount());
            await KtConnect.KubeSim.Cluster.KtRunner.KillAsync(crashed.Process);

            var clean = await f.Kt.RunAsync(["clean", "-n", "dev"]);
            Assert.True(clean.ExitCode == 0, clean.StandardOutput + clean.StandardError);
            Assert.Contains("leave the shared shadow dev/" + KtConventions.SharedShadowName, clean.StandardOutput, StringComparison.Ordinal);
            Assert.Equal("1", RefCount());
            var (code, output) = await OrdersThrough(2234);
            Assert.True(code == 0, output + "\n" + live.Stderr);
            Assert.Contains("orders-", output, StringComparison.Ordinal);
            // Nothing more to release: the live user's count stays.
            var again = await f.Kt.RunAsync(["clean", "-n", "dev"]);
            Assert.True(again.ExitCode == 0, again.StandardOutput + again.StandardError);
            Assert.Equal("1", RefCount());
        }
        finally
        {
            if (!crashed.Process.HasExited) await KtConnect.KubeSim.Cluster.KtRunner.KillAsync(crashed.Process);
            if (live is not null) Assert.Equal(0, await live.SignalAndWaitAsync(SigTerm));
        }
        Assert.Equal(0, SharedPods());
        await f.Cluster.WaitUntilAsync(() => before.Diff(f.Cluster.Snapshot("dev")).IsEmpty, "the cluster to be as before");
    }
}
