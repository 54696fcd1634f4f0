namespace KtConnect.Engine.Dns;

/// <summary>
/// A DNS message that violates RFC 1035/6891 (bad compression pointer, overlong name, counts that do not
/// match the bytes, truncated input). The server answers it with FORMERR; it never escapes as anything else.
/// </summary>
public sealed class DnsFormatException : KtException
{
    public DnsFormatException(string message, int offset)
        : base("DnsMessageMalformed", KtErrorCategory.ProtocolError, $"{message} (at byte {offset})")
    {
        Offset = offset;
    }

    /// <summary>Where in the message the problem was found.</summary>
    public int Offset { get; }
}

/// <summary>Errors of the resolver configuration (systemd-resolved, resolv.conf, /etc/resolver, NRPT, hosts file).</summary>
public sealed class DnsConfigurationException : KtException
{
    public DnsConfigurationException(string errorId, KtErrorCategory category, string message, Exception? inner = null, object? target = null)
        : base(errorId, category, message, inner, target)
    {
    }
}

/// <summary>Stable error ids of the DNS area, asserted by tests and matched by scripts.</summary>
public static class DnsErrorIds
{
    public const string MessageMalformed = "DnsMessageMalformed";
    public const string ResolvedUnavailable = "DnsResolvedUnavailable";
    public const string ResolvedCommandFailed = "DnsResolvedCommandFailed";
    public const string ResolvConfMissing = "DnsResolvConfMissing";
    public const string ResolvConfNotOriginal = "DnsResolvConfNotOriginal";
    public const string AccessDenied = "DnsConfigurationAccessDenied";
    public const string HostsFileReadOnly = "DnsHostsFileReadOnly";
    public const string HostsFileMissing = "DnsHostsFileMissing";
    public const string HostsFileBusy = "DnsHostsFileBusy";
    public const string ResolverFileConflict = "DnsResolverFileConflict";
    public const string NrptUnavailable = "DnsNrptUnavailable";
    public const string NrptCommandFailed = "DnsNrptCommandFailed";
    public const string UnsupportedPlatform = "DnsPlatformUnsupported";
    public const string PortNotSupported = "DnsServerPortNotSupported";
}
