using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Ssh;
using KtConnect.KubeSim.Testing;

namespace KtConnect.Tests.Integration.Ssh;

/// <summary>
/// A real OpenSSH sshd on 127.0.0.1 and a free port, with host keys, config and authorized_keys in a
/// temp directory; runs as `sshd -D -e -f cfg`. It can be killed with every per-connection child (what a crashed
/// pod sshd looks like), lose one connection, and start again on the same port with the same host keys.
/// Dispose kills it all and removes the directory.
/// </summary>
internal sealed class SshdProcess : IAsyncDisposable
{
    private readonly string _config;
    private readonly StringBuilder _log = new();
    private Process? _process;

    private SshdProcess(string dir, int port, string config, IReadOnlyList<SshPublicKey> hostKeys)
    {
        Directory = dir;
        Port = port;
        _config = config;
        HostKeys = hostKeys;
    }

    public string Directory { get; }

    public int Port { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

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
            // Per-test lines come first: for most keywords sshd keeps the first value it reads.
            foreach (var line in extraConfig ?? []) cfg.Append(line).Append('\n');
            var cfgPath = Path.Combine(dir, "sshd_config");
            for (var attempt = 1; ; attempt++)
            {
                var port = FreePort();
                await File.WriteAllTextAsync(cfgPath, cfg + string.Join('\n',
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
                ])).ConfigureAwait(false);
                var s = new SshdProcess(dir, port, cfgPath, keys);
                try
                {
                    await s.RestartAsync().ConfigureAwait(false);
                    return s;
                }
                catch (InvalidOperationException e) when (attempt < 3 && e.Message.Contains("Address already in use", StringComparison.Ordinal))
                {
                    // Another test chose the same port between the check and sshd's bind: take another.
                    await s.KillAsync().ConfigureAwait(false);
                }
                catch
                {
                    await s.KillAsync().ConfigureAwait(false);
                    throw;
                }
            }
        }
        catch
        {
            System.IO.Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// A port free now on 127.0.0.1, below the kernel's ephemeral range: a port from that range can be handed to another
    /// socket (a listener on port 0, an outgoing connection) between this check and sshd's bind.
    /// </summary>
    internal static int FreePort()
    {
        const int From = 20000;
        var to = EphemeralRangeStart();
        for (var i = 0; to > From + 1000 && i < 100; i++)
        {
            var port = Random.Shared.Next(From, to);
            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return port;
            }
            catch (SocketException)
            {
                // Taken: try another.
            }
        }
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static int EphemeralRangeStart()
    {
        try
        {
            return int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0],
                System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return 32768;
        }
    }

    /// <summary>Starts sshd (again) and waits until it accepts connections.</summary>
    public async Task RestartAsync()
    {
        if (_process is { HasExited: false }) throw new InvalidOperationException("sshd is running");
        _process?.Dispose();
        var psi = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-D", "-e", "-f", _config }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("sshd did not start");
        _process = p;
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_log) _log.AppendLine(e.Data);
        };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        await Wait.UntilAsync(async () =>
        {
            if (p.HasExited)
            {
                await p.WaitForExitAsync().ConfigureAwait(false); // and for the end of its stderr, so the log is whole
                throw new InvalidOperationException("sshd exited: " + Log);
            }
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, Port).ConfigureAwait(false);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, "sshd to accept connections", TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
    }

    /// <summary>Kills the listener and every per-connection sshd (what a crashed or restarted pod sshd looks like).</summary>
    public async Task KillAsync()
    {
        if (_process is null) return;
        try
        {
            if (!_process.HasExited)
            {
                // Process.Kill(entireProcessTree) misses sshd's per-connection children here; find them by ppid first.
                var tree = ProcessTree.Descendants(_process.Id);
                _process.Kill();
                foreach (var pid in tree) ProcessTree.TryKill(pid);
            }
            // Also waits for stderr EOF, i.e. for every process that inherited the pipe.
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Kills one per-connection sshd (with its own children): one SSH connection drops, the listener stays.</summary>
    public int KillOneConnection()
    {
        var listener = _process ?? throw new InvalidOperationException("sshd is not running");
        var children = ProcessTree.Children(listener.Id);
        if (children.Count == 0) throw new InvalidOperationException("sshd has no connection");
        var victim = children[0];
        foreach (var pid in ProcessTree.Descendants(victim).Prepend(victim)) ProcessTree.TryKill(pid);
        return victim;
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
        await KillAsync().ConfigureAwait(false);
        _process?.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Process parentage read from /proc (comm may hold spaces and parentheses, so fields are read after the last ')').</summary>
internal static class ProcessTree
{
    /// <summary>Live (not zombie) direct children of <paramref name="parent"/>.</summary>
    public static List<int> Children(int parent) =>
        Read().Where(kv => kv.Value.Parent == parent && kv.Value.State != 'Z').Select(kv => kv.Key).ToList();

    /// <summary>Every descendant of <paramref name="root"/>, breadth first.</summary>
    public static List<int> Descendants(int root)
    {
        var map = Read();
        var result = new List<int>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            var p = queue.Dequeue();
            foreach (var (child, info) in map)
            {
                if (info.Parent != p) continue;
                result.Add(child);
                queue.Enqueue(child);
            }
        }
        return result;
    }

    public static void TryKill(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            p.Kill();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    private static Dictionary<int, (int Parent, char State)> Read()
    {
        var map = new Dictionary<int, (int, char)>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                map[pid] = (int.Parse(rest[1], System.Globalization.CultureInfo.InvariantCulture), rest[0][0]);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
            {
            }
        }
        return map;
    }
}
