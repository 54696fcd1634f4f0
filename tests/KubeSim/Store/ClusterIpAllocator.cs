using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// Service ClusterIPs from an IPv4 range (10.96.0.0/16 like the recorded cluster). The first host address is
/// kept for the <c>kubernetes</c> Service. Not thread-safe: the store calls it under its lock.
/// </summary>
public sealed class ClusterIpAllocator
{
    private readonly uint _network;
    private readonly int _prefix;
    private readonly HashSet<uint> _used = [];

    public ClusterIpAllocator(string cidr)
    {
        var slash = cidr.IndexOf('/', StringComparison.Ordinal);
        var ip = IPAddress.Parse(cidr[..slash]);
        if (ip.AddressFamily != AddressFamily.InterNetwork) throw new ArgumentException("IPv4 ranges only", nameof(cidr));
        _prefix = int.Parse(cidr[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        _network = ToUInt(ip) & Mask;
        Cidr = $"{FromUInt(_network)}/{_prefix}";
    }

    public string Cidr { get; }

    private uint Mask => _prefix == 0 ? 0 : uint.MaxValue << (32 - _prefix);

    private uint Size => (uint)(1UL << (32 - _prefix));

    /// <summary>The first usable address (10.96.0.1): the kubernetes Service's.</summary>
    public string First => FromUInt(_network + 1);

    public bool Contains(string ip) =>
        IPAddress.TryParse(ip, out var a) && a.AddressFamily == AddressFamily.InterNetwork && (ToUInt(a) & Mask) == _network
        && ToUInt(a) != _network && ToUInt(a) != _network + Size - 1;

    /// <summary>Reserves a specific address; false when taken.</summary>
    public bool TryReserve(string ip) => _used.Add(ToUInt(IPAddress.Parse(ip)));

    public bool IsUsed(string ip) => IPAddress.TryParse(ip, out var a) && _used.Contains(ToUInt(a));

    public void Release(string ip)
    {
        if (IPAddress.TryParse(ip, out var a)) _used.Remove(ToUInt(a));
    }

    /// <summary>The addresses in use, for <see cref="Restore"/> (dry runs allocate and then give everything back).</summary>
    internal uint[] SaveState() => [.. _used];

    internal void Restore(uint[] state)
    {
        _used.Clear();
        _used.UnionWith(state);
    }

    /// <summary>A random free address, as the real allocator picks (not sequential).</summary>
    public string Allocate()
    {
        var hosts = Size - 2;
        if (_used.Count >= hosts) throw new InvalidOperationException("service IP range exhausted");
        var start = (uint)RandomNumberGenerator.GetInt32((int)Math.Min(hosts, int.MaxValue));
        for (uint i = 0; i < hosts; i++)
        {
            var candidate = _network + 1 + ((start + i) % hosts);
            if (_used.Add(candidate)) return FromUInt(candidate);
        }
        throw new InvalidOperationException("service IP range exhausted");
    }

    private static uint ToUInt(IPAddress a)
    {
        var b = a.GetAddressBytes();
        return ((uint)b[0] << 24) | ((uint)b[1] << 16) | ((uint)b[2] << 8) | b[3];
    }

    private static string FromUInt(uint v) => $"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}";
}
