using System.ComponentModel;
using System.Net.Sockets;
using System.Runtime.Versioning;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Engine.Net.Windows;

/// <summary>
/// A Wintun adapter with its addresses: WintunCreateAdapter + WintunStartSession (the adapter is up while the
/// session runs), then one CreateUnicastIpAddressEntry per address on the adapter's LUID and the IP MTU per family
/// (SetIpInterfaceEntry). The row layouts are <see cref="MibUnicastIpAddressRow"/> and <see cref="MibIpInterfaceRow"/>,
/// unit-tested; what is here is only the system calls. The addresses are not
/// persistent: they go with the adapter.
/// </summary>
[SupportedOSPlatform("windows")]
public static class WintunSetup
{
    public static WintunDevice Create(string name, int mtu, IReadOnlyList<TunAddress> addresses)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        var device = WintunDevice.Create(name, TunDevices.WintunTunnelType, mtu);
        try
        {
            foreach (var a in addresses) AddAddress(device.Luid, device.Name, a);
            foreach (var family in addresses.Select(a => a.Address.AddressFamily).Distinct()) SetMtu(device.Luid, device.Name, family, mtu);
            return device;
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sets the interface's IP MTU for one family to the stack's, so that Windows never hands the adapter a packet
    /// larger than the stack reads.
    /// </summary>
    public static unsafe void SetMtu(ulong luid, string device, AddressFamily family, int mtu)
    {
        var row = default(MibIpInterfaceRow);
        IpHelperNative.InitializeIpInterfaceEntry(&row);
        row.Select(luid, family);
        var rc = IpHelperNative.GetIpInterfaceEntry(&row);
        if (rc == IpHelperNative.ErrorSuccess)
        {
            row.SetMtu(mtu);
            rc = IpHelperNative.SetIpInterfaceEntry(&row);
        }
        if (rc != IpHelperNative.ErrorSuccess)
        {
            throw new TunDeviceException("TunConfigureFailed",
                $"Setting the {family} MTU of {device} to {mtu} failed: {new Win32Exception((int)rc).Message} ({rc}).", target: device);
        }
    }

    /// <summary>Adds one address to the interface; the same address already there is the state we want.</summary>
    public static unsafe void AddAddress(ulong luid, string device, TunAddress address)
    {
        var row = default(MibUnicastIpAddressRow);
        IpHelperNative.InitializeUnicastIpAddressEntry(&row);
        row.SetAddress(address.Address, address.PrefixLength, luid);
        var rc = IpHelperNative.CreateUnicastIpAddressEntry(&row);
        if (rc != IpHelperNative.ErrorSuccess && rc != IpHelperNative.ErrorObjectAlreadyExists)
        {
            throw new TunDeviceException("TunConfigureFailed",
                $"CreateUnicastIpAddressEntry({address} on {device}) failed: {new Win32Exception((int)rc).Message} ({rc}).", target: device);
        }
    }
}
