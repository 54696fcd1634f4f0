using System.ComponentModel;
using System.Runtime.Versioning;
using KtConnect.Engine.Net.Routes;

namespace KtConnect.Engine.Net.Windows;

/// <summary>
/// A Wintun adapter with its addresses: WintunCreateAdapter + WintunStartSession (the adapter is up while the
/// session runs), then one CreateUnicastIpAddressEntry per address on the adapter's LUID. The row layout is
/// <see cref="MibUnicastIpAddressRow"/>, unit-tested; what is here is only the system calls. The addresses are not
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
            return device;
        }
        catch
        {
            device.Dispose();
            throw;
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
