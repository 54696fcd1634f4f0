using System.Globalization;
using KtConnect.Engine.Kube.Models;
using KtConnect.Engine.Cluster;

namespace KtConnect.Engine.Sessions.Exchange;

/// <summary>
/// How one exposed port reaches the cluster: the Service port clients call, the targetPort the shadow's sshd listens on
/// (what the Service forwards to), and the local port connections are relayed to. <see cref="MatchedBy"/> says whether
/// the given remote number was the Service port or the targetPort.
/// </summary>
public sealed record PortMapping(int LocalPort, int? ServicePort, int TargetPort, string? ServicePortName, PortMatch MatchedBy)
{
    /// <summary>What the session shows, e.g. <c>orders:80 -> targetPort 8080 -> 127.0.0.1:8080 (given as the Service port)</c>.</summary>
    public string Describe(string service) => MatchedBy switch
    {
        PortMatch.ServicePort => string.Create(CultureInfo.InvariantCulture,
            $"{service}:{ServicePort} -> shadow :{TargetPort} -> 127.0.0.1:{LocalPort} (remote {ServicePort} is the Service port; its targetPort is {TargetPort})"),
        PortMatch.TargetPort => string.Create(CultureInfo.InvariantCulture,
            $"{service}:{ServicePort} -> shadow :{TargetPort} -> 127.0.0.1:{LocalPort} (remote {TargetPort} is the targetPort)"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{service}:{TargetPort} -> shadow :{TargetPort} -> 127.0.0.1:{LocalPort}"),
    };
}

/// <summary>
/// A port of the exchanged Service that no <c>--expose</c> entry takes (issue 13 item 3): while the Service selects the
/// shadow, calls to it reach the shadow, which either relays them to the original pods (<see cref="CanRelay"/>: TCP with a
/// known numeric targetPort, selector mode) or refuses them (cut).
/// </summary>
public sealed record UncoveredPort(int ServicePort, string? Name, int? TargetPort, string? NamedTarget, string Protocol)
{
    /// <summary>TCP with a numeric target: the shadow can listen there and relay.</summary>
    public bool CanRelay => TargetPort is not null && Protocol == "TCP";

    /// <summary><c>81 (admin) -> targetPort 8081</c>.</summary>
    public string Label => string.Create(CultureInfo.InvariantCulture,
        $"{ServicePort}{(Name is { Length: > 0 } n ? " (" + n + ")" : "")}{(Protocol == "TCP" ? "" : "/" + Protocol)} -> targetPort {(TargetPort?.ToString(CultureInfo.InvariantCulture) ?? NamedTarget ?? "?")}");

    /// <summary>What the session shows for a relayed port.</summary>
    public string DescribeRelayed(string service, IReadOnlyDictionary<string, string> selector) => string.Create(CultureInfo.InvariantCulture,
        $"{service}:{ServicePort} -> shadow :{TargetPort} -> relayed to the original pods ({KtConventions.SelectorQuery(selector)}) :{TargetPort} (not exposed)");

    /// <summary>What the session shows for a port that is refused while exchanged.</summary>
    public string DescribeCut(string service) => string.Create(CultureInfo.InvariantCulture,
        $"{service}:{ServicePort} -> cut: refused while exchanged (not exposed; {Reason})");

    /// <summary>Why a port cannot be relayed.</summary>
    public string Reason => Protocol != "TCP" ? Protocol + " is not relayed"
        : TargetPort is null ? $"its named targetPort '{NamedTarget}' is declared by no pod"
        : "the original pods are scaled to 0";
}

/// <summary>Which number of the Service's port the remote part of <c>--expose</c> matched.</summary>
public enum PortMatch
{
    /// <summary>The remote number is a targetPort (kt-connect's rule).</summary>
    TargetPort,

    /// <summary>The remote number is a Service port; its targetPort is used in the shadow.</summary>
    ServicePort,

