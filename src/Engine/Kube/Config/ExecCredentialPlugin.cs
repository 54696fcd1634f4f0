using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace KtConnect.Engine.Kube.Config;

/// <summary>What one run of an exec plugin produced.</summary>
internal sealed record ExecCredential(string? Token, X509Certificate2? Certificate, DateTimeOffset? Expiration);

/// <summary>
/// Runs a client-go exec credential plugin (client.authentication.k8s.io/v1 or v1beta1) and caches its
/// ExecCredential until status.expirationTimestamp passes or a 401 invalidates it. Concurrent callers share one
/// run. The environment is ours, then the config's env[], then KUBERNETES_EXEC_INFO.
/// </summary>
internal sealed class ExecCredentialPlugin
{
    public const string ExecInfoVariable = "KUBERNETES_EXEC_INFO";

    /// <summary>ETXTBSY (Linux, macOS): exec of a file still open for writing.</summary>
    private const int TextFileBusy = 26;

    private readonly KubeExecConfig _config;
    private readonly string _userName;
    private readonly string _sourceFile;
    private readonly JsonObject? _clusterInfo;
    private readonly KubeConfigLoaderOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ExecCredential? _cached;
    private X509Certificate2? _currentCertificate;
    private int _runs;

    public ExecCredentialPlugin(KubeExecConfig config, string userName, string sourceFile, JsonObject? clusterInfo, KubeConfigLoaderOptions options)
    {
        _config = config;
        _userName = userName;
        _sourceFile = sourceFile;
        _clusterInfo = clusterInfo;
        _options = options;
    }

    /// <summary>The certificate of the newest successful run; kept across invalidation so TLS always has one to offer.</summary>
    public X509Certificate2? CurrentCertificate => Volatile.Read(ref _currentCertificate);

    /// <summary>Raised after a run returned a different client certificate than the one before.</summary>
    public event EventHandler? CertificateRotated;

    /// <summary>How many times the plugin has been started (for diagnostics and tests).</summary>
    public int Runs => Volatile.Read(ref _runs);

