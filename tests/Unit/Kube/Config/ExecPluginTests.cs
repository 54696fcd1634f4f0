using System.Text.Json.Nodes;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Config;
using static KtConnect.Tests.Unit.Kube.Config.TestOptions;

namespace KtConnect.Tests.Unit.Kube.Config;

/// <summary>Exec credential plugins that are real bash scripts in a temp directory.</summary>
public sealed class ExecPluginTests : IDisposable
{
    private const string V1 = KubeExecConfig.ApiVersionV1;
    private const string V1Beta1 = KubeExecConfig.ApiVersionV1Beta1;

    // Counts its runs, dumps its environment and KUBERNETES_EXEC_INFO, writes to stderr, then prints reply.json
    // with RUN replaced by the run number (so each run hands out a different token).
    private const string Script = """
        #!/bin/bash
        dir="$(cd "$(dirname "$0")" && pwd)"
        n=$(cat "$dir/count" 2>/dev/null || echo 0)
        n=$((n+1))
        echo "$n" > "$dir/count"
        printf '%s' "$KUBERNETES_EXEC_INFO" > "$dir/info.json"
        env > "$dir/env.txt"
        printf '%s\n' "$@" > "$dir/args.txt"
        echo "plugin stderr line" >&2
        if [ -f "$dir/hang" ]; then sleep 60; fi
        if [ -f "$dir/fail" ]; then echo "login required: run sso-login" >&2; exit 3; fi
        sed "s/RUN/$n/g" "$dir/reply.json"
        """;

    private readonly TempDir _dir = new();
    private readonly FakeTime _time = new();
    private readonly StringWriter _stderr = new();

    public ExecPluginTests()
    {
        _dir.Executable("plugin/get-token", Script);
    }

    public void Dispose() => _dir.Dispose();

    private int Runs => File.Exists(_dir.Combine("plugin", "count")) ? int.Parse(File.ReadAllText(_dir.Combine("plugin", "count")).Trim(), System.Globalization.CultureInfo.InvariantCulture) : 0;

    private void Reply(string apiVersion, string status) =>
        _dir.File("plugin/reply.json", $$"""{"kind":"ExecCredential","apiVersion":"{{apiVersion}}","status":{{status}}}""");

    private static string Indent(string text, int by) => string.Join("\n", text.Split('\n').Select(l => new string(' ', by) + l));

    private KubeClientConfiguration Resolve(string execYaml, bool terminal = false, string clusterExtra = "", TimeSpan? timeout = null)
    {
        var path = _dir.File("config", $"""
            clusters:
            - name: c
              cluster:
                server: https://127.0.0.1:6443/prefix
                tls-server-name: api.test
            {Indent(clusterExtra, 4)}
            users:
            - name: u
              user:
                exec:
            {Indent(execYaml, 6)}
            contexts:
            - {"{"}name: ctx, context: {"{"}cluster: c, user: u{"}"}{"}"}
            current-context: ctx
            """);
        var options = new KubeConfigLoaderOptions
        {
            GetEnvironmentVariable = _ => null,
            HomeDirectory = _dir.Combine("home"),
            TimeProvider = _time,
            IsStdinTerminal = () => terminal,
            ExecStandardError = _stderr,
            ExecTimeout = timeout ?? TimeSpan.FromSeconds(30),
        };
        return new KubeConfigLoader(options).Load(path).CreateClientConfiguration();
    }

