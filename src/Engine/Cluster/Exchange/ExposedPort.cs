using System.Globalization;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster.Exchange;

/// <summary>
/// One entry of kt-connect's <c>--expose</c>: <c>port</c> (the same number locally and in the cluster) or
/// <c>local:remote</c>. Which cluster port <see cref="Remote"/> means is decided against the Service (see
/// <see cref="PortMapper"/>): Service port or targetPort, both accepted.
/// </summary>
public sealed record ExposedPort(int Local, int Remote)
{
    public override string ToString() => Local == Remote
        ? Local.ToString(CultureInfo.InvariantCulture)
        : string.Create(CultureInfo.InvariantCulture, $"{Local}:{Remote}");

    /// <summary>Parses <c>8080</c>, <c>8080:80</c> or a comma-separated list of them; malformed input throws <see cref="ExposeFormatException"/>.</summary>
    public static IReadOnlyList<ExposedPort> ParseList(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ExposeFormatException(text ?? "", "at least one port is needed, e.g. 8080 or 8080:80");
        var ports = new List<ExposedPort>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            ports.Add(Parse(part));
        }
        return Validate(ports);
    }

    /// <summary>Parses one <c>port</c> or <c>local:remote</c>.</summary>
    public static ExposedPort Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            var p = Number(text, text);
            return new ExposedPort(p, p);
        }
        if (text.IndexOf(':', colon + 1) >= 0) throw new ExposeFormatException(text, "use local:remote with one ':'");
        return new ExposedPort(Number(text[..colon], text), Number(text[(colon + 1)..], text));
    }

    /// <summary>No two entries may bind the same remote port (one listener per port in the shadow).</summary>
    public static IReadOnlyList<ExposedPort> Validate(IReadOnlyList<ExposedPort> ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        if (ports.Count == 0) throw new ExposeFormatException("", "at least one port is needed, e.g. 8080 or 8080:80");
        var dup = ports.GroupBy(p => p.Remote).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new ExposeFormatException(string.Join(',', ports), $"remote port {dup.Key} is given more than once");
        return ports;
    }

    private static int Number(string value, string whole)
    {
        var v = value.Trim();
        if (v.Length == 0 || !v.All(char.IsAsciiDigit) || !int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n is < 1 or > 65535)
            throw new ExposeFormatException(whole, $"'{value}' is not a port number (1-65535)");
        return n;
    }
}

/// <summary>An <c>--expose</c> / <c>-Port</c> value that cannot be read.</summary>
public sealed class ExposeFormatException(string value, string detail)
    : KtException("InvalidExposePort", KtErrorCategory.InvalidArgument,
        $"Invalid port '{value}': {detail} (format: port or local:remote, comma separated).", null, value);

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
        var resolved = ports.Select(p => (Port: p, Target: TargetOf(p, namedPorts))).ToList();
        var result = new List<PortMapping>();
        foreach (var e in exposed)
        {
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

    private static int? TargetOf(ServicePort p, IReadOnlyDictionary<string, int>? named)
    {
        if (p.TargetPort is not { } t) return p.Port; // an unset targetPort defaults to the port
        if (t.IntValue is { } i) return i;
        return t.StringValue is { } s && named is not null && named.TryGetValue(s, out var n) ? n : null;
    }
}
