using System.Globalization;
using System.Runtime.Versioning;
using KtConnect.Engine.Net.Redirect;

namespace KtConnect.Engine.Net.MacOS;

/// <summary>
/// Opens a utun and configures it with ifconfig: IPv4 addresses point-to-point to themselves
/// (`ifconfig utunN inet A A netmask M mtu MTU up`, further ones with `alias`), IPv6 addresses with
/// `ifconfig utunN inet6 A prefixlen P`. The kernel names the device; every ifconfig call goes through a
/// <see cref="CommandRunner"/>, so the command lines are tested on any OS.
/// </summary>
public static class UtunSetup
{
    public const string Ifconfig = "/sbin/ifconfig";

    /// <summary>The unit a requested name asks for: "utun7" → 7; any other name (or "utun") lets the kernel pick.</summary>
    public static int? UnitOf(string requestedName)
    {
        ArgumentNullException.ThrowIfNull(requestedName);
        const string prefix = "utun";
        if (requestedName.Length <= prefix.Length || !requestedName.StartsWith(prefix, StringComparison.Ordinal)) return null;
        var digits = requestedName.AsSpan(prefix.Length);
        if (digits.Length > 1 && digits[0] == '0') return null;
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var unit) && unit < int.MaxValue ? unit : null;
    }

    /// <summary>The ifconfig argument lists that give <paramref name="device"/> its MTU and addresses and bring it up, in order.</summary>
    public static IReadOnlyList<string[]> IfconfigCommands(string device, int mtu, IReadOnlyList<TunAddress> addresses)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        ArgumentNullException.ThrowIfNull(addresses);
        var mtuText = mtu.ToString(CultureInfo.InvariantCulture);
        var commands = new List<string[]>();
        var v4 = addresses.Where(a => !a.IsIPv6).ToList();
        if (v4.Count == 0) commands.Add([device, "mtu", mtuText, "up"]);
        for (var i = 0; i < v4.Count; i++)
        {
            var a = v4[i].Address.ToString();
            string[] tail = i == 0 ? ["mtu", mtuText, "up"] : ["alias"];
            commands.Add([device, "inet", a, a, "netmask", v4[i].Netmask.ToString(), .. tail]);
        }
        foreach (var a in addresses.Where(a => a.IsIPv6))
            commands.Add([device, "inet6", a.Address.ToString(), "prefixlen", a.PrefixLength.ToString(CultureInfo.InvariantCulture)]);
        return commands;
    }

    /// <summary>Runs <see cref="IfconfigCommands"/>; the first failure is a <c>TunConfigureFailed</c> naming the command.</summary>
    public static async Task ConfigureAsync(string device, int mtu, IReadOnlyList<TunAddress> addresses, CommandRunner runner,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(runner);
        foreach (var args in IfconfigCommands(device, mtu, addresses))
        {
            var r = await runner(Ifconfig, args, null, cancellationToken).ConfigureAwait(false);
            if (!r.Succeeded)
            {
                var detail = r.StandardError.Trim();
                if (detail.Length == 0) detail = r.StandardOutput.Trim();
                throw new TunDeviceException("TunConfigureFailed", $"'{r.CommandLine}' failed (exit code {r.ExitCode}): {detail}", target: r.CommandLine);
            }
        }
    }

    /// <summary>Opens a utun (the unit of a "utunN" name, else the next free one) and configures it; closes it again on failure.</summary>
    [SupportedOSPlatform("macos")]
    public static async Task<MacUtunDevice> CreateAsync(string requestedName, int mtu, IReadOnlyList<TunAddress> addresses, CommandRunner runner,
        CancellationToken cancellationToken = default)
    {
        var device = MacUtunDevice.Open(mtu, UnitOf(requestedName));
        try
        {
            await ConfigureAsync(device.Name, mtu, addresses, runner, cancellationToken).ConfigureAwait(false);
            return device;
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }
}