    public async ValueTask<ExecCredential> GetAsync(CancellationToken cancellationToken)
    {
        var cached = Volatile.Read(ref _cached);
        if (cached is not null && !IsExpired(cached)) return cached;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            cached = _cached;
            if (cached is not null && !IsExpired(cached)) return cached;
            var fresh = await RunAsync(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _cached, fresh);
            if (fresh.Certificate is not null)
            {
                var previous = Interlocked.Exchange(ref _currentCertificate, fresh.Certificate);
                if (previous is not null && !previous.RawDataMemory.Span.SequenceEqual(fresh.Certificate.RawDataMemory.Span))
                    CertificateRotated?.Invoke(this, EventArgs.Empty);
            }
            return fresh;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Drops the cached credential: the next request runs the plugin again.</summary>
    public void Invalidate() => Volatile.Write(ref _cached, null);

    private bool IsExpired(ExecCredential c) => c.Expiration is { } exp && _options.TimeProvider.GetUtcNow() > exp;

    private string Describe => $"exec plugin '{_config.Command}' of user '{_userName}' ({_sourceFile})";

    private async Task<ExecCredential> RunAsync(CancellationToken cancellationToken)
    {
        var apiVersion = _config.ApiVersion!;
        var interactive = _config.InteractiveMode switch
        {
            "Never" => false,
            "Always" => _options.IsStdinTerminal()
                ? true
                : throw new ExecPluginFailedException(_config.Command, $"{Describe} has interactiveMode Always, but standard input is not a terminal."),
            _ => _options.IsStdinTerminal(),
        };

        var info = new JsonObject
        {
            ["kind"] = "ExecCredential",
            ["apiVersion"] = apiVersion,
            ["spec"] = new JsonObject { ["interactive"] = interactive },
        };
        if (_clusterInfo is not null) info["spec"]!["cluster"] = _clusterInfo.DeepClone();

        var psi = new ProcessStartInfo(_config.Command)
        {
            UseShellExecute = false,
            CreateNoWindow = true,
            RedirectStandardOutput = true,
            // Interactive plugins talk to the user: they get our stdin and stderr.
            RedirectStandardInput = !interactive,
            RedirectStandardError = !interactive,
            StandardOutputEncoding = Encoding.UTF8,
        };
        if (!interactive) psi.StandardErrorEncoding = Encoding.UTF8;
        foreach (var a in _config.Args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in _config.Env) psi.Environment[k] = v;
        psi.Environment[ExecInfoVariable] = info.ToJsonString();

        using var process = new Process { StartInfo = psi };
        Interlocked.Increment(ref _runs);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                process.Start();
                break;
            }
            catch (Win32Exception e) when (e.NativeErrorCode == TextFileBusy && !OperatingSystem.IsWindows() && attempt < 10)
            {
                // ETXTBSY: the plugin file is still open for writing somewhere (just installed or updated, or its writer's
                // fd inherited by a process another thread is forking). It clears in moments.
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken).ConfigureAwait(false);
            }
            catch (Win32Exception e)
            {
                var missing = !ProcessRunner.IsOnPath(_config.Command);
                var hint = string.IsNullOrWhiteSpace(_config.InstallHint) ? "" : " " + _config.InstallHint.Trim();
                throw new ExecPluginFailedException(_config.Command,
                    missing
                        ? $"{Describe} was not found. It is a client-go credential plugin that must be installed.{hint}"
                        : $"{Describe} could not be started: {e.Message}",
                    inner: e, notFound: missing);
            }
        }

        if (!interactive) process.StandardInput.Close();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (!interactive) cts.CancelAfter(_options.ExecTimeout);
        var stdoutTask = process.StandardOutput.ReadToEndAsync(cts.Token);
        var stderrTask = interactive ? Task.FromResult("") : process.StandardError.ReadToEndAsync(cts.Token);
        string stdout, stderr;
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            stdout = await stdoutTask.ConfigureAwait(false);
            stderr = await stderrTask.ConfigureAwait(false);
        }
        catch (OperationCanceledException e)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            if (cancellationToken.IsCancellationRequested) throw;
            throw new ExecPluginFailedException(_config.Command,
                $"{Describe} did not finish within {_options.ExecTimeout.TotalSeconds:0}s.", inner: e);
        }

        if (stderr.Length > 0 && _options.ExecStandardError is { } sink)
            await sink.WriteAsync(stderr.AsMemory(), cancellationToken).ConfigureAwait(false);

        var stderrTrimmed = Trim(stderr);
        if (process.ExitCode != 0)
        {
            throw new ExecPluginFailedException(_config.Command,
                $"{Describe} exited with code {process.ExitCode}" + (stderrTrimmed.Length > 0 ? ": " + stderrTrimmed : "."),
                process.ExitCode, stderrTrimmed);
        }
        return Parse(stdout, apiVersion, stderrTrimmed);
    }

    private ExecCredential Parse(string stdout, string apiVersion, string stderr)
    {
        ExecPluginFailedException Fail(string what, Exception? inner = null) =>
            new(_config.Command, $"{Describe} {what}", 0, stderr, inner);

        JsonObject root;
        try
        {
            root = JsonNode.Parse(stdout) as JsonObject ?? throw Fail("did not write a JSON object to stdout.");
        }
        catch (JsonException e)
        {
            throw Fail("wrote something that is not an ExecCredential JSON object to stdout: " + e.Message, e);
        }
        var gotVersion = Str(root, "apiVersion");
        if (gotVersion != apiVersion)
            throw Fail($"is configured to use API version {apiVersion}, but the plugin returned version {gotVersion ?? "(none)"}.");
        var kind = Str(root, "kind");
        if (kind != "ExecCredential") throw Fail($"returned kind '{kind ?? "(none)"}', expected ExecCredential.");
        if (root["status"] is not JsonObject status) throw Fail("did not return a status field.");

        var token = Str(status, "token");
        var certPem = Str(status, "clientCertificateData");
        var keyPem = Str(status, "clientKeyData");
        if (string.IsNullOrEmpty(certPem) != string.IsNullOrEmpty(keyPem))
            throw Fail("returned only one of clientCertificateData and clientKeyData; both are needed.");
        if (string.IsNullOrEmpty(token) && string.IsNullOrEmpty(certPem))
            throw Fail("returned neither a token nor a client certificate and key.");

        DateTimeOffset? expiration = null;
        var expText = Str(status, "expirationTimestamp");
        if (!string.IsNullOrEmpty(expText))
        {
            if (!DateTimeOffset.TryParse(expText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var exp))
                throw Fail($"returned an expirationTimestamp that is not RFC 3339: '{expText}'.");
            expiration = exp;
        }

        X509Certificate2? cert = null;
        if (!string.IsNullOrEmpty(certPem))
        {
            try
            {
                cert = Pem.LoadClientCertificate(certPem, keyPem!);
            }
            catch (CryptographicException e)
            {
                throw Fail("returned a client certificate and key that cannot be loaded: " + e.Message, e);
            }
        }
        return new ExecCredential(string.IsNullOrEmpty(token) ? null : token, cert, expiration);
    }

    private static string? Str(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static string Trim(string stderr)
    {
        stderr = stderr.Trim();
        return stderr.Length <= 4000 ? stderr : stderr[..4000] + "…";
    }
}
