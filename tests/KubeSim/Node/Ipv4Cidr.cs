using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>An IPv4 prefix as two integers: enough arithmetic for the node's address plan.</summary>
public readonly record struct Ipv4Cidr(uint Network, int PrefixLength)
{
    public uint Mask => PrefixLength == 0 ? 0u : uint.MaxValue << (32 - PrefixLength);

    public ulong Size => 1UL << (32 - PrefixLength);

    public uint Last => Network | ~Mask;

    public static Ipv4Cidr Parse(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var len = 32;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out len) || len > 32))
            throw Invalid(text);
        var addr = ParseAddress(slash >= 0 ? text[..slash] : text);
        var c = new Ipv4Cidr(0, len);
        return c with { Network = addr & c.Mask };
    }

    public static uint ParseAddress(string text)
    {
        if (!IPAddress.TryParse(text, out var ip) || ip.AddressFamily != AddressFamily.InterNetwork || text.Count(ch => ch == '.') != 3)
            throw Invalid(text);
        Span<byte> b = stackalloc byte[4];
        ip.TryWriteBytes(b, out _);
        return BinaryPrimitives.ReadUInt32BigEndian(b);
    }

    public static string Format(uint address) =>
        $"{address >> 24}.{(address >> 16) & 0xff}.{(address >> 8) & 0xff}.{address & 0xff}";

    public bool Contains(uint address) => (address & Mask) == Network;

    public bool Overlaps(Ipv4Cidr other)
    {
        var shorter = Math.Min(PrefixLength, other.PrefixLength);
        var m = shorter == 0 ? 0u : uint.MaxValue << (32 - shorter);
        return (Network & m) == (other.Network & m);
    }

    public override string ToString() => Format(Network) + "/" + PrefixLength.ToString(CultureInfo.InvariantCulture);

    private static KtException Invalid(string text) =>
        new("SimInvalidAddress", KtErrorCategory.InvalidArgument, $"'{text}' is not an IPv4 address or prefix.", target: text);
}
