using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Net;
using KtConnect.Engine.Sessions.Tunnel;
using KtConnect.Engine.Ssh;

namespace KtConnect.Bench;

/// <summary>
/// What the SSH scenarios share: a real sshd on loopback (same setup as the integration tests), our
/// client connected to it, an OpenSSH client process for the peer side, and local TCP sink/source
/// servers. Our side is given a local TCP listener too (<see cref="SshBenchLocalForward"/>), so both
/// sides carry the same hops: bench socket → forwarder → SSH → sshd → target.
/// </summary>
internal sealed class SshBenchHost : IAsyncDisposable
{
    private readonly Process _sshd;
    private readonly List<Process> _clients = [];
    private readonly List<Process> _helpers = [];

    private SshBenchHost(string dir, int port, Process sshd, SshKeyPair key, IReadOnlyList<SshPublicKey> hostKeys)
    {
        Directory = dir;
        Port = port;
        _sshd = sshd;
        Key = key;
        HostKeys = hostKeys;
    }

    public string Directory { get; }

    public int Port { get; }

    public SshKeyPair Key { get; }

    public IReadOnlyList<SshPublicKey> HostKeys { get; }

    public static async Task<SshBenchHost> StartAsync(IEnumerable<string> extraConfig)
    {
        System.IO.Directory.CreateDirectory("/run/sshd");
        var dir = Path.Combine(Path.GetTempPath(), "ktssh-bench-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir);
        var hostKey = Path.Combine(dir, "host_ecdsa");
        (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-t", "ecdsa", "-b", "256", "-N", "", "-f", hostKey]).ConfigureAwait(false)).EnsureSuccess();
        var hostPub = SshPublicKey.ParseAuthorizedKey(await File.ReadAllTextAsync(hostKey + ".pub").ConfigureAwait(false));
        var key = SshKeyPair.GenerateEcdsa("bench");
        await File.WriteAllTextAsync(Path.Combine(dir, "authorized_keys"), key.ToAuthorizedKeysLine() + "\n").ConfigureAwait(false);
        var idFile = Path.Combine(dir, "id_ecdsa");
        await File.WriteAllTextAsync(idFile, key.ToOpenSshPrivateKey()).ConfigureAwait(false);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(idFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var port = FreePort();
        await File.WriteAllTextAsync(Path.Combine(dir, "known_hosts"), $"[127.0.0.1]:{port} {hostPub.ToAuthorizedKeysLine()}\n").ConfigureAwait(false);
        var cfg = string.Join('\n', extraConfig.Concat(
        [
            $"Port {port}", "ListenAddress 127.0.0.1", $"HostKey {hostKey}", $"PidFile {dir}/sshd.pid",
            $"AuthorizedKeysFile {dir}/authorized_keys", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "AllowTcpForwarding yes", "GatewayPorts yes",
            "MaxSessions 1000", "MaxStartups 200", "LogLevel ERROR", "",
        ]));
        var cfgPath = Path.Combine(dir, "sshd_config");
        await File.WriteAllTextAsync(cfgPath, cfg).ConfigureAwait(false);
        var psi = new ProcessStartInfo("/usr/sbin/sshd") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in new[] { "-D", "-e", "-f", cfgPath }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("sshd did not start");
        p.ErrorDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        var host = new SshBenchHost(dir, port, p, key, [hostPub]);
        await WaitPortAsync(port, () => p.HasExited).ConfigureAwait(false);
        return host;
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public static async Task WaitPortAsync(int port, Func<bool> failed)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            if (failed()) throw new InvalidOperationException($"process for port {port} exited");
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }

    public Task<SshClient> ConnectAsync(string? cipher, string? mac) => ConnectAsync(Port, Key, HostKeys, cipher, mac);

    private static async Task<SshClient> ConnectAsync(int port, SshKeyPair key, IReadOnlyList<SshPublicKey> hostKeys, string? cipher, string? mac)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(IPAddress.Loopback, port).ConfigureAwait(false);
        return await SshClient.ConnectAsync(tcp.GetStream(), new SshClientOptions
        {
            Identity = key,
            ExpectedHostKeys = hostKeys,
            Algorithms = new SshAlgorithmPreferences
            {
                Ciphers = cipher is null ? SshAlgorithms.DefaultCiphers : [cipher],
                Macs = mac is null ? SshAlgorithms.DefaultMacs : [mac],
            },
        }, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Starts <c>ssh -N</c> with the given forwarding arguments and waits until <paramref name="readyPort"/> accepts.</summary>
    public async Task StartOpenSshAsync(string? cipher, string? mac, int readyPort, params string[] forward)
    {
        var psi = new ProcessStartInfo("ssh") { UseShellExecute = false, RedirectStandardError = true };
        var args = new List<string>
        {
            "-N", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", Path.Combine(Directory, "id_ecdsa"),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", $"UserKnownHostsFile={Directory}/known_hosts",
            "-o", "ExitOnForwardFailure=yes", "-o", "Compression=no", "-o", "IdentitiesOnly=yes", "-F", "/dev/null",
        };
        if (cipher is not null) args.AddRange(["-c", cipher]);
        if (mac is not null) args.AddRange(["-m", mac]);
        args.AddRange(forward);
        args.Add("root@127.0.0.1");
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("ssh did not start");
        var err = new StringBuilder();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null) lock (err) err.AppendLine(e.Data);
        };
        p.BeginErrorReadLine();
        _clients.Add(p);
        try
        {
            await WaitPortAsync(readyPort, () => p.HasExited).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            lock (err) throw new InvalidOperationException("ssh failed: " + err);
        }
    }

    /// <summary>CPU time used so far by the OpenSSH client processes this host started.</summary>
    public TimeSpan OpenSshCpu => CpuOf(_clients);

    /// <summary>CPU time used so far by our forwards in processes of their own (<see cref="StartOurForwardProcessAsync"/>).</summary>
    public TimeSpan OurProcessCpu => CpuOf(_helpers);

    private static TimeSpan CpuOf(List<Process> processes)
    {
        var t = TimeSpan.Zero;
        foreach (var p in processes)
        {
            p.Refresh();
            if (!p.HasExited) t += p.TotalProcessorTime;
        }
        return t;
    }

    /// <summary>The command-line flag that makes this bench run <see cref="RunForwardHelperAsync"/>.</summary>
    public const string ForwardHelperFlag = "--ssh-forward-helper";

    /// <summary>
    /// Starts our local forward in a process of its own: this bench in helper mode, connected to this sshd with the same
    /// key. So ours runs apart from the bench's source and sink, as <c>kt</c> does and as <c>ssh -L</c> does. Returns
    /// the port it listens on.
    /// </summary>
    public async Task<int> StartOurForwardProcessAsync(string cipher, string? mac, int targetPort)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardInput = true };
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        foreach (var a in (string[])[typeof(SshBenchHost).Assembly.Location, ForwardHelperFlag, Directory, Port.ToString(inv), cipher, mac ?? "-", targetPort.ToString(inv)])
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("the forward helper did not start");
        _helpers.Add(p);
        var line = await p.StandardOutput.ReadLineAsync().ConfigureAwait(false);
        return int.TryParse(line, inv, out var port) ? port : throw new InvalidOperationException("the forward helper did not report a port: " + line);
    }