    [Fact]
    public async Task V1_plugin_gets_env_args_and_exec_info_with_cluster_and_its_token_is_sent()
    {
        Reply(V1, """{"token":"tok-RUN"}""");
        var creds = Resolve("""
            command: ./plugin/get-token
            apiVersion: client.authentication.k8s.io/v1
            interactiveMode: Never
            provideClusterInfo: true
            args: [--region, eu-1]
            env:
            - {name: PLUGIN_MODE, value: fast}
            """, clusterExtra: """
            extensions:
            - name: client.authentication.k8s.io/exec
              extension: {audience: kt, retries: 3, verbose: true}
            - name: other
              extension: {ignored: yes}
            """).Credentials;

        var headers = await HeadersAsync(creds);
        Assert.Equal(["Bearer tok-1"], headers["Authorization"]);

        var env = File.ReadAllText(_dir.Combine("plugin", "env.txt"));
        Assert.Contains("PLUGIN_MODE=fast\n", env, StringComparison.Ordinal);
        Assert.Contains("PATH=", env, StringComparison.Ordinal); // our own environment is passed on too
        Assert.Equal("--region\neu-1\n", File.ReadAllText(_dir.Combine("plugin", "args.txt")));

        var info = JsonNode.Parse(File.ReadAllText(_dir.Combine("plugin", "info.json")))!;
        Assert.Equal("ExecCredential", (string?)info["kind"]);
        Assert.Equal(V1, (string?)info["apiVersion"]);
        Assert.False((bool)info["spec"]!["interactive"]!);
        var cluster = info["spec"]!["cluster"]!;
        Assert.Equal("https://127.0.0.1:6443/prefix", (string?)cluster["server"]);
        Assert.Equal("api.test", (string?)cluster["tls-server-name"]);
        Assert.Equal("kt", (string?)cluster["config"]!["audience"]);
        Assert.Equal(3, (int)cluster["config"]!["retries"]!);
        Assert.True((bool)cluster["config"]!["verbose"]!);

        // stderr is passed through to the configured writer.
        Assert.Contains("plugin stderr line", _stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task V1beta1_plugin_without_cluster_info_defaults_to_IfAvailable()
    {
        Reply(V1Beta1, """{"token":"beta-RUN"}""");
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1beta1", terminal: false).Credentials;
        Assert.Equal(["Bearer beta-1"], (await HeadersAsync(creds))["Authorization"]);
        var info = JsonNode.Parse(File.ReadAllText(_dir.Combine("plugin", "info.json")))!;
        Assert.Equal(V1Beta1, (string?)info["apiVersion"]);
        Assert.False((bool)info["spec"]!["interactive"]!);
        Assert.Null(info["spec"]!["cluster"]);
    }

    [Fact]
    public async Task Credentials_are_cached_until_expirationTimestamp_passes()
    {
        var expiry = _time.GetUtcNow().AddMinutes(10).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        Reply(V1, $$"""{"token":"tok-RUN","expirationTimestamp":"{{expiry}}"}""");
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: IfAvailable").Credentials;

        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => HeadersAsync(creds)));
        Assert.Equal(["Bearer tok-1"], (await HeadersAsync(creds))["Authorization"]);
        Assert.Equal(1, Runs);

        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(["Bearer tok-1"], (await HeadersAsync(creds))["Authorization"]);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(["Bearer tok-2"], (await HeadersAsync(creds))["Authorization"]);
        Assert.Equal(2, Runs);
    }

    [Fact]
    public async Task Without_expiration_the_credential_is_kept_until_a_401()
    {
        Reply(V1, """{"token":"tok-RUN"}""");
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never").Credentials;
        await HeadersAsync(creds);
        _time.Advance(TimeSpan.FromDays(30));
        Assert.Equal(["Bearer tok-1"], (await HeadersAsync(creds))["Authorization"]);
        Assert.Equal(1, Runs);

        Assert.True(await creds.OnUnauthorizedAsync(CancellationToken.None));
        Assert.Equal(["Bearer tok-2"], (await HeadersAsync(creds))["Authorization"]);
        Assert.Equal(2, Runs);
        Assert.Equal(2, ((KubeCredentials)creds).ExecPluginRuns);
    }

