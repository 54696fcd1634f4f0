using System.Globalization;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Net.Linux;
using KtConnect.Engine.Net.MacOS;
using KtConnect.Engine.Net.Redirect;
using KtConnect.Engine.Net.Windows;

namespace KtConnect.Engine.Net;

/// <summary>An address a tun device carries: the address itself (host bits kept) and its prefix length.</summary>
public readonly record struct TunAddress(IPAddress Address, int PrefixLength)
{
    public bool IsIPv6 => Address.AddressFamily == AddressFamily.InterNetworkV6;

    /// <summary>"198.18.0.1/32", "fd00::1/128"; a bare address is a host (/32, /128). Error <c>TunAddressInvalid</c>.</summary>
    public static TunAddress Parse(string cidr)
    {
        ArgumentNullException.ThrowIfNull(cidr);
        var slash = cidr.IndexOf('/', StringComparison.Ordinal);
        var text = slash < 0 ? cidr : cidr[..slash];
        if (!IPAddress.TryParse(text, out var address) || address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw Invalid(cidr);
        var max = address.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(cidr.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > max))
            throw Invalid(cidr);
        return new TunAddress(address, prefix);
    }

    /// <summary>IPv4 netmask of the prefix (255.255.255.255 for /32).</summary>
    public IPAddress Netmask
    {
        get
        {
            if (IsIPv6) throw new InvalidOperationException("IPv6 addresses have a prefix length, not a netmask.");
            var mask = PrefixLength == 0 ? 0u : uint.MaxValue << (32 - PrefixLength);
            return new IPAddress([(byte)(mask >> 24), (byte)(mask >> 16), (byte)(mask >> 8), (byte)mask]);
        }
    }

    public override string ToString() => $"{Address}/{PrefixLength}";

    private static TunDeviceException Invalid(string cidr) =>
        new("TunAddressInvalid", $"'{cidr}' is not an address with a prefix length (198.18.0.1/32, fd00::1/128) a tun device can carry.", target: cidr);
}

/// <summary>Which kind of tun device this operating system gets.</summary>
public enum TunBackend
{
    /// <summary>/dev/net/tun, configured with `ip`.</summary>
    LinuxTun,

    /// <summary>utun (kernel control socket), configured with `ifconfig`.</summary>
    MacUtun,

    /// <summary>Wintun adapter, addresses through IP Helper.</summary>
    Wintun,
}

/// <summary>
/// One OS-neutral way to get a tun device that is ready for routes: created, MTU set, addresses assigned, link up.
/// Nothing it creates outlives the process: the Linux device is not persistent, a utun goes with its socket, a Wintun
/// adapter with its handle (and addresses go with their adapter), so there is nothing to journal.
/// </summary>
public static class TunDevices
{
    /// <summary>The tunnel type Wintun adapters are created with (what Windows shows as the adapter's description).</summary>
    public const string WintunTunnelType = "KtConnect";

    /// <summary>The backend for an OS (null: none).</summary>
    public static TunBackend? BackendFor(bool linux, bool macos, bool windows) =>
        linux ? TunBackend.LinuxTun : macos ? TunBackend.MacUtun : windows ? TunBackend.Wintun : null;

    /// <summary>The backend for this machine.</summary>
    public static TunBackend? Current => BackendFor(OperatingSystem.IsLinux(), OperatingSystem.IsMacOS(), OperatingSystem.IsWindows());

    /// <summary>
    /// Creates the device and configures it. <paramref name="name"/> is honoured on Linux and Windows; on macOS the
    /// kernel names utun devices (a requested "utunN" asks for that unit, anything else takes the next free one), so
    /// callers must use the returned device's <see cref="ITunDevice.Name"/>. Addresses are checked before anything is
    /// created. <paramref name="runner"/> runs ifconfig on macOS (tests); Linux runs `ip` itself.
    /// </summary>
    public static async Task<ITunDevice> CreateAsync(string name, int mtu, IReadOnlyList<string> addressCidrs, CommandRunner? runner = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(addressCidrs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(mtu);
        var addresses = addressCidrs.Select(TunAddress.Parse).ToList();
        if (OperatingSystem.IsLinux())
            return await LinuxTunDevice.CreateAsync(name, mtu, addressCidrs, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (OperatingSystem.IsMacOS())
            return await UtunSetup.CreateAsync(name, mtu, addresses, runner ?? CommandRunners.Process, cancellationToken).ConfigureAwait(false);
        if (OperatingSystem.IsWindows())
            return WintunSetup.Create(name, mtu, addresses);
        throw new TunDeviceException("TunNotSupported",
            $"Tun devices are not supported on {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; use socks mode.");
    }
}