    /// <summary>
    /// The helper's body (<see cref="ForwardHelperFlag"/> dir sshPort cipher mac|- targetPort): connects with the host's
    /// key, forwards, prints its port and runs until its standard input closes.
    /// </summary>
    public static async Task<int> RunForwardHelperAsync(string[] args)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var key = SshKeyPair.Parse(await File.ReadAllTextAsync(Path.Combine(args[0], "id_ecdsa")).ConfigureAwait(false));
        var hostKey = SshPublicKey.ParseAuthorizedKey(await File.ReadAllTextAsync(Path.Combine(args[0], "host_ecdsa.pub")).ConfigureAwait(false));
        await using var client = await ConnectAsync(int.Parse(args[1], inv), key, [hostKey], args[2], args[3] == "-" ? null : args[3]).ConfigureAwait(false);
        await using var forward = new SshBenchLocalForward(client, int.Parse(args[4], inv));
        await Console.Out.WriteLineAsync(forward.Port.ToString(inv)).ConfigureAwait(false);
        await Console.Out.FlushAsync().ConfigureAwait(false);
        // Console.In reads synchronously: on a pool thread of its own, so it never holds the thread that resumes here
        // (with inline socket completions, the socket engine's epoll thread).
        await Task.Run(() => Console.In.ReadToEndAsync()).ConfigureAwait(false);
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _helpers.Concat(_clients).Append(_sshd))
        {
            try
            {
                if (!p.HasExited) p.Kill();
                await p.WaitForExitAsync().ConfigureAwait(false);
            }
            catch (InvalidOperationException)
            {
            }
            p.Dispose();
        }
        Key.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

/// <summary>
/// Local TCP servers at the far end: a sink that counts bytes until EOF and answers with the count,
/// a source that sends the number of bytes the client asks for, and a 1-byte echo.
/// </summary>
internal sealed class SshBenchTargets : IAsyncDisposable
{
    private readonly TcpListener _sink = new(IPAddress.Loopback, 0);
    private readonly TcpListener _source = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _loops = [];

    public SshBenchTargets()
    {
        _sink.Start();
        _source.Start();
        _loops.Add(AcceptAsync(_sink, SinkAsync));
        _loops.Add(AcceptAsync(_source, SourceAsync));
    }

    public int SinkPort => ((IPEndPoint)_sink.LocalEndpoint).Port;

    public int SourcePort => ((IPEndPoint)_source.LocalEndpoint).Port;

