using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Ssh;

namespace KtConnect.Tests.Integration.Cluster;

/// <summary>
/// A real OpenSSH sshd on 127.0.0.1 standing in for the shadow pod's, that can be killed (with every per-connection
/// child, as when the pod's sshd dies) and started again on the same port with the same host keys.
/// </summary>
internal sealed class ShadowSshd : IAsyncDisposable
{
    private readonly string _config;
    private readonly StringBuilder _log = new();
    private Process? _process;

    private ShadowSshd(string dir, int port, string config, IReadOnlyList<SshPublicKey> hostKeys)
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

    public string Log
    {
        get
        {
            lock (_log) return _log.ToString();
        }
    }

    public static async Task<ShadowSshd> StartAsync(SshKeyPair authorized)
    {
        System.IO.Directory.CreateDirectory("/run/sshd");
        var dir = Path.Combine(Path.GetTempPath(), "ktlink-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(dir);
        ShadowSshd? sshd = null;
        try
        {
            var key = Path.Combine(dir, "host_ecdsa");
            (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ecdsa", "-b", "256", "-N", "", "-f", key])).EnsureSuccess();
            var hostKey = SshPublicKey.ParseAuthorizedKey(await File.ReadAllTextAsync(key + ".pub"));
            await File.WriteAllTextAsync(Path.Combine(dir, "authorized_keys"), authorized.ToAuthorizedKeysLine() + "\n");
            var port = FreePort();
            var config = Path.Combine(dir, "sshd_config");
            await File.WriteAllTextAsync(config, string.Join('\n',
            [
                $"HostKey {key}",
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
                "GatewayPorts yes",
                "MaxSessions 1000",
                "MaxStartups 200",
                "LogLevel DEBUG1",
                "",
            ]));
            sshd = new ShadowSshd(dir, port, config, [hostKey]);
            await sshd.RestartAsync();
            return sshd;
        }
        catch
        {
            if (sshd is not null) await sshd.DisposeAsync();
            else System.IO.Directory.Delete(dir, recursive: true);
            throw;
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
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (p.HasExited) throw new InvalidOperationException("sshd exited: " + Log);
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
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
                var tree = Descendants(_process.Id);
                _process.Kill();
                foreach (var pid in tree)
                {
                    try
                    {
                        using var child = Process.GetProcessById(pid);
                        child.Kill();
                    }
                    catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                    {
                        // Already gone.
                    }
                }
            }
            // Also waits for stderr EOF, i.e. for every process that inherited the pipe.
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(bound.Token);
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Kills one per-connection sshd (with its own children): one SSH connection drops, the listener stays.</summary>
    public int KillOneConnection()
    {
        var listener = _process ?? throw new InvalidOperationException("sshd is not running");
        var children = Children(listener.Id);
        if (children.Count == 0) throw new InvalidOperationException("sshd has no connection");
        var victim = children[0];
        foreach (var pid in Descendants(victim).Prepend(victim))
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
            }
        }
        return victim;
    }

    /// <summary>Live (not zombie) direct children of <paramref name="parent"/>.</summary>
    public static List<int> Children(int parent) => ParentMap().Where(kv => kv.Value.Parent == parent && kv.Value.State != 'Z').Select(kv => kv.Key).ToList();

    private static Dictionary<int, (int Parent, char State)> ParentMap()
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

    private static List<int> Descendants(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
                var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                parents[pid] = int.Parse(rest[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
            {
            }
        }
        var result = new List<int>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            var p = queue.Dequeue();
            foreach (var (child, parent) in parents)
            {
                if (parent != p) continue;
                result.Add(child);
                queue.Enqueue(child);
            }
        }
        return result;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
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
