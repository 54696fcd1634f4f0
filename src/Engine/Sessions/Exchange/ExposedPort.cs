using System.Globalization;

namespace KtConnect.Engine.Sessions.Exchange;

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