    [Fact]
    public async Task A_reply_with_another_apiVersion_is_rejected()
    {
        Reply(V1Beta1, """{"token":"x"}""");
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never").Credentials;
        var e = await Assert.ThrowsAsync<ExecPluginFailedException>(() => HeadersAsync(creds));
        Assert.Equal("ExecPluginFailed", e.ErrorId);
        Assert.Contains($"configured to use API version {V1}", e.Message, StringComparison.Ordinal);
        Assert.Contains($"returned version {V1Beta1}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"token":""}""", "neither a token nor a client certificate")]
    [InlineData("""{"clientCertificateData":"-----BEGIN CERTIFICATE-----"}""", "only one of clientCertificateData and clientKeyData")]
    [InlineData("""{"token":"t","expirationTimestamp":"tomorrow"}""", "not RFC 3339")]
    public async Task Unusable_replies_are_rejected(string status, string message)
    {
        Reply(V1, status);
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never").Credentials;
        var e = await Assert.ThrowsAsync<ExecPluginFailedException>(() => HeadersAsync(creds));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_plugin_reports_command_exit_code_and_stderr()
    {
        Reply(V1, """{"token":"x"}""");
        _dir.File("plugin/fail", "");
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never").Credentials;
        var e = await Assert.ThrowsAsync<ExecPluginFailedException>(() => HeadersAsync(creds));
        Assert.Equal(3, e.ExitCode);
        Assert.Equal(_dir.Combine("plugin", "get-token"), e.Command);
        Assert.Contains("login required: run sso-login", e.StandardError, StringComparison.Ordinal);
        Assert.Contains("exited with code 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("login required", e.Message, StringComparison.Ordinal);
        Assert.Contains(_dir.Combine("plugin", "get-token"), e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hanging_plugin_is_stopped_after_the_timeout_and_cancellation_is_honoured()
    {
        Reply(V1, """{"token":"x"}""");
        _dir.File("plugin/hang", "");
        const string exec = "command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never";
        var e = await Assert.ThrowsAsync<ExecPluginFailedException>(() => HeadersAsync(Resolve(exec, timeout: TimeSpan.FromMilliseconds(500)).Credentials));
        Assert.Contains("did not finish", e.Message, StringComparison.Ordinal);

        using var cts = new CancellationTokenSource();
        var creds = Resolve(exec).Credentials;
        var pending = creds.ApplyAsync((_, _) => { }, cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
    }

    [Fact]
    public async Task A_missing_plugin_shows_the_install_hint()
    {
        var creds = Resolve("command: kt-no-such-auth-plugin\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never\ninstallHint: Install it with 'brew install kt-auth'.").Credentials;
        var e = await Assert.ThrowsAsync<ExecPluginFailedException>(() => HeadersAsync(creds));
        Assert.Equal("ExecPluginNotFound", e.ErrorId);
        Assert.Equal(KtConnect.Engine.KtErrorCategory.NotInstalled, e.Category);
        Assert.Contains("kt-no-such-auth-plugin", e.Message, StringComparison.Ordinal);
        Assert.Contains("brew install kt-auth", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InteractiveMode_Always_without_a_terminal_is_an_error_and_with_one_the_plugin_is_told()
    {
        Reply(V1, """{"token":"tok-RUN"}""");
        const string exec = "command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Always";
        var e = await Assert.ThrowsAsync<ExecPluginFailedException>(() => HeadersAsync(Resolve(exec, terminal: false).Credentials));
        Assert.Contains("not a terminal", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, Runs);

        await HeadersAsync(Resolve(exec, terminal: true).Credentials);
        Assert.True((bool)JsonNode.Parse(File.ReadAllText(_dir.Combine("plugin", "info.json")))!["spec"]!["interactive"]!);
    }

    [Fact]
    public async Task A_plugin_certificate_is_offered_and_replaced_after_a_401()
    {
        using var pki = new TestPki();
        var (cert1, key1) = pki.Client("exec-one", KeyFormat.EcSec1);
        _dir.File("plugin/reply.json", new JsonObject
        {
            ["kind"] = "ExecCredential",
            ["apiVersion"] = V1,
            ["status"] = new JsonObject { ["clientCertificateData"] = cert1, ["clientKeyData"] = key1 },
        }.ToJsonString());
        var creds = Resolve("command: ./plugin/get-token\napiVersion: client.authentication.k8s.io/v1\ninteractiveMode: Never").Credentials;
        Assert.Null(creds.CurrentClientCertificate);
        var headers = await HeadersAsync(creds);
        Assert.False(headers.ContainsKey("Authorization"));
        Assert.Equal("CN=exec-one", creds.CurrentClientCertificate!.Subject);

        var (cert2, key2) = pki.Client("exec-two", KeyFormat.RsaPkcs8);
        _dir.File("plugin/reply.json", new JsonObject
        {
            ["kind"] = "ExecCredential",
            ["apiVersion"] = V1,
            ["status"] = new JsonObject { ["clientCertificateData"] = cert2, ["clientKeyData"] = key2 },
        }.ToJsonString());
        await creds.OnUnauthorizedAsync(CancellationToken.None);
        Assert.Equal("CN=exec-one", creds.CurrentClientCertificate!.Subject); // kept until the new run
        await HeadersAsync(creds);
        Assert.Equal("CN=exec-two", creds.CurrentClientCertificate!.Subject);
    }
}
