using System.Buffers.Binary;
using System.Net;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.Linux;
using KtConnect.KubeSim.Host;

namespace KtConnect.Tests.Integration.Net;

/// <summary>
/// The Linux tun device's checksum offload with the kernel as the peer: the kernel hands over its TCP segments with
/// the checksum left undone (and says so), and finishes the partial checksum of a segment we write.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class TunChecksumOffloadTests
{
    private static readonly UInt128 Cluster = IpPacket.FromAddress(IPAddress.Parse("10.96.0.10"));

    [LinuxRootFact("python3")]
    public async Task KernelSegments_AreTrustedWithoutASum_AndOurPartialChecksumIsFinished()
    {
        await using var laptop = await NetNs.CreateAsync("ktnet-");
        var tun = "ktn" + Guid.NewGuid().ToString("N")[..8];
        using var device = await LinuxTunDevice.CreateAsync(tun, 1500, ["198.18.0.1/32"], laptop.Name);
        await laptop.ExecAsync(default, "ip", "route", "add", "10.96.0.0/16", "dev", tun);
        Assert.True(device.ChecksumOffload);

        // A client connects; nothing but us can answer its SYN.
        using var client = laptop.Start("python3", "-c",
            "import socket; s = socket.create_connection(('10.96.0.10', 80), 10); print('connected', flush=True)");
        var syn = await ReadSegmentAsync(device, TcpFlags.Syn);
        Assert.True(syn.Trusted);
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(syn.Packet, out var ip));
        // The kernel left the sum to the device: only the pseudo-header is in the field, so a full check fails.
        Assert.Equal(ParseStatus.Malformed, TcpSegment.TryParse(syn.Packet, ip, out _));
        Assert.Equal(ParseStatus.Ok, TcpSegment.TryParse(syn.Packet, ip, out var seg, checksumTrusted: true));

        // Our SYN-ACK carries a partial checksum too; the kernel accepts it only if the device has it finished.
        const uint iss = 777_000;
        var buffer = new byte[TcpSegment.HeaderSpace(false, withSynOptions: true)];
        var n = TcpSegment.Write(buffer, false, Cluster, ip.Source, 80, seg.SourcePort, iss, seg.Sequence + 1,
            TcpFlags.Syn | TcpFlags.Ack, 65535, 0, mss: 1460, partialChecksum: true);
        device.WritePacket(buffer.AsSpan(0, n), partialTcpChecksum: true);

        var ack = await ReadSegmentAsync(device, TcpFlags.Ack);
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(ack.Packet, out var ackIp));
        Assert.Equal(ParseStatus.Ok, TcpSegment.TryParse(ack.Packet, ackIp, out var ackSeg, checksumTrusted: true));
        Assert.Equal(iss + 1, ackSeg.Acknowledgment);
        Assert.Equal("connected", await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [LinuxRootFact("python3")]
    public async Task ReadingWholePackets_SumsWhatTheKernelLeftUndone()
    {
        await using var laptop = await NetNs.CreateAsync("ktnet-");
        var tun = "ktn" + Guid.NewGuid().ToString("N")[..8];
        using var device = await LinuxTunDevice.CreateAsync(tun, 1500, ["198.18.0.1/32"], laptop.Name);
        await laptop.ExecAsync(default, "ip", "route", "add", "10.96.0.0/16", "dev", tun);
        using var client = laptop.Start("python3", "-c", "import socket; socket.create_connection(('10.96.0.10', 80), 10)");
        var syn = await ReadSegmentAsync(device, TcpFlags.Syn, whole: true);
        Assert.False(syn.Trusted);
        Assert.Equal(ParseStatus.Ok, IpPacket.TryParse(syn.Packet, out var ip));
        Assert.Equal(ParseStatus.Ok, TcpSegment.TryParse(syn.Packet, ip, out _));
    }

    /// <summary>Reads packets until a TCP segment to the cluster address with exactly <paramref name="flags"/> arrives.</summary>
    private static Task<(byte[] Packet, bool Trusted)> ReadSegmentAsync(LinuxTunDevice device, TcpFlags flags, bool whole = false) =>
        Task.Run(() =>
        {
            var buffer = new byte[2048];
            while (true)
            {
                var trusted = false;
                var n = whole ? device.ReadPacket(buffer) : device.ReadPacket(buffer, out trusted);
                if (n <= 0) throw new InvalidOperationException("the device closed");
                var packet = buffer.AsSpan(0, n);
                if (IpPacket.TryParse(packet, out var ip) != ParseStatus.Ok || ip.Protocol != IpProtocol.Tcp || ip.Destination != Cluster) continue;
                var t = packet[ip.PayloadOffset..];
                if ((TcpFlags)(t[13] & 0x3F) == flags && BinaryPrimitives.ReadUInt16BigEndian(t[2..]) == 80) return (packet.ToArray(), trusted);
            }
        }).WaitAsync(TimeSpan.FromSeconds(10));
}
