using System.Globalization;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.KubeSim.Images;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// One simulated Kubernetes node. Layout (all names start with "ktsim-&lt;id&gt;-"):
/// <list type="bullet">
/// <item>the node namespace "-node": its loopback holds the pods' gateway and the cluster DNS IP,
/// IP forwarding on, nftables table ktsim_svc (Service DNAT), dnsmasq (cluster DNS);</item>
/// <item>one namespace per pod "-pN": eth0 with the pod IP/32, default route via the gateway, its peer
/// ktspN in the node namespace with a /32 route. Pods are routed, not bridged, so every packet between
/// pods crosses the node's conntrack and DNAT replies are translated back without br_netfilter
/// (the way routed CNIs such as Calico work);</item>
/// <item>laptop namespaces "-lN" linked to the root namespace only (<see cref="SimLaptop"/>).</item>
/// </list>
/// Nothing is routed in the root namespace. Port-forward and probes open sockets inside the pod's
/// namespace (<see cref="NetNsSocket"/>); exec runs `ip netns exec` with the pod's environment.
/// Everything created is listed in state.json first (<see cref="SimNodeState"/>).
/// </summary>
public sealed class SimNode : IAsyncDisposable
{
    public const string NamespacePrefix = "ktsim-";
    public const string NftTablePrefix = "ktsim_";
    private const string BasePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private static readonly SemaphoreSlim LaptopLinkLock = new(1, 1);

    private readonly IImageCatalog _images;
    private readonly Ipv4Cidr _podCidr;
    private readonly uint _gateway;
    private readonly bool _ownsStateDirectory;
    private readonly object _gate = new();
    private readonly Dictionary<string, PodRuntime> _pods = new(StringComparer.Ordinal);
    private readonly HashSet<uint> _usedIps = [];
    private readonly List<SimLaptop> _laptops = [];
    private readonly SemaphoreSlim _servicesLock = new(1, 1);
    private readonly SimNodeState _state;
    private IReadOnlyList<ServiceLite> _services = [];
    private ClusterDns? _dns;
    private uint _nextIpOffset = 2;
    private int _podSeq;
    private int _laptopSeq;
    private int _disposed;
    private bool _nodeCreated;

    private SimNode(string id, SimNodeOptions options, string stateDirectory, bool ownsStateDirectory)
    {
        Id = id;
        Options = options;
        StateDirectory = stateDirectory;
        _ownsStateDirectory = ownsStateDirectory;
        _images = options.Images ?? new ImageCatalog();
        _podCidr = Ipv4Cidr.Parse(options.NodePodCidr);
        if (_podCidr.PrefixLength > 29) throw new KtException("SimInvalidAddress", KtErrorCategory.InvalidArgument, "NodePodCidr is too small.", target: options.NodePodCidr);
        _gateway = _podCidr.Network + 1;
        _ = Ipv4Cidr.ParseAddress(options.ClusterDnsIp);
        NodeNetNs = NamespacePrefix + id + "-node";
        _state = new SimNodeState { Id = id };
    }

    /// <summary>Four hex digits; every name this node creates carries "ktsim-&lt;Id&gt;-".</summary>
    public string Id { get; }

    public SimNodeOptions Options { get; }

    public string StateDirectory { get; }

    public string NodeNetNs { get; }

    /// <summary>The pods' default gateway (first address of the node's pod range).</summary>
    public string GatewayIp => Ipv4Cidr.Format(_gateway);

    public string ClusterDnsIp => Options.ClusterDnsIp;

    /// <summary>The Services last given to <see cref="SetServicesAsync"/>.</summary>
    public IReadOnlyList<ServiceLite> Services => _services;

    public IReadOnlyList<SimPodInfo> Pods
    {
        get
        {
            lock (_gate) return [.. _pods.Values.Where(p => p.Process is not null).Select(p => p.Info)];
        }
    }

