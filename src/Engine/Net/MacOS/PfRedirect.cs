using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using KtConnect.Engine.Net.Redirect;

namespace KtConnect.Engine.Net.MacOS;

/// <summary>
/// macOS redirect mode: rules in a pf anchor of our own. Outgoing TCP to the cluster ranges is routed to lo0
/// (pf's rdr only applies to inbound packets) and there redirected to the transparent listener; excludes come
/// first as "no rdr". The listener asks pf for each connection's original destination with DIOCNATLOOK.
/// Rule text and the ioctl structure are pure and unit-tested; loading uses pfctl.
/// </summary>
public static class PfRedirect
{
    public const string DefaultAnchor = "com.ktconnect";

    /// <summary>The anchor's rules (`pfctl -a ANCHOR -f -`).</summary>
    public static string AnchorRules(RedirectRule rule, string loopbackV4 = "127.0.0.1", string loopbackV6 = "::1")
    {
        ArgumentNullException.ThrowIfNull(rule);
        var port = rule.Port.ToString(CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        foreach (var e in rule.Excludes) sb.Append("no rdr on lo0 ").Append(Family(e)).Append(" proto tcp from any to ").Append(e).Append('\n');
        foreach (var c in rule.Cidrs)
        {
            var lo = Family(c) == "inet6" ? loopbackV6 : loopbackV4;
            sb.Append("rdr on lo0 ").Append(Family(c)).Append(" proto tcp from any to ").Append(c).Append(" -> ").Append(lo).Append(" port ").Append(port).Append('\n');
        }
        foreach (var e in rule.Excludes) sb.Append("pass out quick ").Append(Family(e)).Append(" proto tcp from any to ").Append(e).Append('\n');
        foreach (var c in rule.Cidrs)
        {
            var lo = Family(c) == "inet6" ? loopbackV6 : loopbackV4;
            sb.Append("pass out route-to (lo0 ").Append(lo).Append(") ").Append(Family(c)).Append(" proto tcp from any to ").Append(c).Append(" keep state\n");
        }
        return sb.ToString();
    }

    /// <summary>pfctl invocations: load the anchor, enable pf with a reference (token) so we never disable it for others.</summary>
    public static IReadOnlyList<string[]> LoadCommands(string anchor) =>
    [
        ["-a", anchor, "-f", "-"],
        ["-E"],
    ];

    /// <summary>pfctl invocations that undo <see cref="LoadCommands"/> (flush our anchor, release our enable token).</summary>
    public static IReadOnlyList<string[]> UnloadCommands(string anchor, string? enableToken)
    {
        var list = new List<string[]> { new[] { "-a", anchor, "-F", "all" } };
        if (enableToken is not null) list.Add(["-X", enableToken]);
        return list;
    }

    /// <summary>Reads the token pfctl -E prints ("Token : 1234").</summary>
    public static string? ParseEnableToken(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach (var line in output.Split('\n'))
        {
            var t = line.Trim();
            if (t.StartsWith("Token", StringComparison.Ordinal) && t.Contains(':', StringComparison.Ordinal)) return t[(t.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        return null;
    }

    private static string Family(IPNetwork n) => n.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 ? "inet6" : "inet";
}

/// <summary>
/// struct pfioc_natlook from xnu's bsd/net/pfvar.h: four pf_addr (16 bytes each), four pf_state_xport unions
/// (4 bytes: port, call_id or spi), then af, proto, proto_variant, direction. 84 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PfiocNatlook
{
    public fixed byte SAddr[16];
    public fixed byte DAddr[16];
    public fixed byte RsAddr[16];
    public fixed byte RdAddr[16];
    public uint SxPort;
    public uint DxPort;
    public uint RsxPort;
    public uint RdxPort;
    public byte Af;
    public byte Proto;
    public byte ProtoVariant;
    public byte Direction;

    /// <summary>_IOWR('D', 23, struct pfioc_natlook).</summary>
    public static uint DiocNatLook => 0xC0000000u | ((uint)sizeof(PfiocNatlook) << 16) | ('D' << 8) | 23;

    public const byte PfOut = 2;

    /// <summary>
    /// The query for an accepted connection: the client's address/port as source, the listener's as destination,
    /// direction out. Ports are in network byte order in the first two bytes of the union.
    /// </summary>
    public static PfiocNatlook Query(IPEndPoint client, IPEndPoint listener)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(listener);
        var q = default(PfiocNatlook);
        var v6 = client.AddressFamily == AddressFamily.InterNetworkV6;
        q.Af = v6 ? (byte)30 : (byte)2;
        q.Proto = 6;
        q.Direction = PfOut;
        var s = client.Address.GetAddressBytes();
        var d = listener.Address.GetAddressBytes();
        for (var i = 0; i < s.Length; i++) q.SAddr[i] = s[i];
        for (var i = 0; i < d.Length; i++) q.DAddr[i] = d[i];
        q.SxPort = PortField((ushort)client.Port);
        q.DxPort = PortField((ushort)listener.Port);
        return q;
    }

    /// <summary>The original destination pf reports (rdaddr/rdxport).</summary>
    public readonly IPEndPoint OriginalDestination
    {
        get
        {
            var v6 = Af == 30;
            var bytes = new byte[v6 ? 16 : 4];
            fixed (byte* p = RdAddr)
            {
                new ReadOnlySpan<byte>(p, bytes.Length).CopyTo(bytes);
            }
            Span<byte> port = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(port, RdxPort);
            return new IPEndPoint(new IPAddress(bytes), BinaryPrimitives.ReadUInt16BigEndian(port));
        }
    }

    /// <summary>A port as the union holds it in memory: network byte order in the first two bytes (little-endian host).</summary>
    private static uint PortField(ushort port)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16BigEndian(b, port);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }
}
