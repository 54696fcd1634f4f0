using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>
/// A real OpenSSH sshd on 127.0.0.1 and a free port, with host keys, config and authorized_keys in a
/// temp directory; runs as `sshd -D -e -f cfg` and is killed (by its pid) and cleaned up on dispose.
/// </summary>
internal sealed class SshdProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private SshdProcess(string dir, int port, Process process, IReadOnlyList<SshPublicKey> hostKeys)
    {
        Directory = dir;
        Port = port;
        _process = process;
        HostKeys = hostKeys;
    }

    public string Directory { get; }

    public int Port { get; }

    public IReadOnlyList<SshPublicKey> HostKeys { get; }

    public string AuthorizedKeysPath => Path.Combine(Directory, "authorized_keys");

    public string Log
    {
        get
        {
            lock (_log) return _log.ToString();
        }
    }

    /// <summary>kt-connect's published shadow image restrictions (reference/kt-connect.md §3.1), minus what OpenSSH 9.2 dropped.</summary>
    public static readonly string[] KtShadowConfig =
    [
        "Ciphers aes128-ctr,aes192-ctr,aes256-ctr",
        "HostKeyAlgorithms ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,ssh-rsa",
        "KexAlgorithms ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha256,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1",
        "MACs hmac-sha2-256,hmac-sha2-512,hmac-sha1",
        "GatewayPorts yes",
        "PermitRootLogin yes",
        "TCPKeepAlive yes",
    ];

    public static async Task<SshdProcess> StartAsync(SshKeyPair authorized, IEnumerable<string>? extraConfig = null, string[]? hostKeyTypes = null)
    {
        System.IO.Directory.CreateDirectory("/run/sshd");
        var dir = Path.Combine(Path.GetTempPath(), "ktssh-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(dir);
        try
        {
            var keys = new List<SshPublicKey>();
            var cfg = new StringBuilder();
            foreach (var t in hostKeyTypes ?? ["ecdsa:256", "rsa:2048"])
            {
                var parts = t.Split(':');
                var file = Path.Combine(dir, $"host_{parts[0]}_{parts[1]}");
                (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", parts[0], "-b", parts[1], "-N", "", "-f", file]).ConfigureAwait(false)).EnsureSuccess();
                keys.Add(SshPublicKey.ParseAuthorizedKey(await File.ReadAllTextAsync(file + ".pub").ConfigureAwait(false)));
                cfg.Append("HostKey ").Append(file).Append('\n');
            }
            await File.WriteAllTextAsync(Path.Combine(dir, "authorized_keys"), authorized.ToAuthorizedKeysLine() + "\n").ConfigureAwait(false);
            var port = FreePort();
            // Per-test lines come first: for most keywords sshd keeps the first value it reads.
            foreach (var line in extraConfig ?? []) cfg.Append(line).Append('\n');
            cfg.Append(string.Join('\n',
            [
                $"Port {port}",
                "ListenAddress 127.0.0.1",
                $"PidFile {dir}/sshd.pid",
                $"AuthorizedKeysFile {dir}/authorized_keys",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "AllowTcpForwarding yes",
                "MaxSessions 1000",
                "MaxStartups 200",
                "LogLevel VERBOSE",
                "",
            ]));
            var cfgPath = Path.Combine(dir, "sshd_config");
            await File.WriteAllTextAsync(cfgPath, cfg.ToString()).ConfigureAwait(false);
            var psi = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { "-D", "-e", "-f", cfgPath }) psi.ArgumentList.Add(a);
            var p = Process.Start(psi) ?? throw new InvalidOperationException("sshd did not start");
            var s = new SshdProcess(dir, port, p, keys);
            p.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (s._log) s._log.AppendLine(e.Data);
            };
            p.BeginErrorReadLine();
            p.BeginOutputReadLine();
            await s.WaitListeningAsync().ConfigureAwait(false);
            return s;
        }
        catch
        {
            System.IO.Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    internal static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private async Task WaitListeningAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException("sshd exited: " + Log);
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, Port).ConfigureAwait(false);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }

    public async Task<Stream> ConnectTcpAsync()
    {
        var c = new TcpClient { NoDelay = true };
        await c.ConnectAsync(IPAddress.Loopback, Port).ConfigureAwait(false);
        return c.GetStream();
    }

    public async Task<SshClient> ConnectAsync(SshKeyPair identity, Func<SshClientOptions, SshClientOptions>? tweak = null, CancellationToken ct = default)
    {
        var o = new SshClientOptions { Identity = identity, ExpectedHostKeys = HostKeys };
        if (tweak is not null) o = tweak(o);
        return await SshClient.ConnectAsync(await ConnectTcpAsync().ConfigureAwait(false), o, ct).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited) _process.Kill();
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
