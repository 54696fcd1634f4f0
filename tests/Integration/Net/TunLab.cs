using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.Linux;
using KtConnect.KubeSim.Host;

namespace KtConnect.Tests.Integration.Net;

/// <summary>
/// A "laptop" network namespace with a tun device served by our stack, routes for a fake cluster range
/// (10.96.0.0/16, fd00:96::/64) into it, and servers on 127.0.0.1 of this process that the dialer maps
/// every cluster address onto (same port). Clients run inside the laptop namespace with the kernel's TCP.
/// The tun is created by this process from a thread that entered the namespace with setns(2), so it is
/// not persistent: it disappears with the fd, and the namespace is deleted on dispose.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class TunLab : IAsyncDisposable
{
    public const string ClusterV4 = "10.96.0.10";
    public const string ClusterV6 = "fd00:96::10";

    private readonly List<IDisposable> _servers = [];
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _serverTasks = [];

    private TunLab(NetNs laptop, string tun, UserSpaceStack stack, string script)
    {
        Laptop = laptop;
        Tun = tun;
        Stack = stack;
        Script = script;
    }

    public NetNs Laptop { get; }

    public string Tun { get; }

    public UserSpaceStack Stack { get; }

    /// <summary>Path of the python client helper.</summary>
    public string Script { get; }

    public static async Task<TunLab> CreateAsync(IUdpDatagramHandler? udp = null, int mtu = 1500, StackOptions? options = null,
        Func<IPacketDevice, IPacketDevice>? wrap = null, IPAddress? target = null)
    {
        RaiseFileLimit();
        var laptop = await NetNs.CreateAsync("ktnet-");
        try
        {
            var tun = "ktn" + Guid.NewGuid().ToString("N")[..8];
            var device = await LinuxTunDevice.CreateAsync(tun, mtu, ["198.18.0.1/32", "fd00:198::1/128"], laptop.Name);
            var dialer = new TcpFlowDialer(ep => new IPEndPoint(target ?? IPAddress.Loopback, ep.Port));
            var stack = new UserSpaceStack(wrap?.Invoke(device) ?? device, dialer, (options ?? new StackOptions()) with { Mtu = mtu }, udp);
            stack.Start();
            await laptop.ExecAsync(default, "ip", "route", "add", "10.96.0.0/16", "dev", tun);
            await laptop.ExecAsync(default, "ip", "-6", "route", "add", "fd00:96::/64", "dev", tun);
            var script = Path.Combine(Path.GetTempPath(), $"ktnet-client-{Guid.NewGuid():N}.py");
            await File.WriteAllTextAsync(script, ClientScript);
            return new TunLab(laptop, tun, stack, script);
        }
        catch
        {
            await laptop.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs the python client helper in the laptop namespace.</summary>
    public Task<ProcessResult> ClientAsync(TimeSpan timeout, params string[] args) =>
        Laptop.RunAsync(["python3", Script, .. args], timeout: timeout);

    /// <summary>Starts a server on 127.0.0.1:0 handling each connection with <paramref name="handler"/>; returns its port.</summary>
    public int Serve(Func<Socket, CancellationToken, Task> handler)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4096);
        _servers.Add(listener);
        var ct = _cts.Token;
        _serverTasks.Add(Task.Run(async () =>
        {
            while (!ct.IsCancellationRequested)
            {
                Socket s;
                try
                {
                    s = await listener.AcceptAsync(ct);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await handler(s, ct);
                    }
                    catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
                    {
                    }
                    finally
                    {
                        s.Dispose();
                    }
                }, ct);
            }
        }, ct));
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    /// <summary>Echoes everything until EOF, then closes.</summary>
    public static async Task Echo(Socket s, CancellationToken ct)
    {
        var buf = new byte[16384];
        int n;
        while ((n = await s.ReceiveAsync(buf, ct)) > 0) await s.SendAsync(buf.AsMemory(0, n), ct);
        s.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Reads until EOF and answers with the SHA-256 (hex) of what it read.</summary>
    public static async Task Hash(Socket s, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[65536];
        int n;
        while ((n = await s.ReceiveAsync(buf, ct)) > 0) sha.AppendData(buf, 0, n);
        await s.SendAsync(Encoding.ASCII.GetBytes(Convert.ToHexStringLower(sha.GetHashAndReset())), ct);
        s.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Reads a decimal byte count and a newline, sends that many bytes of a fixed pattern, closes.</summary>
    public static async Task Source(Socket s, CancellationToken ct)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (await s.ReceiveAsync(one, ct) == 1 && one[0] != '\n') line.Append((char)one[0]);
        var remaining = long.Parse(line.ToString(), System.Globalization.CultureInfo.InvariantCulture);
        var block = Pattern(65536);
        while (remaining > 0)
        {
            var n = (int)Math.Min(remaining, block.Length);
            await s.SendAsync(block.AsMemory(0, n), ct);
            remaining -= n;
        }
        s.Shutdown(SocketShutdown.Send);
        while (await s.ReceiveAsync(one, ct) > 0)
        {
        }
    }

    /// <summary>The byte pattern <see cref="Source"/> sends and the client script checks: i mod 251.</summary>
    public static byte[] Pattern(int length)
    {
        var b = new byte[length];
        for (var i = 0; i < length; i++) b[i] = (byte)(i % 251);
        return b;
    }

    private static void RaiseFileLimit()
    {
        if (GetRLimit(7, out var current) == 0 && current.Current >= 16384) return;
        // 10,000 flows mean 10,000 dialed sockets in this process (the idle test's echo server is another
        // process). Raising the soft limit to the hard one; containers may refuse more.
        var limit = new RLimit { Current = 65536, Max = 65536 };
        if (SetRLimit(7 /* RLIMIT_NOFILE */, ref limit) == 0) return;
        // Without CAP_SYS_RESOURCE only the soft limit can move, up to the hard one.
        if (GetRLimit(7, out var now) == 0)
        {
            now.Current = now.Max;
            _ = SetRLimit(7, ref now);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    [DllImport("libc", EntryPoint = "getrlimit")]
#pragma warning disable SYSLIB1054
    private static extern int GetRLimit(int resource, out RLimit limit);
#pragma warning restore SYSLIB1054

    [DllImport("libc", EntryPoint = "setrlimit")]
#pragma warning disable SYSLIB1054 // a test helper; LibraryImport's generator is not worth it for one call
    private static extern int SetRLimit(int resource, ref RLimit limit);
#pragma warning restore SYSLIB1054

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        foreach (var s in _servers) s.Dispose();
        await Stack.DisposeAsync();
        try
        {
            await Task.WhenAll(_serverTasks).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
        }
        await Laptop.DisposeAsync();
        File.Delete(Script);
        _cts.Dispose();
    }

    private const string ClientScript = """
import hashlib, socket, sys, time, threading

def connect(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    # Generous: under a loaded machine the kernel's own retransmission backoff alone was seen to pass 100 s.
    s.settimeout(150)
    s.connect((host, int(port)))
    return s

def recv_all(s):
    chunks = []
    while True:
        b = s.recv(1 << 20)
        if not b:
            return b''.join(chunks)
        chunks.append(b)

def pattern(n):
    block = bytes(i % 251 for i in range(65536))
    return block, n

cmd = sys.argv[1]
if cmd == 'upload':
    host, port, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    import random
    rnd = random.Random(42)
    s = connect(host, port)
    h = hashlib.sha256()
    sent = 0
    while sent < n:
        b = rnd.randbytes(min(65536, n - sent))
        s.sendall(b)
        h.update(b)
        sent += len(b)
    s.shutdown(socket.SHUT_WR)
    reply = recv_all(s).decode()
    print('OK' if reply == h.hexdigest() else 'MISMATCH %s %s' % (reply, h.hexdigest()))
elif cmd == 'download':
    host, port, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = connect(host, port)
    s.sendall(b'%d\n' % n)
    h = hashlib.sha256()
    got = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        h.update(b)
        got += len(b)
    e = hashlib.sha256()
    block = bytes(i % 251 for i in range(65536))
    left = n
    while left > 0:
        k = min(left, 65536)
        e.update(block[:k])
        left -= k
    print('OK' if got == n and h.hexdigest() == e.hexdigest() else 'MISMATCH got=%d' % got)
elif cmd == 'short':
    host, port, count, par = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    ok = [0]
    lock = threading.Lock()
    def worker(k):
        for i in range(k):
            s = connect(host, port)
            s.sendall(b'ping')
            s.shutdown(socket.SHUT_WR)
            if recv_all(s) == b'ping':
                with lock:
                    ok[0] += 1
            s.close()
    ts = [threading.Thread(target=worker, args=(count // par,)) for _ in range(par)]
    for t in ts: t.start()
    for t in ts: t.join()
    print('OK %d' % ok[0])
elif cmd == 'idle':
    host, port, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
    socks = []
    for i in range(count):
        socks.append(connect(host, port))
    print('CONNECTED %d' % len(socks), flush=True)
    sys.stdin.readline()
    ok = 0
    for s in socks:
        s.sendall(b'x')
    # 10,000 segments at once can overflow the tun's queue (LinuxTunDevice.TxQueueLength); the kernel sends the dropped
    # ones again with exponential backoff. One overall deadline; a socket with no echo by then is reported, not fatal.
    deadline = time.monotonic() + 150
    lost = []
    for s in socks:
        s.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            if s.recv(1) == b'x':
                ok += 1
        except socket.timeout:
            lost.append(str(s.getsockname()[1]))
    print('ALIVE %d' % ok + (' LOST ' + ','.join(lost) if lost else ''), flush=True)
    if lost:
        sys.stdin.readline()  # the sockets stay open while the test looks at them
elif cmd == 'echoserver':
    import asyncio
    async def handle(r, w):
        try:
            while True:
                b = await r.read(4096)
                if not b:
                    break
                w.write(b)
                await w.drain()
        except ConnectionError:
            pass
        w.close()
    async def main():
        srv = await asyncio.start_server(handle, '127.0.0.1', 0, backlog=4096)
        print(srv.sockets[0].getsockname()[1], flush=True)
        await srv.serve_forever()
    asyncio.run(main())
elif cmd == 'udp':
    host, port, payload = sys.argv[2], sys.argv[3], sys.argv[4]
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((host, int(port)))
    try:
        s.send(payload.encode())
        print('REPLY ' + s.recv(2048).decode())
    except ConnectionRefusedError:
        print('REFUSED')
    except socket.timeout:
        print('TIMEOUT')
elif cmd == 'connect':
    host, port = sys.argv[2], sys.argv[3]
    try:
        s = connect(host, port)
        s.sendall(b'hello')
        data = s.recv(100)
        print('DATA %r' % data)
    except ConnectionRefusedError:
        print('REFUSED')
    except ConnectionResetError:
        print('RESET')
""";
}