    /// <summary>Preview: the new Service's port and targetPort are the remote number.</summary>
    Preview,
}

/// <summary>Resolves <c>--expose</c> entries against a Service's ports (DESIGN.md §3: accept the Service port or its targetPort).</summary>
public static class PortMapper
{
    /// <summary>
    /// Maps each entry: a targetPort match wins (kt-connect's rule, and it is what the shadow must listen on); otherwise a
    /// Service port match, whose targetPort is used. A named targetPort is resolved through <paramref name="namedPorts"/>
    /// (container port names of the pods behind the Service). A number that is neither is refused, listing what exists.
    /// </summary>
    public static IReadOnlyList<PortMapping> Map(Service service, IReadOnlyList<ExposedPort> exposed,
        IReadOnlyDictionary<string, int>? namedPorts = null)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(exposed);
        var name = service.Metadata.Name ?? "?";
        var ports = service.Spec?.Ports ?? [];
        if (ports.Count == 0)
            throw new KtException("ServiceHasNoPorts", KtErrorCategory.InvalidData, $"Service '{name}' has no ports to exchange.", null, name);
        // Only TCP is carried (remote forwards, the router): a UDP port of the same number is left alone (and listed as
        // uncovered), a UDP port alone is refused.
        var resolved = ports.Where(IsTcp).Select(p => (Port: p, Target: TargetOf(p, namedPorts))).ToList();
        var result = new List<PortMapping>();
        foreach (var e in exposed)
        {
            if (!resolved.Any(r => r.Target == e.Remote || r.Port.Port == e.Remote)
                && ports.FirstOrDefault(p => !IsTcp(p) && (p.Port == e.Remote || TargetOf(p, namedPorts) == e.Remote)) is { } other)
                throw new KtException("PortNotTcp", KtErrorCategory.InvalidArgument,
                    $"Port {e.Remote} of Service '{name}' is {other.Protocol}; only TCP ports can be exposed.", null, e.Remote);
            var byTarget = resolved.FirstOrDefault(r => r.Target == e.Remote);
            if (byTarget.Port is not null)
            {
                result.Add(new PortMapping(e.Local, byTarget.Port.Port, e.Remote, byTarget.Port.Name, PortMatch.TargetPort));
                continue;
            }
            var byPort = resolved.FirstOrDefault(r => r.Port.Port == e.Remote);
            if (byPort.Port is not null)
            {
                if (byPort.Target is not { } t)
                    throw new KtException("TargetPortUnresolved", KtErrorCategory.InvalidData,
                        $"Service '{name}' port {e.Remote} has the named targetPort '{byPort.Port.TargetPort}', which no pod behind it declares; " +
                        "give the container port number instead.", null, name);
                result.Add(new PortMapping(e.Local, byPort.Port.Port, t, byPort.Port.Name, PortMatch.ServicePort));
                continue;
            }
            var known = string.Join(", ", resolved.Select(r => string.Create(CultureInfo.InvariantCulture,
                $"{r.Port.Port}->{(r.Target is { } x ? x.ToString(CultureInfo.InvariantCulture) : r.Port.TargetPort?.ToString())}")));
            throw new KtException("PortNotInService", KtErrorCategory.InvalidArgument,
                $"Port {e.Remote} is neither a port nor a targetPort of Service '{name}' (port->targetPort: {known}).", null, e.Remote);
        }
        var dup = result.GroupBy(m => m.TargetPort).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new KtException("PortExposedTwice", KtErrorCategory.InvalidArgument,
                $"targetPort {dup.Key} of Service '{name}' is exposed more than once.", null, dup.Key);
        return result;
    }

    /// <summary>Preview: each remote port becomes a Service port with the same targetPort.</summary>
    public static IReadOnlyList<PortMapping> MapPreview(IReadOnlyList<ExposedPort> exposed)
    {
        ArgumentNullException.ThrowIfNull(exposed);
        ExposedPort.Validate(exposed);
        return [.. exposed.Select(e => new PortMapping(e.Local, e.Remote, e.Remote, KtConventions.ServicePortName(e.Remote), PortMatch.Preview))];
    }

    /// <summary>The Service's ports that <paramref name="mappings"/> leave out (by targetPort), in the Service's order.</summary>
    public static IReadOnlyList<UncoveredPort> Uncovered(Service service, IReadOnlyList<PortMapping> mappings, IReadOnlyDictionary<string, int>? namedPorts = null)
    {
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(mappings);
        var result = new List<UncoveredPort>();
        foreach (var p in service.Spec?.Ports ?? [])
        {
            var target = TargetOf(p, namedPorts);
            if (IsTcp(p) && mappings.Any(m => m.ServicePort == p.Port || (target is not null && m.TargetPort == target))) continue;
            result.Add(new UncoveredPort(p.Port, p.Name, target, p.TargetPort?.StringValue, (p.Protocol ?? "TCP").ToUpperInvariant()));
        }
        return result;
    }

    /// <summary>Every port of the Service as (port, numeric targetPort); named targetPorts resolve through <paramref name="named"/> or are left out.</summary>
    public static IReadOnlyList<(int Port, int Target)> AllPorts(Service service, IReadOnlyDictionary<string, int>? named = null)
    {
        ArgumentNullException.ThrowIfNull(service);
        return [.. (service.Spec?.Ports ?? []).Select(p => (p.Port, Target: TargetOf(p, named))).Where(p => p.Target is not null).Select(p => (p.Port, p.Target!.Value))];
    }

    /// <summary>TCP (a port without a protocol is TCP).</summary>
    public static bool IsTcp(ServicePort port) => string.Equals(port?.Protocol ?? "TCP", "TCP", StringComparison.OrdinalIgnoreCase);

    private static int? TargetOf(ServicePort p, IReadOnlyDictionary<string, int>? named)
    {
        if (p.TargetPort is not { } t) return p.Port; // an unset targetPort defaults to the port
        if (t.IntValue is { } i) return i;
        return t.StringValue is { } s && named is not null && named.TryGetValue(s, out var n) ? n : null;
    }
}