    /// <summary>Creates the node namespace, its gateway, forwarding, an empty Service table and the cluster DNS.</summary>
    public static async Task<SimNode> StartAsync(SimNodeOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new SimNodeOptions();
        // An id no namespace and no temp state directory uses yet, so names never meet another run's.
        string id;
        do
        {
            id = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(2));
        }
        while ((Directory.Exists("/var/run/netns") && Directory.GetFiles("/var/run/netns", NamespacePrefix + id + "-*").Length > 0) ||
            Directory.Exists(Path.Combine(Path.GetTempPath(), NamespacePrefix + id)));
        var owns = options.StateDirectory is null;
        var dir = options.StateDirectory ?? Path.Combine(Path.GetTempPath(), NamespacePrefix + id);
        Directory.CreateDirectory(dir);
        var node = new SimNode(id, options, dir, owns);
        try
        {
            await node.InitializeAsync(cancellationToken).ConfigureAwait(false);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        Record(s => s.NetworkNamespaces.Add(NodeNetNs));
        await IpAsync(cancellationToken, "netns", "add", NodeNetNs).ConfigureAwait(false);
        _nodeCreated = true;
        await IpAsync(cancellationToken, "-n", NodeNetNs, "link", "set", "lo", "up").ConfigureAwait(false);
        // The gateway and DNS addresses live on the node's loopback (the dummy module is not always
        // there); ARP on the pod veths answers for any local address, so pods still find the gateway.
        await IpAsync(cancellationToken, "-n", NodeNetNs, "addr", "add", GatewayIp + "/32", "dev", "lo").ConfigureAwait(false);
        await IpAsync(cancellationToken, "-n", NodeNetNs, "addr", "add", ClusterDnsIp + "/32", "dev", "lo").ConfigureAwait(false);
        // Namespaces inherit IPv4 sysctls from the root namespace: forwarding on, reverse-path filter off, explicitly.
        (await ProcessRunner.RunAsync("ip", ["netns", "exec", NodeNetNs, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"], cancellationToken: cancellationToken)
            .ConfigureAwait(false)).EnsureSuccess("SimNodeSetupFailed");
        _dns = await ClusterDns.StartAsync(NodeNetNs, ClusterDnsIp, Options.ClusterDomain, Path.Combine(StateDirectory, "dns"),
            Options.ClusterDnsHostRecords, cancellationToken).ConfigureAwait(false);
        Record(s => s.ProcessIds.Add(_dns.Pid));
        await SetServicesAsync([], cancellationToken).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- pods

    /// <summary>
    /// Starts a pod: its namespace, address, volumes, resolv.conf and process. Returns once the process
    /// runs (the pod is Running, not yet Ready: see <see cref="WaitPodReadyAsync"/>). Throws
    /// <see cref="SimImagePullException"/> (ErrorId "ErrImagePull") for an image the catalog does not
    /// know, before anything is created; "SimPodExists" when the key is taken.
    /// </summary>
    public async Task<SimPodInfo> StartPodAsync(PodSpecLite spec, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        ValidateName(spec.Namespace);
        ValidateName(spec.Name);
        var launcher = _images.Resolve(spec) ?? throw new SimImagePullException(spec.Image, spec.Key);
        PodRuntime rt;
        lock (_gate)
        {
            if (_pods.ContainsKey(spec.Key))
                throw new KtException("SimPodExists", KtErrorCategory.ResourceExists, $"Pod {spec.Key} is already running on the node.", target: spec.Key);
            var seq = ++_podSeq;
            rt = new PodRuntime(spec, launcher.Name, AllocateIp(),
                $"{NamespacePrefix}{Id}-p{seq.ToString(CultureInfo.InvariantCulture)}",
                "ktsp" + seq.ToString(CultureInfo.InvariantCulture),
                Path.Combine(StateDirectory, "pods", $"p{seq.ToString(CultureInfo.InvariantCulture)}-{spec.Namespace}-{spec.Name}"));
            _pods.Add(spec.Key, rt);
        }
        try
        {
            Record(s =>
            {
                s.NetworkNamespaces.Add(rt.NetNs);
                s.EtcNetNsDirectories.Add(rt.EtcDirectory);
            });
            Directory.CreateDirectory(rt.Directory);
            Directory.CreateDirectory(rt.EtcDirectory);
            await WriteVolumesAsync(rt, cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(rt.EtcDirectory, "resolv.conf"),
                $"nameserver {ClusterDnsIp}\nsearch {spec.Namespace}.svc.{Options.ClusterDomain} svc.{Options.ClusterDomain} {Options.ClusterDomain}\noptions ndots:5\n",
                cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(rt.EtcDirectory, "hosts"),
                $"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{rt.IpText}\t{spec.Name}\n", cancellationToken).ConfigureAwait(false);

            await IpAsync(cancellationToken, "netns", "add", rt.NetNs).ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", rt.NetNs, "link", "set", "lo", "up").ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", NodeNetNs, "link", "add", rt.NodeVeth, "type", "veth", "peer", "name", "eth0", "netns", rt.NetNs).ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", NodeNetNs, "link", "set", rt.NodeVeth, "up").ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", NodeNetNs, "route", "add", rt.IpText + "/32", "dev", rt.NodeVeth).ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", rt.NetNs, "addr", "add", rt.IpText + "/32", "dev", "eth0").ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", rt.NetNs, "link", "set", "eth0", "up").ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", rt.NetNs, "route", "add", GatewayIp, "dev", "eth0", "scope", "link").ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", rt.NetNs, "route", "add", "default", "via", GatewayIp, "dev", "eth0").ConfigureAwait(false);

            var context = new PodLaunchContext(spec, rt.IpText, rt.NetNs, rt.Directory, Path.Combine(StateDirectory, "shared"));
            var command = await launcher.PrepareAsync(context, cancellationToken).ConfigureAwait(false);
            var env = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["PATH"] = BasePath,
                ["HOME"] = "/root",
                ["HOSTNAME"] = spec.Name,
                ["LANG"] = "C.UTF-8",
            };
            foreach (var (k, v) in spec.Env) env[k] = v;
            rt.ExecEnvironment = new Dictionary<string, string>(env, StringComparer.Ordinal);
            foreach (var (k, v) in command.Environment) env[k] = v;
            rt.Command = command;
            // tty: true runs the main process on a pseudo-terminal (stdout and stderr both on it, as a runtime does);
            // stdin: true (or a tty) keeps its stdin open for attachers.
            var argv = spec.Tty && Terminal.Available ? Terminal.Wrap(command.Argv, rt.TtyFile) : command.Argv;
            var process = NsProcess.Start(rt.NetNs, argv, env, rt.LogPath, keepStdin: spec.Stdin || spec.Tty);
            lock (_gate) rt.Process = process;
            Record(s => s.ProcessIds.Add(process.Pid));
            rt.Started.SetResult();
            return rt.Info;
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                if (_pods.TryGetValue(spec.Key, out var current) && current == rt) _pods.Remove(spec.Key);
            }
            await CleanupPodAsync(rt).ConfigureAwait(false);
            rt.Started.SetException(e);
            _ = rt.Started.Task.Exception; // observed here; a concurrent delete only waits on it
            throw;
        }
    }

    /// <summary>
    /// Waits until the pod is Ready: its readiness ports accept TCP connections from the node (as kubelet
    /// probes do) and its ready file, if any, exists. Throws "SimPodExited" if the process ends first
    /// (the message carries the log's tail) and "SimPodNotReady" after <see cref="SimNodeOptions.ReadyTimeout"/>.
    /// </summary>
    public async Task WaitPodReadyAsync(string podKey, CancellationToken cancellationToken = default)
    {
        var rt = Get(podKey);
        var deadline = DateTime.UtcNow + Options.ReadyTimeout;
        while (true)
        {
            if (rt.Process!.Exited.IsCompleted)
                throw new KtException("SimPodExited", KtErrorCategory.InvalidOperation,
                    $"Pod {podKey} exited with code {await rt.Process.Exited.ConfigureAwait(false)} before it was ready: {LogTail(rt)}", target: podKey);
            if (await IsReadyAsync(rt, cancellationToken).ConfigureAwait(false)) return;
            if (DateTime.UtcNow > deadline)
                throw new KtException("SimPodNotReady", KtErrorCategory.OperationTimeout,
                    $"Pod {podKey} was not ready within {Options.ReadyTimeout.TotalSeconds:0}s: {LogTail(rt)}", target: podKey);
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Completes with the pod process's exit code when it ends by itself or is deleted.</summary>
    public Task<int> WaitPodExitAsync(string podKey, CancellationToken cancellationToken = default) =>
        Get(podKey).Process!.Exited.WaitAsync(cancellationToken);

    public SimPodInfo? GetPod(string podKey)
    {
        lock (_gate) return _pods.TryGetValue(podKey, out var rt) && rt.Process is not null ? rt.Info : null;
    }

    /// <summary>The host path that stands for <paramref name="containerPath"/> in the pod (its volumes, its config files; see <see cref="PodPaths"/>).</summary>
    public string HostPath(string podKey, string containerPath)
    {
        var rt = Get(podKey);
        return PodPaths.HostPath(rt.Directory, rt.EtcDirectory, containerPath);
    }

    /// <summary>The pod's container log (stdout and stderr of its process).</summary>
    public string LogPath(string podKey) => Get(podKey).LogPath;

    /// <summary>Sends a signal to the pod's main process (e.g. 1 = SIGHUP to make nginx reload, as the router does).</summary>
    public void SignalPod(string podKey, int signal) => _ = NsProcess.Kill(Get(podKey).Process!.Pid, signal);

    /// <summary>Stops the pod (SIGTERM, grace, SIGKILL to everything in its namespace) and removes its namespace,
    /// veth, directory and /etc/netns files. False when no such pod runs.</summary>
    public async Task<bool> DeletePodAsync(string podKey, CancellationToken cancellationToken = default)
    {
        PodRuntime? rt;
        lock (_gate)
        {
            if (!_pods.Remove(podKey, out rt)) return false;
        }
        await StopPodAsync(rt).ConfigureAwait(false);
        return true;
    }

    // ---------------------------------------------------------------- attach

    /// <summary>
    /// Attaches to the pod's main process as a container runtime does (containerd's ContainerIO.Attach): output written
    /// from now on (not the log's history) on the requested streams, stdin (when <paramref name="stdin"/> and the
    /// container has <c>stdin: true</c>; otherwise input is dropped) and resize when the container has a tty.
    /// "SimPodNotFound" when the pod does not run here, "SimContainerNotRunning" when its process has exited.
    /// </summary>
    public SimAttachment Attach(string podKey, bool stdin, bool stdout, bool stderr)
    {
        var rt = Get(podKey);
        var process = rt.Process!;
        if (process.Exited.IsCompleted)
            throw new KtException("SimContainerNotRunning", KtErrorCategory.InvalidOperation, $"The main process of pod {podKey} has exited.", target: podKey);
        var tty = rt.Spec.Tty && Terminal.Available;
        return new SimAttachment(process, process.Subscribe(stdout, stderr && !tty), stdin && rt.Spec.Stdin, rt.Spec.StdinOnce, tty, rt.TtyFile);
    }

    // ---------------------------------------------------------------- port-forward and exec

    /// <summary>
    /// Port-forward: a TCP connection to 127.0.0.1:<paramref name="port"/> inside the pod's namespace (what
    /// kubelet's port-forward does), as a stream the caller owns. "SimPortForwardFailed" when refused.
    /// </summary>
    public async Task<Stream> ConnectAsync(string podKey, int port, CancellationToken cancellationToken = default)
    {
        var rt = Get(podKey);
        try
        {
            var socket = await NetNsSocket.ConnectAsync(rt.NetNs, new IPEndPoint(IPAddress.Loopback, port), cancellationToken).ConfigureAwait(false);
            socket.NoDelay = true;
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch (SocketException e)
        {
            throw new KtException("SimPortForwardFailed", KtErrorCategory.ConnectionError,
                $"error forwarding port {port} to pod {podKey}: {e.Message}", e, podKey);
        }
    }

    /// <summary>
    /// Exec, pull style: starts <paramref name="argv"/> in the pod's namespace with the pod's environment and
    /// hands back its pipes (for an exec WebSocket that pumps them). Throws "SimExecNotFound" when the
    /// program does not exist, before anything runs.
    /// </summary>
    public SimExecProcess StartExec(string podKey, IReadOnlyList<string> argv)
    {
        var rt = Get(podKey);
        return SimExecProcess.Start(rt.NetNs, ImageProgram(rt, argv), rt.ExecEnvironment);
    }

    /// <summary>
    /// Exec, push style: runs <paramref name="argv"/> in the pod's namespace with the pod's environment,
    /// copying <paramref name="stdin"/> in (then closing it) and stdout/stderr out. Returns the exit code.
    /// Cancelling kills the command. "SimExecNotFound" when the program does not exist.
    /// </summary>
    public async Task<int> ExecAsync(string podKey, IReadOnlyList<string> argv, Stream? stdin, Stream? stdout, Stream? stderr,
        CancellationToken cancellationToken = default)
    {
        var exec = StartExec(podKey, argv);
        using var pumps = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var input = CopyInputAsync(stdin, exec.Stdin, pumps.Token);
        var output = exec.Stdout.CopyToAsync(stdout ?? Stream.Null, pumps.Token);
        var error = exec.Stderr.CopyToAsync(stderr ?? Stream.Null, pumps.Token);
        try
        {
            var code = await exec.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            await Task.WhenAll(output, error).WaitAsync(cancellationToken).ConfigureAwait(false);
            return code;
        }
        finally
        {
            await pumps.CancelAsync().ConfigureAwait(false);
            await exec.DisposeAsync().ConfigureAwait(false);
            foreach (var t in new[] { input, output, error })
            {
                try { await t.ConfigureAwait(false); } catch (OperationCanceledException) { } catch (IOException) { } catch (ObjectDisposedException) { }
            }
        }
    }

    /// <summary>Runs a command in the pod to completion with captured output (a test helper over exec).</summary>
    public Task<ProcessResult> RunInPodAsync(string podKey, IReadOnlyList<string> argv, string? stdin = null, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        var rt = Get(podKey);
        return ProcessRunner.RunAsync("ip", ["netns", "exec", rt.NetNs, .. ImageProgram(rt, argv)], stdin, timeout,
            rt.ExecEnvironment.ToDictionary(kv => kv.Key, kv => (string?)kv.Value), cancellationToken);
    }

    // ---------------------------------------------------------------- services and DNS

    /// <summary>
    /// Replaces every Service: DNAT rules in the node namespace (one atomic `nft -f`) and the cluster DNS
    /// records; returns when both are in effect. A Service whose ClusterIP is the cluster DNS IP gets a DNS
    /// record but no DNAT (dnsmasq answers on that address itself).
    /// </summary>
    public async Task SetServicesAsync(IEnumerable<ServiceLite> services, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var list = services.ToList();
        var script = ServiceRules.Render(list, GatewayIp, ClusterDnsIp);
        await _servicesLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            (await ProcessRunner.RunAsync("ip", ["netns", "exec", NodeNetNs, "nft", "-f", "-"], script, cancellationToken: cancellationToken)
                .ConfigureAwait(false)).EnsureSuccess("SimServiceProgramFailed");
            await _dns!.UpdateAsync(list, cancellationToken).ConfigureAwait(false);
            _services = list;
        }
        finally
        {
            _servicesLock.Release();
        }
    }

    // ---------------------------------------------------------------- laptop

    /// <summary>Creates a laptop namespace linked only to the root namespace (see <see cref="SimLaptop"/>).</summary>
    public async Task<SimLaptop> CreateLaptopAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var n = Interlocked.Increment(ref _laptopSeq).ToString(CultureInfo.InvariantCulture);
        var ns = $"{NamespacePrefix}{Id}-l{n}";
        var rootIf = $"kts{Id}l{n}";
        var etc = "/etc/netns/" + ns;
        Record(s =>
        {
            s.NetworkNamespaces.Add(ns);
            s.EtcNetNsDirectories.Add(etc);
            s.RootInterfaces.Add(rootIf);
        });
        try
        {
            Directory.CreateDirectory(etc);
            await File.WriteAllTextAsync(Path.Combine(etc, "resolv.conf"), "# KubeSim laptop: no resolver until kt configures one\n", cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(etc, "hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", cancellationToken).ConfigureAwait(false);
            await IpAsync(cancellationToken, "netns", "add", ns).ConfigureAwait(false);
            await IpAsync(cancellationToken, "-n", ns, "link", "set", "lo", "up").ConfigureAwait(false);
            var (rootAddress, laptopAddress) = await LinkLaptopAsync(ns, rootIf, cancellationToken).ConfigureAwait(false);
            var laptop = new SimLaptop(ns, rootIf, laptopAddress, rootAddress, RemoveLaptopAsync);
            lock (_gate) _laptops.Add(laptop);
            return laptop;
        }
        catch
        {
            await RemoveNamespaceAsync(ns, etc, rootIf).ConfigureAwait(false);
            throw;
        }
    }

    private async Task<(string Root, string Laptop)> LinkLaptopAsync(string ns, string rootIf, CancellationToken cancellationToken)
    {
        var range = Ipv4Cidr.Parse(Options.LaptopLinkRange);
        await LaptopLinkLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var taken = await RootPrefixesAsync(cancellationToken).ConfigureAwait(false);
            var count = (uint)(range.Size / 4);
            var start = (uint)Random.Shared.NextInt64(count);
            await IpAsync(cancellationToken, "link", "add", rootIf, "type", "veth", "peer", "name", "eth0", "netns", ns).ConfigureAwait(false);
            for (uint i = 0; i < count; i++)
            {
                var link = new Ipv4Cidr(range.Network + (((start + i) % count) * 4), 30);
                if (taken.Any(t => t.Overlaps(link))) continue;
                var root = Ipv4Cidr.Format(link.Network + 1);
                var laptop = Ipv4Cidr.Format(link.Network + 2);
                var r = await ProcessRunner.RunAsync("ip", ["addr", "add", root + "/30", "dev", rootIf], cancellationToken: cancellationToken).ConfigureAwait(false);
                if (!r.Succeeded) continue;
                await IpAsync(cancellationToken, "link", "set", rootIf, "up").ConfigureAwait(false);
                await IpAsync(cancellationToken, "-n", ns, "addr", "add", laptop + "/30", "dev", "eth0").ConfigureAwait(false);
                await IpAsync(cancellationToken, "-n", ns, "link", "set", "eth0", "up").ConfigureAwait(false);
                // Not even IPv6 link-local toward the root namespace: the /30 is the laptop's only way out.
                // Best effort: a kernel without IPv6 has nothing to disable.
                await ProcessRunner.RunAsync("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"],
                    cancellationToken: cancellationToken).ConfigureAwait(false);
                return (root, laptop);
            }
            throw new KtException("SimNoLaptopLink", KtErrorCategory.LimitsExceeded,
                $"No free /30 in {Options.LaptopLinkRange} for a laptop link.", target: Options.LaptopLinkRange);
        }
        finally
        {
            LaptopLinkLock.Release();
        }
    }

    // Every prefix the root namespace has an address or a route in; a laptop link must overlap none.
    private static async Task<List<Ipv4Cidr>> RootPrefixesAsync(CancellationToken cancellationToken)
    {
        var list = new List<Ipv4Cidr>();
        var addrs = await ProcessRunner.RunAsync("ip", ["-4", "-o", "addr", "show"], cancellationToken: cancellationToken).ConfigureAwait(false);
        foreach (var line in addrs.StandardOutput.Split('\n'))
        {
            var t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var i = Array.IndexOf(t, "inet");
            if (i >= 0 && i + 1 < t.Length) TryAdd(t[i + 1]);
        }
        var routes = await ProcessRunner.RunAsync("ip", ["-4", "route", "show", "table", "all"], cancellationToken: cancellationToken).ConfigureAwait(false);
        string[] types = ["local", "broadcast", "unicast", "unreachable", "prohibit", "blackhole", "throw", "multicast", "anycast", "nat"];
        foreach (var line in routes.StandardOutput.Split('\n'))
        {
            var t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (t.Length == 0) continue;
            var dst = types.Contains(t[0]) && t.Length > 1 ? t[1] : t[0];
            if (dst != "default") TryAdd(dst);
        }
        return list;

        void TryAdd(string text)
        {
            try { list.Add(Ipv4Cidr.Parse(text)); } catch (KtException) { }
        }
    }

    private async Task RemoveLaptopAsync(SimLaptop laptop)
    {
        lock (_gate) _laptops.Remove(laptop);
        await RemoveNamespaceAsync(laptop.NetNsName, laptop.EtcDirectory, laptop.RootInterface).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- teardown and sweep

    /// <summary>Deletes every pod and laptop, the DNS, the node namespace and the node's files.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        SimLaptop[] laptops;
        PodRuntime[] pods;
        lock (_gate)
        {
            laptops = [.. _laptops];
            pods = [.. _pods.Values];
            _pods.Clear();
        }
        foreach (var l in laptops) await l.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(pods.Select(StopPodAsync)).ConfigureAwait(false);
        if (_dns is not null) await _dns.DisposeAsync().ConfigureAwait(false);
        if (_nodeCreated) await RemoveNamespaceAsync(NodeNetNs, null, null).ConfigureAwait(false);
        _servicesLock.Dispose();
        if (_ownsStateDirectory) TryDeleteDirectory(StateDirectory);
        else
        {
            foreach (var d in new[] { "pods", "dns", "shared" }) TryDeleteDirectory(Path.Combine(StateDirectory, d));
            try { File.Delete(Path.Combine(StateDirectory, SimNodeState.FileName)); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Removes what a node whose process died left behind, from its state.json: processes in its
    /// namespaces, the namespaces, /etc/netns directories, root-namespace interfaces, the state files.
    /// </summary>
    public static async Task StopAsync(string stateDirectory)
    {
        var state = SimNodeState.Load(stateDirectory);
        if (state is null) return;
        foreach (var ns in state.NetworkNamespaces) await RemoveNamespaceCoreAsync(ns).ConfigureAwait(false);
        foreach (var d in state.EtcNetNsDirectories) TryDeleteDirectory(d);
        foreach (var i in state.RootInterfaces) await ProcessRunner.RunAsync("ip", ["link", "del", i]).ConfigureAwait(false);
        foreach (var d in new[] { "pods", "dns", "shared" }) TryDeleteDirectory(Path.Combine(stateDirectory, d));
        try { File.Delete(Path.Combine(stateDirectory, SimNodeState.FileName)); } catch (IOException) { }
    }

    /// <summary>
    /// Crash cleanup by name: every namespace starting with <paramref name="prefix"/> (its processes
    /// first), /etc/netns/&lt;prefix&gt;* directories, temp state directories ktsim-&lt;id&gt; holding a
    /// state.json, and, for the default prefix, ktsim_* nftables tables in the root namespace. Tests pass "ktsim-&lt;id&gt;-" to leave other runs alone.
    /// </summary>
    public static async Task SweepAsync(string prefix = NamespacePrefix)
    {
        if (!prefix.StartsWith(NamespacePrefix, StringComparison.Ordinal))
            throw new ArgumentException("the sweep prefix must start with " + NamespacePrefix, nameof(prefix));
        var list = await ProcessRunner.RunAsync("ip", ["netns", "list"]).ConfigureAwait(false);
        foreach (var line in list.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            if (name.StartsWith(prefix, StringComparison.Ordinal)) await RemoveNamespaceCoreAsync(name).ConfigureAwait(false);
        }
        if (Directory.Exists("/etc/netns"))
        {
            foreach (var d in Directory.GetDirectories("/etc/netns", prefix + "*")) TryDeleteDirectory(d);
        }
        // State directories of nodes that used the default temp location (ktsim-<id>).
        foreach (var d in Directory.GetDirectories(Path.GetTempPath(), prefix.TrimEnd('-') + "*"))
        {
            if (File.Exists(Path.Combine(d, SimNodeState.FileName))) TryDeleteDirectory(d);
        }
        if (prefix == NamespacePrefix && ProcessRunner.IsOnPath("nft"))
        {
            var tables = await ProcessRunner.RunAsync("nft", ["list", "tables"]).ConfigureAwait(false);
            foreach (var line in tables.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (t.Length == 3 && t[0] == "table" && t[2].StartsWith(NftTablePrefix, StringComparison.Ordinal))
                    await ProcessRunner.RunAsync("nft", ["delete", "table", t[1], t[2]]).ConfigureAwait(false);
            }
        }
    }

    // ---------------------------------------------------------------- internals

    private PodRuntime Get(string podKey)
    {
        lock (_gate)
        {
            if (_pods.TryGetValue(podKey, out var rt) && rt.Process is not null) return rt;
        }
        throw new KtException("SimPodNotFound", KtErrorCategory.ObjectNotFound, $"Pod {podKey} is not running on the node.", target: podKey);
    }

    // An exec of one of the image's own programs (PodCommand.Programs), by path or by name on the pod's PATH,
    // runs what stands for it; anything else runs as given.
    private static IReadOnlyList<string> ImageProgram(PodRuntime rt, IReadOnlyList<string> argv)
    {
        var programs = rt.Command?.Programs;
        if (programs is null || programs.Count == 0 || argv.Count == 0) return argv;
        var program = argv[0];
        if (!program.Contains('/', StringComparison.Ordinal))
        {
            var path = rt.ExecEnvironment.TryGetValue("PATH", out var p) ? p : BasePath;
            foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                var candidate = dir.TrimEnd('/') + "/" + program;
                if (programs.ContainsKey(candidate)) return [.. programs[candidate], .. argv.Skip(1)];
                if (File.Exists(candidate)) return argv;
            }
        }
        return programs.TryGetValue(program, out var prefix) ? [.. prefix, .. argv.Skip(1)] : argv;
    }

    private uint AllocateIp()
    {
        // Round-robin over the range so a deleted pod's address is not handed out again at once.
        var hosts = (uint)_podCidr.Size - 2;
        for (uint i = 0; i < hosts; i++)
        {
            var offset = _nextIpOffset;
            _nextIpOffset = offset + 1 >= (uint)_podCidr.Size - 1 ? 2 : offset + 1;
            var ip = _podCidr.Network + offset;
            if (offset >= 2 && _usedIps.Add(ip)) return ip;
        }
        throw new KtException("SimPodRangeFull", KtErrorCategory.LimitsExceeded, $"No free address in {_podCidr}.", target: _podCidr.ToString());
    }

    private async Task<bool> IsReadyAsync(PodRuntime rt, CancellationToken cancellationToken)
    {
        var command = rt.Command!;
        if (command.ReadyFile is not null && !File.Exists(command.ReadyFile)) return false;
        foreach (var port in command.ReadinessPorts)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(TimeSpan.FromSeconds(2));
            try
            {
                using var s = await NetNsSocket.ConnectAsync(NodeNetNs, new IPEndPoint(rt.Ip, port), cts.Token).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                return false;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return false;
            }
        }
        return true;
    }

    private static async Task WriteVolumesAsync(PodRuntime rt, CancellationToken cancellationToken)
    {
        foreach (var (mountPath, files) in rt.Spec.Volumes)
        {
            var dir = PodPaths.HostPath(rt.Directory, rt.EtcDirectory, mountPath);
            Directory.CreateDirectory(dir);
            foreach (var (file, bytes) in files)
            {
                var path = PodPaths.HostPath(rt.Directory, rt.EtcDirectory, mountPath + "/" + file);
                if (file.StartsWith('/') || file.Length == 0)
                    throw new KtException("SimInvalidPath", KtErrorCategory.InvalidArgument, $"Volume file '{file}' must be a relative path.", target: file);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await File.WriteAllBytesAsync(path, bytes, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // A pod still starting is stopped once its start finished; a failed start has cleaned up after itself.
    private async Task StopPodAsync(PodRuntime rt)
    {
        try
        {
            await rt.Started.Task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            return;
        }
        await CleanupPodAsync(rt).ConfigureAwait(false);
    }

    private async Task CleanupPodAsync(PodRuntime rt)
    {
        NsProcess? process;
        lock (_gate) process = rt.Process;
        if (process is not null)
        {
            await process.StopAsync(Options.DeleteGracePeriod).ConfigureAwait(false);
            await process.DisposeAsync().ConfigureAwait(false);
        }
        await RemoveNamespaceCoreAsync(rt.NetNs).ConfigureAwait(false);
        TryDeleteDirectory(rt.EtcDirectory);
        TryDeleteDirectory(rt.Directory);
        lock (_gate) _usedIps.Remove(rt.Ip32);
        Record(s =>
        {
            s.NetworkNamespaces.Remove(rt.NetNs);
            s.EtcNetNsDirectories.Remove(rt.EtcDirectory);
            if (process is not null) s.ProcessIds.Remove(process.Pid);
        });
    }

    private async Task RemoveNamespaceAsync(string ns, string? etc, string? rootIf)
    {
        await RemoveNamespaceCoreAsync(ns).ConfigureAwait(false);
        if (etc is not null) TryDeleteDirectory(etc);
        if (rootIf is not null)
        {
            // The root end goes with the namespace; delete it explicitly in case the pair was half made.
            await ProcessRunner.RunAsync("ip", ["link", "del", rootIf]).ConfigureAwait(false);
        }
        Record(s =>
        {
            s.NetworkNamespaces.Remove(ns);
            if (etc is not null) s.EtcNetNsDirectories.Remove(etc);
            if (rootIf is not null) s.RootInterfaces.Remove(rootIf);
        });
    }

    private static async Task RemoveNamespaceCoreAsync(string ns)
    {
        if (!File.Exists("/var/run/netns/" + ns)) return;
        await NsProcess.KillAllInAsync(ns).ConfigureAwait(false);
        await ProcessRunner.RunAsync("ip", ["netns", "del", ns]).ConfigureAwait(false);
    }

    private void Record(Action<SimNodeState> change)
    {
        lock (_state)
        {
            change(_state);
            if (Directory.Exists(StateDirectory)) _state.Save(StateDirectory);
        }
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static string LogTail(PodRuntime rt)
    {
        try
        {
            var text = File.Exists(rt.LogPath) ? File.ReadAllText(rt.LogPath) : "";
            return text.Length > 2000 ? text[^2000..] : text;
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static void ValidateName(string name)
    {
        if (name.Length is 0 or > 253 || name.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.')) || name.Contains("..", StringComparison.Ordinal))
            throw new KtException("SimInvalidName", KtErrorCategory.InvalidArgument, $"'{name}' is not a valid Kubernetes object name.", target: name);
    }

    private static async Task CopyInputAsync(Stream? from, Stream to, CancellationToken cancellationToken)
    {
        try
        {
            if (from is not null) await from.CopyToAsync(to, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            try { to.Close(); } catch (IOException) { }
        }
    }

    private static async Task IpAsync(CancellationToken cancellationToken, params string[] args) =>
        (await ProcessRunner.RunAsync("ip", args, cancellationToken: cancellationToken).ConfigureAwait(false)).EnsureSuccess("SimNodeSetupFailed");

    private sealed class PodRuntime(PodSpecLite spec, string launcher, uint ip, string netNs, string nodeVeth, string directory)
    {
        public PodSpecLite Spec { get; } = spec;
        public string Launcher { get; } = launcher;
        public uint Ip32 { get; } = ip;
        public IPAddress Ip { get; } = IPAddress.Parse(Ipv4Cidr.Format(ip));
        public string IpText { get; } = Ipv4Cidr.Format(ip);
        public string NetNs { get; } = netNs;
        public string NodeVeth { get; } = nodeVeth;
        public string Directory { get; } = directory;
        public string EtcDirectory => "/etc/netns/" + NetNs;
        public string LogPath => Path.Combine(Directory, "container.log");
        public string TtyFile => Path.Combine(Directory, "tty");
        public NsProcess? Process { get; set; }
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public PodCommand? Command { get; set; }
        public IReadOnlyDictionary<string, string> ExecEnvironment { get; set; } = new Dictionary<string, string>();
        public SimPodInfo Info => new(Spec.Key, IpText, NetNs, Directory, Process?.Pid ?? 0, Launcher);
    }
}
