using System.Net;
using System.Net.Sockets;
using System.Text;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Forward;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Sessions;
using KtConnect.KubeSim.Api;
using KtConnect.KubeSim.Streaming;
using KtConnect.KubeSim.Testing;
using KtConnect.Tests.Unit.Kube;

namespace KtConnect.Tests.Unit.Sessions.Forward;

public sealed class ForwardTests
{
    private const string Ns = "kt-test";

    [Theory]
    [InlineData("8080", 8080, null)]
    [InlineData("8080:80", 8080, 80)]
    [InlineData("0:80", 0, 80)]
    public void Port_mappings_parse(string text, int local, int? remote)
    {
        Assert.Equal(new PortMapping(local, remote), PortMapping.Parse(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("80:")]
    [InlineData("1:2:3")]
    [InlineData("70000")]
    [InlineData("8080:0")]
    [InlineData("-1")]
    public void Bad_port_mappings_are_refused(string text)
    {
        Assert.Equal(ForwardErrors.InvalidPort, Assert.Throws<KtException>(() => PortMapping.Parse(text)).ErrorId);
    }

    private static Service Svc(params ServicePort[] ports) => new()
    {
        Metadata = new ObjectMeta { Name = "orders", Namespace = Ns },
        Spec = new ServiceSpec { Ports = [.. ports], Selector = new() { ["app"] = "orders" } },
    };

    [Fact]
    public void Ports_resolve_to_service_ports_by_number_then_target_port_and_a_single_port_is_the_default()
    {
        var http = new ServicePort { Name = "http", Port = 80, TargetPort = "web" };
        var admin = new ServicePort { Name = "admin", Port = 9000, TargetPort = 9090 };
        var two = Svc(http, admin);
        Assert.Equal([(8080, http)], ForwardWorker.Resolve(two, [new PortMapping(8080, 80)]));
        Assert.Equal([(7000, admin)], ForwardWorker.Resolve(two, [new PortMapping(7000, 9090)]));
        Assert.Equal([(9000, admin)], ForwardWorker.Resolve(two, [new PortMapping(9000, null)]));
        Assert.Equal(ForwardErrors.PortRequired, Assert.Throws<KtException>(() => ForwardWorker.Resolve(two, [])).ErrorId);
        Assert.Equal(ForwardErrors.PortNotFound, Assert.Throws<KtException>(() => ForwardWorker.Resolve(two, [new PortMapping(8080, null)])).ErrorId);
        Assert.Equal(ForwardErrors.PortNotFound, Assert.Throws<KtException>(() => ForwardWorker.Resolve(two, [new PortMapping(1, 81)])).ErrorId);

        var one = Svc(http);
        Assert.Equal([(80, http)], ForwardWorker.Resolve(one, []));
        Assert.Equal([(8080, http)], ForwardWorker.Resolve(one, [new PortMapping(8080, null)]));
    }

    [Fact]
    public void Named_target_ports_resolve_through_the_pods_container_ports()
    {
        var pod = new Pod
        {
            Metadata = new ObjectMeta { Name = "p" },
            Spec = new PodSpec { Containers = [new Container { Name = "app", Ports = [new ContainerPortSpec { Name = "web", ContainerPort = 8081 }] }] },
        };
        Assert.Equal(8081, ServiceBackends.TargetPort(new ServicePort { Port = 80, TargetPort = "web" }, pod));
        Assert.Null(ServiceBackends.TargetPort(new ServicePort { Port = 80, TargetPort = "other" }, pod));
        Assert.Equal(9090, ServiceBackends.TargetPort(new ServicePort { Port = 80, TargetPort = 9090 }, pod));
        Assert.Equal(80, ServiceBackends.TargetPort(new ServicePort { Port = 80 }, pod));
    }

    /// <summary>A pod's server: answers each line with the pod's name, then closes.</summary>
    private sealed class PodServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _loop;

        public PodServer(string name)
        {
            _listener.Start();
            _loop = Task.Run(async () =>
            {
                while (!_cts.IsCancellationRequested)
                {
                    using var c = await _listener.AcceptTcpClientAsync(_cts.Token);
                    var s = c.GetStream();
                    var reader = new StreamReader(s);
                    var line = await reader.ReadLineAsync(_cts.Token);
                    await s.WriteAsync(Encoding.ASCII.GetBytes($"{name}:{line}\n"), _cts.Token);
                }
            });
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            _listener.Stop();
            try
            {
                await _loop;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
            {
            }
            _cts.Dispose();
        }
    }

    private static void ApplyPod(KubeSimServer s, string name) => s.Apply($$"""
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"{{name}}","namespace":"kt-test","labels":{"app":"orders"} },
         "spec":{"containers":[{"name":"app","image":"echo","ports":[{"name":"web","containerPort":8080}]}]} }
        """);

    private static async Task<string> AskAsync(int port, string line)
    {
        using var c = new TcpClient();
        await c.ConnectAsync(IPAddress.Loopback, port);
        var s = c.GetStream();
        await s.WriteAsync(Encoding.ASCII.GetBytes(line + "\n"));
        using var reader = new StreamReader(s);
        return (await reader.ReadToEndAsync()).Trim();
    }

    private static Task WaitAsync(Func<Task<bool>> condition, string what) =>
        Wait.UntilAsync(condition, what, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50));

    private static SessionRequest Request => new() { Kind = SessionKind.Forward, Namespace = Ns, Target = "orders" };

    [Fact]
    public async Task Connections_reach_a_ready_pod_and_move_to_another_when_it_goes_away()
    {
        var network = new LocalPodNetwork();
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { PodNetwork = network }, Ns);
        await using var a = new PodServer("orders-a");
        await using var b = new PodServer("orders-b");
        network.Map(Ns, "orders-a", 8080, a.EndPoint);
        network.Map(Ns, "orders-b", 8080, b.EndPoint);
        ApplyPod(sim.Server, "orders-a");
        ApplyPod(sim.Server, "orders-b");
        sim.Server.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},
             "spec":{"selector":{"app":"orders"},"ports":[{"name":"http","port":80,"targetPort":"web"}]}}
            """);
        await WaitAsync(async () => (await sim.Client.Pods.ListAsync(Ns)).Items.Count(ServiceBackends.IsReady) == 2, "two ready pods");

        var registry = new SessionRegistry();
        var worker = new ForwardWorker(sim.Client, Ns, new ForwardOptions { Service = "orders", Ports = [new PortMapping(0, 80)] });
        var session = await registry.StartAsync(Request, worker);
        try
        {
            var port = worker.Listeners[0].LocalEndPoint.Port;
            Assert.Contains(session.Snapshot().LocalPorts, p => p.Contains($":{port} → orders:80 (pod port web)", StringComparison.Ordinal));
            var first = await AskAsync(port, "one");
            Assert.Equal("orders-a:one", first); // sticky, first by name
            Assert.Equal("orders-a:two", await AskAsync(port, "two"));

            await sim.Client.Pods.DeleteAsync("orders-a", Ns, new DeleteOptions { GracePeriodSeconds = 0 });
            // Right away: either the watch already dropped it, or its port-forward fails and the next pod is tried.
            Assert.Equal("orders-b:three", await AskAsync(port, "three"));
            Assert.Equal(3, worker.Listeners[0].Served);
        }
        finally
        {
            await session.StopAsync();
        }
        Assert.Equal(SessionState.Stopped, session.State);
        // The listener is closed with the session.
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAsync<SocketException>(() => probe.ConnectAsync(IPAddress.Loopback, worker.Listeners[0].LocalEndPoint.Port));
    }

    [Fact]
    public async Task A_finished_request_to_a_keep_alive_server_ends_once_the_pod_goes_quiet()
    {
        var network = new LocalPodNetwork();
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { PodNetwork = network }, Ns);
        // A keep-alive server: answers and keeps the connection open.
        using var server = new TcpListener(IPAddress.Loopback, 0);
        server.Start();
        var serverTask = Task.Run(async () =>
        {
            using var c = await server.AcceptTcpClientAsync();
            var s = c.GetStream();
            var line = await new StreamReader(s).ReadLineAsync();
            await s.WriteAsync(Encoding.ASCII.GetBytes($"kept:{line}\n"));
            var buffer = new byte[16];
            return await s.ReadAsync(buffer); // 0 once the forward gives up the connection
        });
        network.Map(Ns, "orders-a", 8080, (IPEndPoint)server.LocalEndpoint);
        ApplyPod(sim.Server, "orders-a");
        sim.Server.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},
             "spec":{"selector":{"app":"orders"},"ports":[{"port":80,"targetPort":8080}]}}
            """);
        await WaitAsync(async () => (await sim.Client.Pods.ListAsync(Ns)).Items.Count(ServiceBackends.IsReady) == 1, "a ready pod");
        var worker = new ForwardWorker(sim.Client, Ns, new ForwardOptions { Service = "orders", Ports = [new PortMapping(0, 80)] });
        var session = await new SessionRegistry().StartAsync(Request, worker);
        try
        {
            using var c = new TcpClient();
            await c.ConnectAsync(IPAddress.Loopback, worker.Listeners[0].LocalEndPoint.Port);
            var s = c.GetStream();
            await s.WriteAsync(Encoding.ASCII.GetBytes("hello\n"));
            c.Client.Shutdown(SocketShutdown.Send); // a client that half-closes still gets its answer
            using var reader = new StreamReader(s);
            Assert.Equal("kept:hello", (await reader.ReadToEndAsync()).Trim());
            Assert.Equal(0, await serverTask.WaitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            await session.StopAsync();
        }
    }

    [Fact]
    public async Task A_port_in_use_fails_the_start_with_its_error_id_and_leaves_no_listener()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        sim.Server.Apply("""
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"orders","namespace":"kt-test"},
             "spec":{"selector":{"app":"orders"},"ports":[{"name":"http","port":80,"targetPort":8080},{"name":"admin","port":90,"targetPort":9090}]}}
            """);
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        var busyPort = ((IPEndPoint)busy.LocalEndpoint).Port;
        int freePort;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            freePort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var registry = new SessionRegistry();
        var worker = new ForwardWorker(sim.Client, Ns, new ForwardOptions
        {
            Service = "orders",
            Ports = [new PortMapping(freePort, 80), new PortMapping(busyPort, 90)],
        });
        var e = await Assert.ThrowsAsync<KtException>(() => registry.StartAsync(Request, worker));
        Assert.Equal(ForwardErrors.PortInUse, e.ErrorId);
        Assert.Equal(SessionState.Failed, registry.List().Single().State);
        using var again = new TcpListener(IPAddress.Loopback, freePort);
        again.Start(); // the first listener was closed by the failed start's undo
    }

    [Fact]
    public async Task Unknown_services_ports_and_addresses_are_refused_before_anything_is_bound()
    {
        await using var sim = await SimCluster.StartAsync(new KubeSimOptions { RunPods = false }, Ns);
        var registry = new SessionRegistry();
        async Task<string> Refused(ForwardOptions o) =>
            (await Assert.ThrowsAsync<KtException>(() => registry.StartAsync(Request, new ForwardWorker(sim.Client, Ns, o)))).ErrorId;
        Assert.Equal(ForwardErrors.ServiceNotFound, await Refused(new ForwardOptions { Service = "nope" }));
        Assert.Equal(ForwardErrors.AddressNotSupported, await Refused(new ForwardOptions { Service = "db.example.com" }));
        sim.Server.Apply("""{"apiVersion":"v1","kind":"Service","metadata":{"name":"manual","namespace":"kt-test"},"spec":{"ports":[{"port":80}]}}""");
        Assert.Equal(ForwardErrors.ServiceWithoutSelector, await Refused(new ForwardOptions { Service = "manual" }));
    }
}
