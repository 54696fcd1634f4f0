using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using KtConnect.Engine.Dns;

namespace KtConnect.Tests.Integration.Dns;

/// <summary>A minimal DNS client for assertions that dig cannot express (concurrency, exact bytes).</summary>
internal static class DnsTestClient
{
    public static async Task<DnsMessage> QueryUdpAsync(IPEndPoint server, string name, DnsType type, DnsEdns? edns = null,
        TimeSpan? timeout = null)
    {
        using var udp = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        udp.Connect(server);
        var id = (ushort)Random.Shared.Next(65536);
        var query = DnsMessage.CreateQuery(id, DnsName.Parse(name), type, edns).ToArray();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        await udp.SendAsync(query, SocketFlags.None, cts.Token);
        var buffer = new byte[65535];
        while (true)
        {
            var n = await udp.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            var m = DnsMessage.Parse(buffer.AsSpan(0, n));
            if (m.Id == id) return m;
        }
    }

    public static async Task<DnsMessage> QueryTcpAsync(IPEndPoint server, string name, DnsType type)
    {
        using var tcp = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await tcp.ConnectAsync(server, cts.Token);
        var query = DnsMessage.CreateQuery(7, DnsName.Parse(name), type).ToArray();
        var frame = new byte[query.Length + 2];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)query.Length);
        query.CopyTo(frame, 2);
        await tcp.SendAsync(frame, SocketFlags.None, cts.Token);
        await using var stream = new NetworkStream(tcp);
        var header = new byte[2];
        await stream.ReadExactlyAsync(header, cts.Token);
        var body = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
        await stream.ReadExactlyAsync(body, cts.Token);
        return DnsMessage.Parse(body);
    }

    /// <summary>Sends raw bytes and returns the raw answer (or null when none came within the timeout).</summary>
    public static async Task<byte[]?> SendRawAsync(IPEndPoint server, byte[] message, TimeSpan timeout)
    {
        using var udp = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        udp.Connect(server);
        await udp.SendAsync(message, SocketFlags.None);
        var buffer = new byte[65535];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var n = await udp.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return buffer.AsSpan(0, n).ToArray();
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
