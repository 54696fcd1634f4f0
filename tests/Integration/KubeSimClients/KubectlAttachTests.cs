using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using KtConnect.Engine;
using KtConnect.KubeSim.Store;

namespace KtConnect.Tests.Integration.KubeSimClients;

/// <summary>
/// kubectl attach against pods whose main process is a real command on the node (container <c>command</c>): output from
/// the moment of attaching (not the log's history) to several attachers at once, <c>-i</c> feeding the main process's
/// stdin (stdinOnce closing it after the first attacher), <c>-it</c> on a tty container (prompt, echo, resize), and the
/// server's errors. kubectl 1.32 offers WebSocket v5 first; KubeSim speaks v1.20 and refuses it, so these run over SPDY.
/// </summary>
public sealed partial class KubectlTests
{
    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Attach_streams_what_the_main_process_prints_from_then_on_to_every_attacher()
    {
        const string ns = "kubectl-attach-out";
        await CreateNamespaceAsync(ns);
        await StartPodAsync(ns, "ticker", """{"name":"c","image":"busybox:1.36","command":["sh","-c","i=0; while true; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 0.2; done"]}""");
        var log = Cluster.Node.LogPath(ns + "/ticker");
        await Cluster.WaitUntilAsync(() => Ticks(File.ReadAllText(log)).Count >= 5, "five ticks in the container log");
        var before = Ticks(File.ReadAllText(log)).Max();

        var attachers = new[] { new Attacher(StartKubectl("attach", "ticker", "-n", ns)), new Attacher(StartKubectl("attach", "ticker", "-n", ns)) };
        try
        {
            foreach (var a in attachers) await Cluster.WaitUntilAsync(() => Ticks(a.Stdout).Count >= 3 && a.Stderr.Contains("tock ", StringComparison.Ordinal), "three ticks through kubectl attach");
        }
        finally
        {
            foreach (var a in attachers) await a.StopAsync();
        }
        foreach (var a in attachers)
        {
            var ticks = Ticks(a.Stdout);
            Assert.True(ticks[0] > before, $"attach replayed history: first tick {ticks[0]}, the log had {before} before attaching");
            Assert.Equal(Enumerable.Range(ticks[0], ticks.Count), ticks); // nothing lost in between
            Assert.Matches(@"tock \d+", a.Stderr);
        }
        // The log capture went on while attached, and goes on after.
        var last = attachers.Max(a => Ticks(a.Stdout).Max());
        await Cluster.WaitUntilAsync(() => Ticks(File.ReadAllText(log)).Contains(last + 1), "the log to go on after the attachers left");
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Attach_i_feeds_the_main_process_stdin_and_stdinOnce_closes_it_after_the_first_attacher()
    {
        const string ns = "kubectl-attach-in";
        await CreateNamespaceAsync(ns);
        const string reader = "\"command\":[\"sh\",\"-c\",\"while read l; do echo \\\"got $l\\\"; done; echo stdin closed\"]";
        await StartPodAsync(ns, "reader", $$"""{"name":"c","image":"busybox:1.36","stdin":true,{{reader}}}""");

        // stdin: true (not stdinOnce): lines typed reach the main process; the end of our input detaches us, the process goes on.
        var attacher = new Attacher(StartKubectl(["attach", "-i", "reader", "-n", ns], stdin: true));
        try
        {
            await attacher.Process.StandardInput.WriteAsync("hello\n");
            await attacher.Process.StandardInput.FlushAsync();
            await Cluster.WaitUntilAsync(() => attacher.Stdout.Contains("got hello\n", StringComparison.Ordinal), "the echo of the first line");
            await attacher.Process.StandardInput.WriteAsync("again\n");
            await attacher.Process.StandardInput.FlushAsync();
            await Cluster.WaitUntilAsync(() => attacher.Stdout.Contains("got again\n", StringComparison.Ordinal), "the echo of the second line");
            attacher.Process.StandardInput.Close();
            await attacher.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, attacher.Process.ExitCode);
        }
        finally
        {
            await attacher.StopAsync();
        }
        Assert.Equal("got hello\ngot again\n", attacher.Stdout);
        var log = File.ReadAllText(Cluster.Node.LogPath(ns + "/reader"));
        Assert.Contains("got again\n", log, StringComparison.Ordinal);
        Assert.DoesNotContain("stdin closed", log, StringComparison.Ordinal);
        Assert.NotNull(Cluster.Node.GetPod(ns + "/reader"));

        // stdinOnce: the first attacher's end of input closes the process's stdin; its output still arrives, then the attach ends.
        await StartPodAsync(ns, "once", $$"""{"name":"c","image":"busybox:1.36","stdin":true,"stdinOnce":true,{{reader}}}""", restartPolicy: "Never");
        var once = await Kubectl(["attach", "-i", "once", "-n", ns], "a\nb\n");
        Assert.True(once.Succeeded, once.StandardError);
        Assert.Equal("got a\ngot b\nstdin closed\n", once.StandardOutput);
        await Cluster.WaitForAsync(ResourceTypes.Pods, ns, "once", p => p?["status"]?["phase"]?.GetValue<string>() == "Succeeded");
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs, "script")]
    public async Task Attach_it_to_a_tty_container_shows_its_prompt_echo_and_follows_resizes()
    {
        const string ns = "kubectl-attach-tty";
        await CreateNamespaceAsync(ns);
        await StartPodAsync(ns, "shell", """{"name":"c","image":"busybox:1.36","stdin":true,"tty":true,"command":["sh"],"env":[{"name":"PS1","value":"attached-prompt> "}]}""",
            restartPolicy: "Never");
        // kubectl wants a terminal of its own for -t: util-linux script gives it one (33x111), fed from our stdin.
        const string input = """for i in $(seq 100); do [ "$(stty size)" = "33 111" ] && break; sleep 0.1; done; echo SIZE=$(stty size); test -t 0 && echo IS_A_TTY; exit 4""";
        // The prompt printed before attaching is not replayed: an empty line first ("try pressing enter") brings a new one.
        var r = await ProcessRunner.RunAsync("script", ["-q", "-e", "-c", $"stty rows 33 cols 111; kubectl attach -it shell -n {ns}", "/dev/null"],
            "\n" + input + "\n", TimeSpan.FromMinutes(1), Environment());

        Assert.True(r.Succeeded, r.StandardOutput + r.StandardError);
        Assert.Contains("If you don't see a command prompt, try pressing enter.", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("echo SIZE=$(stty size)", r.StandardOutput, StringComparison.Ordinal); // the pty's echo of what was typed
        Assert.Contains("SIZE=33 111\r\n", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("IS_A_TTY\r\n", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("attached-prompt> ", r.StandardOutput, StringComparison.Ordinal);
        // The main process ended (exit 4): the pod failed with that code.
        var pod = await Cluster.WaitForAsync(ResourceTypes.Pods, ns, "shell", p => p?["status"]?["phase"]?.GetValue<string>() == "Failed");
        Assert.Equal(4, pod!["status"]!["containerStatuses"]![0]!["state"]!["terminated"]!["exitCode"]!.GetValue<int>());
    }

    [LinuxRootFact("sshd", "dnsmasq", "nginx", "nft", Needs)]
    public async Task Attach_to_a_missing_pod_or_a_container_that_does_not_run_fails_with_the_servers_answer()
    {
        const string ns = "kubectl-attach-err";
        await CreateNamespaceAsync(ns);
        var missing = await Kubectl("attach", "nosuch", "-n", ns);
        Assert.False(missing.Succeeded);
        Assert.Contains("pods \"nosuch\" not found", missing.StandardError, StringComparison.Ordinal);

        // restartPolicy Always: the exited container is in CrashLoopBackOff, the pod Running; the kubelet no longer has it.
        await StartPodAsync(ns, "gone", """{"name":"c","image":"busybox:1.36","command":["sh","-c","echo bye"]}""");
        await Cluster.WaitForAsync(ResourceTypes.Pods, ns, "gone",
            p => p?["status"]?["containerStatuses"]?[0]?["state"]?["waiting"]?["reason"]?.GetValue<string>() == "CrashLoopBackOff");
        var gone = await Kubectl("attach", "gone", "-n", ns);
        Assert.False(gone.Succeeded);
        Assert.Contains($"unable to upgrade connection: container c not found in pod gone_{ns}", gone.StandardError, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------- helpers

    private async Task StartPodAsync(string ns, string name, string container, string restartPolicy = "Always")
    {
        Cluster.Apply($$$"""{"apiVersion":"v1","kind":"Pod","metadata":{"name":"{{{name}}}","namespace":"{{{ns}}}"},"spec":{"restartPolicy":"{{{restartPolicy}}}","containers":[{{{container}}}]}}""");
        await Cluster.WaitForAsync(ResourceTypes.Pods, ns, name, p => p?["status"]?["containerStatuses"]?[0]?["state"]?["running"] is not null
            || p?["status"]?["containerStatuses"]?[0]?["lastState"]?["terminated"] is not null);
    }

    private static List<int> Ticks(string text) =>
        [.. TickLine().Matches(text).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];

    [GeneratedRegex(@"^tick (\d+)$", RegexOptions.Multiline)]
    private static partial Regex TickLine();

    private Process StartKubectl(string[] args, bool stdin)
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in Environment()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>A running kubectl whose stdout and stderr are collected as they come.</summary>
    private sealed class Attacher
    {
        private readonly StringBuilder _stdout = new();
        private readonly StringBuilder _stderr = new();

        public Attacher(Process process)
        {
            Process = process;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is not null) lock (_stdout) _stdout.Append(e.Data).Append('\n');
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not null) lock (_stderr) _stderr.Append(e.Data).Append('\n');
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public Process Process { get; }

        public string Stdout
        {
            get { lock (_stdout) return _stdout.ToString(); }
        }

        public string Stderr
        {
            get { lock (_stderr) return _stderr.ToString(); }
        }

        public async Task StopAsync()
        {
            try
            {
                if (!Process.HasExited) Process.Kill();
            }
            catch (InvalidOperationException)
            {
                // Gone already.
            }
            await Process.WaitForExitAsync();
            Process.Dispose();
        }
    }
}
