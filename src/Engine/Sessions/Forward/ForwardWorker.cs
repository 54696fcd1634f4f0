using System.Globalization;
using KtConnect.Engine.Kube;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Sessions.Forward;

/// <summary>
/// Forward: local ports to a Service's ready pods through the API server's port-forward (DESIGN.md §4). Nothing in
/// the cluster changes, so there is nothing to undo there; locally the listeners are bound before anything else and
/// closed on every exit path.
/// </summary>
public sealed class ForwardWorker(KubeClient client, string ns, ForwardOptions options) : ClusterWorker<ForwardOptions>(client, ns, options)
{
    private readonly List<ForwardListener> _listeners = [];

    /// <summary>The listeners once started (tests read the bound ports).</summary>
    public IReadOnlyList<ForwardListener> Listeners => _listeners;

    private protected override void CheckRequest()
    {
        if (_options.Service.Contains('.', StringComparison.Ordinal))
            throw new KtException(ForwardErrors.AddressNotSupported, KtErrorCategory.NotImplemented,
                $"'{_options.Service}' looks like an address; forward takes the name of a Service in the namespace.", target: _options.Service);
    }

    private protected override async Task RunAsync(SessionContext context, CancellationToken cancellationToken)
    {
        var output = context.Output;
        var service = await _client.Services.TryGetAsync(_options.Service, _namespace, cancellationToken).ConfigureAwait(false)
            ?? throw new KtException(ForwardErrors.ServiceNotFound, KtErrorCategory.ObjectNotFound,
                $"Service '{_options.Service}' does not exist in namespace '{_namespace}'.", target: _options.Service);
        var selector = service.Spec?.Selector;
        if (selector is not { Count: > 0 })
            throw new KtException(ForwardErrors.ServiceWithoutSelector, KtErrorCategory.InvalidOperation,
                $"Service {_namespace}/{_options.Service} has no selector, so it has no pods to forward to.", target: _options.Service);
        var mappings = Resolve(service, _options.Ports);

        var backends = await ServiceBackends.StartAsync(_client, _namespace, selector, cancellationToken).ConfigureAwait(false);
        context.Defer("stop watching the Service's pods", _ => backends.DisposeAsync().AsTask());
        foreach (var (local, port) in mappings)
        {
            var listener = ForwardListener.Bind(_client, _namespace, _options.Service, port, local, backends, _options.PortForwardTimeout, output);
            context.Defer($"close the listener on 127.0.0.1:{listener.LocalEndPoint.Port}", _ => listener.DisposeAsync().AsTask());
            _listeners.Add(listener);
            var target = port.TargetPort is { } t ? t.ToString() : port.Port.ToString(CultureInfo.InvariantCulture);
            context.AddLocalPort($"{listener.LocalEndPoint} → {_options.Service}:{port.Port} (pod port {target})");
        }
        foreach (var l in _listeners) l.Start(context.Fail);
        var ready = backends.Candidates().Count;
        if (ready == 0) output.Warning($"Service {_namespace}/{_options.Service} has no ready pod yet; connections are refused until one is.");
        else output.Verbose($"Forwarding to {ready} ready pod(s) of {_namespace}/{_options.Service}.");
    }

    /// <summary>
    /// Maps each requested <c>local[:remote]</c> to a Service port: remote is a Service port (or, failing that, a
    /// numeric targetPort); a lone number is the Service port with that number, else the Service's only port.
    /// Nothing requested: the only port on the same local port.
    /// </summary>
    public static IReadOnlyList<(int Local, ServicePort Port)> Resolve(Service service, IReadOnlyList<PortMapping> requested)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(requested);
        var name = service.Metadata.Name ?? "";
        var ports = (service.Spec?.Ports ?? []).Where(p => p.Protocol is null or "TCP").ToList();
        var list = ports.Select(p => p.Port.ToString(CultureInfo.InvariantCulture)).ToList();
        if (requested.Count == 0)
        {
            if (ports.Count != 1)
                throw new KtException(ForwardErrors.PortRequired, KtErrorCategory.InvalidArgument,
                    $"Service {service.Key} has {(ports.Count == 0 ? "no TCP port" : "ports " + string.Join(", ", list))}; say which to forward: <localPort>[:<servicePort>].",
                    target: name);
            return [(ports[0].Port, ports[0])];
        }
        var result = new List<(int, ServicePort)>();
        foreach (var m in requested)
        {
            ServicePort? port;
            if (m.Remote is { } remote)
            {
                port = ports.FirstOrDefault(p => p.Port == remote) ?? ports.FirstOrDefault(p => p.TargetPort?.IntValue == remote);
            }
            else
            {
                port = ports.FirstOrDefault(p => p.Port == m.Local) ?? (ports.Count == 1 ? ports[0] : null);
            }
            if (port is null)
                throw new KtException(ForwardErrors.PortNotFound, KtErrorCategory.ObjectNotFound,
                    $"Service {service.Key} has no port {m.Remote ?? m.Local} (its ports: {string.Join(", ", list)}); use <localPort>:<servicePort>.",
                    target: m.ToString());
            result.Add((m.Local, port));
        }
        return result;
    }
}
