using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Kube;

/// <summary>
/// The proxy settings of the environment, read as kubectl (Go's net/http) reads them, not as .NET does:
/// <list type="bullet">
/// <item><c>HTTPS_PROXY</c> for https requests, <c>HTTP_PROXY</c> for http (upper case first, then lower case); a value
/// without a scheme is an http proxy.</item>
/// <item><c>NO_PROXY</c> entries: <c>*</c>; an IP address or a CIDR block (10.0.0.0/8), which .NET 10 ignores, so a
/// cluster reached by address went to the proxy; a domain, which also matches its subdomains (<c>corp.example</c>
/// covers <c>api.corp.example</c>), or with a leading <c>.</c> or <c>*.</c> only its subdomains; any of them with
/// <c>:port</c>.</item>
/// <item><c>localhost</c> and loopback addresses never go through a proxy.</item>
/// </list>
/// A kubeconfig's <c>proxy-url</c> takes precedence over all of this, as in kubectl.
/// </summary>
public sealed class KubeEnvironmentProxy : IWebProxy
{
    private readonly Uri? _http;
    private readonly Uri? _https;
    private readonly bool _bypassAll;
    private readonly List<(IPNetwork Network, string? Port)> _networks = [];
    private readonly List<(string Suffix, bool AlsoItself, string? Port)> _domains = [];

    private KubeEnvironmentProxy(Uri? http, Uri? https, string? noProxy)
    {
        // user:password in a proxy's URL are its credentials, not part of where to connect.
        var credentials = new Dictionary<string, NetworkCredential>(StringComparer.OrdinalIgnoreCase);
        _http = WithoutUserInfo(http, credentials);
        _https = WithoutUserInfo(https, credentials);
        if (credentials.Count > 0) Credentials = new ProxyCredentials(credentials);
        foreach (var raw in (noProxy ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var entry = raw.ToLowerInvariant();
            if (entry == "*")
            {
                _bypassAll = true;
                continue;
            }
            if (entry.Contains('/', StringComparison.Ordinal))
            {
                if (ParseBlock(entry) is { } network) _networks.Add((network, null));
                continue;
            }
            var (host, port) = SplitPort(entry);
            if (host.Length == 0) continue;
            if (IPAddress.TryParse(host, out var ip))
            {
                _networks.Add((new IPNetwork(ip, ip.AddressFamily == AddressFamily.InterNetwork ? 32 : 128), port));
                continue;
            }
            if (host.StartsWith("*.", StringComparison.Ordinal)) host = host[1..];
            _domains.Add(host.StartsWith('.') ? (host, false, port) : ("." + host, true, port));
        }
    }

    /// <summary>The proxies and exceptions <paramref name="environment"/> names (the process's variables by default).</summary>
    public static KubeEnvironmentProxy FromEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? Read(string name) => NullIfEmpty(environment(name)) ?? NullIfEmpty(environment(name.ToLowerInvariant()));
        return new KubeEnvironmentProxy(ParseProxy(Read("HTTP_PROXY")), ParseProxy(Read("HTTPS_PROXY")), Read("NO_PROXY"));
    }

    /// <summary>True when no proxy is set for either scheme: every request goes direct.</summary>
    public bool IsEmpty => _http is null && _https is null;

    public ICredentials? Credentials { get; set; }

    public Uri? GetProxy(Uri destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var proxy = destination.Scheme == Uri.UriSchemeHttps || destination.Scheme == Uri.UriSchemeWss ? _https : _http;
        return proxy is null || Bypasses(destination) ? null : proxy;
    }

    public bool IsBypassed(Uri host) => GetProxy(host) is null;

    private bool Bypasses(Uri destination)
    {
        var host = destination.IdnHost.Trim('[', ']').ToLowerInvariant();
        var port = destination.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (host == "localhost") return true;
        if (IPAddress.TryParse(host, out var ip))
        {
            if (IPAddress.IsLoopback(ip)) return true;
            if (_bypassAll) return true;
            return _networks.Any(n => n.Network.Contains(ip) && (n.Port is null || n.Port == port));
        }
        return _bypassAll || _domains.Any(d => (host.EndsWith(d.Suffix, StringComparison.Ordinal) || (d.AlsoItself && host == d.Suffix[1..]))
            && (d.Port is null || d.Port == port));
    }

    /// <summary>
    /// A CIDR block as Go's ParseCIDR takes it: host bits set are allowed and masked off (10.1.2.3/8 is 10.0.0.0/8).
    /// .NET 8 and 9, which the module runs on under PowerShell 7.4 and 7.5, refuse such a block in IPNetwork.TryParse.
    /// </summary>
    private static IPNetwork? ParseBlock(string entry)
    {
        var slash = entry.IndexOf('/', StringComparison.Ordinal);
        if (!IPAddress.TryParse(entry[..slash], out var address)
            || !int.TryParse(entry[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var prefix))
            return null;
        var bytes = address.GetAddressBytes();
        if (prefix > bytes.Length * 8) return null;
        for (var bit = prefix; bit < bytes.Length * 8; bit++) bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        return new IPNetwork(new IPAddress(bytes), prefix);
    }

    private static (string Host, string? Port) SplitPort(string entry)
    {
        if (entry.StartsWith('['))
        {
            var close = entry.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) return (entry, null);
            var rest = entry[(close + 1)..];
            return (entry[1..close], rest.StartsWith(':') ? rest[1..] : null);
        }
        var colon = entry.LastIndexOf(':');
        // More than one colon is a bare IPv6 address, not host:port.
        if (colon < 0 || entry.IndexOf(':', StringComparison.Ordinal) != colon) return (entry, null);
        return (entry[..colon], entry[(colon + 1)..]);
    }

    private static Uri? ParseProxy(string? value)
    {
        if (value is null) return null;
        if (!value.Contains("://", StringComparison.Ordinal)) value = "http://" + value;
        return Uri.TryCreate(value, UriKind.Absolute, out var uri) ? uri : null;
    }

    private static Uri? WithoutUserInfo(Uri? proxy, Dictionary<string, NetworkCredential> credentials)
    {
        if (proxy is null || string.IsNullOrEmpty(proxy.UserInfo)) return proxy;
        var parts = proxy.UserInfo.Split(':', 2);
        var bare = new UriBuilder(proxy) { UserName = "", Password = "" }.Uri;
        credentials[bare.Authority] = new NetworkCredential(Uri.UnescapeDataString(parts[0]), parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : "");
        return bare;
    }

    private sealed class ProxyCredentials(Dictionary<string, NetworkCredential> byAuthority) : ICredentials
    {
        public NetworkCredential? GetCredential(Uri uri, string authType) => byAuthority.GetValueOrDefault(uri.Authority);
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