    private async Task AcceptAsync(TcpListener l, Func<NetworkStream, Task> serve)
    {
        try
        {
            while (true)
            {
                var c = await l.AcceptTcpClientAsync(_cts.Token).ConfigureAwait(false);
                c.NoDelay = true;
                _ = Task.Run(async () =>
                {
                    using (c)
                    {
                        try
                        {
                            await serve(c.GetStream()).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
                        {
                        }
                    }
                });
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task SinkAsync(NetworkStream s)
    {
        var buf = new byte[256 * 1024];
        long total = 0;
        int n;
        while ((n = await s.ReadAsync(buf, _cts.Token).ConfigureAwait(false)) > 0) total += n;
        var ack = BitConverter.GetBytes(total);
        await s.WriteAsync(ack, _cts.Token).ConfigureAwait(false);
    }

    private async Task SourceAsync(NetworkStream s)
    {
        var req = new byte[8];
        await s.ReadExactlyAsync(req, _cts.Token).ConfigureAwait(false);
        var want = BitConverter.ToInt64(req);
        var buf = new byte[256 * 1024];
        for (long sent = 0; sent < want; sent += buf.Length)
            await s.WriteAsync(buf.AsMemory(0, (int)Math.Min(buf.Length, want - sent)), _cts.Token).ConfigureAwait(false);
    }

    /// <summary>Uploads <paramref name="bytes"/> to the sink through <paramref name="port"/>; returns MiB/s.</summary>
    public static async Task<double> UploadAsync(int port, long bytes, CancellationToken ct)
    {
        using var c = new TcpClient { NoDelay = true };
        await c.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
        var s = c.GetStream();
        var buf = new byte[256 * 1024];
        var sw = Stopwatch.StartNew();
        for (long sent = 0; sent < bytes; sent += buf.Length)
            await s.WriteAsync(buf.AsMemory(0, (int)Math.Min(buf.Length, bytes - sent)), ct).ConfigureAwait(false);
        c.Client.Shutdown(SocketShutdown.Send);
        var ack = new byte[8];
        await s.ReadExactlyAsync(ack, ct).ConfigureAwait(false);
        sw.Stop();
        if (BitConverter.ToInt64(ack) != bytes) throw new InvalidOperationException("sink received a different byte count");
        return bytes / 1048576.0 / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Downloads <paramref name="bytes"/> from the source through <paramref name="port"/>; returns MiB/s.</summary>
    public static async Task<double> DownloadAsync(int port, long bytes, CancellationToken ct)
    {
        using var c = new TcpClient { NoDelay = true };
        await c.ConnectAsync(IPAddress.Loopback, port, ct).ConfigureAwait(false);
        var s = c.GetStream();
        var sw = Stopwatch.StartNew();
        await s.WriteAsync(BitConverter.GetBytes(bytes), ct).ConfigureAwait(false);
        var buf = new byte[256 * 1024];
        long got = 0;
        int n;
        while (got < bytes && (n = await s.ReadAsync(buf, ct).ConfigureAwait(false)) > 0) got += n;
        sw.Stop();
        if (got != bytes) throw new InvalidOperationException("source sent a different byte count");
        return bytes / 1048576.0 / sw.Elapsed.TotalSeconds;
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _sink.Stop();
        _source.Stop();
        await Task.WhenAll(_loops).ConfigureAwait(false);
        _cts.Dispose();
    }
}

/// <summary>Our <c>ssh -L</c>: a local listener whose every connection becomes a direct-tcpip channel.</summary>
internal sealed class SshBenchLocalForward : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly SshClient _client;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop;

    public SshBenchLocalForward(SshClient client, int targetPort)
    {
        _client = client;
        _targetPort = targetPort;
        _listener.Start();
        _loop = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var c = await _listener.AcceptTcpClientAsync(_cts.Token).ConfigureAwait(false);
                c.NoDelay = true;
                _ = Task.Run(async () =>
                {
                    using (c)
                    {
                        try
                        {
                            await using var ch = await _client.OpenDirectTcpIpAsync("127.0.0.1", _targetPort, "127.0.0.1", 0, _cts.Token).ConfigureAwait(false);
                            await SshBenchPipe.SpliceAsync(c, ch, _cts.Token).ConfigureAwait(false);
                        }
                        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or SshException)
                        {
                        }
                    }
                });
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _loop.ConfigureAwait(false);
        _cts.Dispose();
    }
}

/// <summary>Ours relays a channel the way the product does (exchange's LocalRelay, connect's flows).</summary>
internal static class SshBenchPipe
{
    /// <summary>Copies both ways between a socket and a channel, passing half-closes through.</summary>
    public static async Task SpliceAsync(TcpClient tcp, SshChannelStream ch, CancellationToken ct)
    {
        await using var flow = new SshFlowStream(ch);
        await using var local = new HalfCloseNetworkStream(tcp.Client);
        await Socks5Server.RelayAsync(flow, local, ct).ConfigureAwait(false);
    }
}
