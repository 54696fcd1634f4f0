using System.Net;
using System.Net.Sockets;

namespace KtConnect.Engine.Cluster;

/// <summary>
/// CIDR arithmetic over IPv4 and IPv6 as 128-bit integers: containment, subtraction (what is left of a
/// range once an address or sub-range is cut out) and aggregation (contained ranges dropped, sibling
/// halves merged). Values are normalised: host bits are always zero.
/// </summary>
public readonly record struct Cidr : IComparable<Cidr>
{
    private Cidr(AddressFamily family, UInt128 network, int prefix)
    {
        Family = family;
        Network = network;
        Prefix = prefix;
    }

    public AddressFamily Family { get; }

    public UInt128 Network { get; }

    public int Prefix { get; }

    public int Bits => Family == AddressFamily.InterNetwork ? 32 : 128;

    public IPAddress Address => ToAddress(Family, Network);

    public static Cidr Create(IPAddress address, int prefix)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefix < 0 || prefix > bits) throw new ArgumentOutOfRangeException(nameof(prefix));
        return new Cidr(address.AddressFamily, ToInt(address) & Mask(bits, prefix), prefix);
    }

    /// <summary>The one-address range (/32 or /128).</summary>
    public static Cidr Host(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return Create(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
    }

    /// <summary>Parses "10.96.0.0/12", "fd00::/108" or a bare address (a host range).</summary>
    public static bool TryParse(string? text, out Cidr cidr)
    {
        cidr = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var host = slash < 0 ? text : text[..slash];
        // IPAddress.TryParse also takes legacy forms such as "10.0.0" (= 10.0.0.0); ranges must be written out.
        if (!host.Contains(':', StringComparison.Ordinal) && host.Count(ch => ch == '.') != 3) return false;
        if (!IPAddress.TryParse(host, out var address)) return false;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var prefix = bits;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out prefix) || prefix > bits)) return false;
        cidr = Create(address, prefix);
        return true;
    }

    public static Cidr Parse(string text) =>
        TryParse(text, out var c) ? c : throw new KtException("InvalidCidr", KtErrorCategory.InvalidArgument,
            $"'{text}' is not an IP address or CIDR range (for example 10.96.0.0/12).", target: text);

    public bool Contains(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return address.AddressFamily == Family && (ToInt(address) & Mask(Bits, Prefix)) == Network;
    }

    public bool Contains(Cidr other) =>
        other.Family == Family && other.Prefix >= Prefix && (other.Network & Mask(Bits, Prefix)) == Network;

    public bool Overlaps(Cidr other) => Contains(other) || other.Contains(this);

    /// <summary>This range with <paramref name="hole"/> cut out: the complementary prefixes, largest first.</summary>
    public IReadOnlyList<Cidr> Subtract(Cidr hole)
    {
        if (!Overlaps(hole)) return [this];
        if (hole.Contains(this)) return [];
        var result = new List<Cidr>();
        var current = this;
        while (current.Prefix < hole.Prefix)
        {
            var (low, high) = current.Halves();
            if (low.Contains(hole))
            {
                result.Add(high);
                current = low;
            }
            else
            {
                result.Add(low);
                current = high;
            }
        }
        return result;
    }

    /// <summary>Drops ranges contained in others and merges sibling halves, repeatedly; the result is sorted.</summary>
    public static IReadOnlyList<Cidr> Aggregate(IEnumerable<Cidr> ranges)
    {
        var list = ranges.Distinct().OrderBy(c => c).ToList();
        list = list.Where(c => !list.Any(o => o != c && o.Contains(c))).ToList();
        bool merged;
        do
        {
            merged = false;
            for (var i = 0; i + 1 < list.Count; i++)
            {
                var a = list[i];
                var b = list[i + 1];
                if (a.Family == b.Family && a.Prefix == b.Prefix && a.Prefix > 0)
                {
                    var parent = Create(a.Address, a.Prefix - 1);
                    if (parent.Contains(b) && parent.Network == a.Network)
                    {
                        list[i] = parent;
                        list.RemoveAt(i + 1);
                        merged = true;
                        break;
                    }
                }
            }
        }
        while (merged);
        return list;
    }

    public int CompareTo(Cidr other)
    {
        var f = Family.CompareTo(other.Family);
        if (f != 0) return f;
        var n = Network.CompareTo(other.Network);
        return n != 0 ? n : Prefix.CompareTo(other.Prefix);
    }

    public override string ToString() => $"{Address}/{Prefix}";

    private (Cidr Low, Cidr High) Halves()
    {
        var p = Prefix + 1;
        var high = Network | (UInt128.One << (Bits - p));
        return (new Cidr(Family, Network, p), new Cidr(Family, high, p));
    }

    private static UInt128 Mask(int bits, int prefix) =>
        prefix == 0 ? UInt128.Zero : (UInt128.MaxValue << (128 - prefix)) >> (128 - bits);

    private static UInt128 ToInt(IPAddress address)
    {
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out var n);
        UInt128 v = 0;
        for (var i = 0; i < n; i++) v = (v << 8) | b[i];
        return v;
    }

    private static IPAddress ToAddress(AddressFamily family, UInt128 value)
    {
        var n = family == AddressFamily.InterNetwork ? 4 : 16;
        var b = new byte[n];
        for (var i = n - 1; i >= 0; i--)
        {
            b[i] = (byte)(value & 0xFF);
            value >>= 8;
        }
        return new IPAddress(b);
    }
}
