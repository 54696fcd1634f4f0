using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// A raw RFC 6455 client (like the recorder of the fixtures): every frame's FIN, opcode and payload is visible, and
/// control frames are sent and seen as they are. Client frames are masked; server frames are read as they come.
/// </summary>
internal sealed class RawWebSocket : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly SslStream _tls;
    private readonly byte[] _pending;
    private int _pendingCount;

    private RawWebSocket(TcpClient tcp, SslStream tls, byte[] leftover, string statusLine, List<(string, string)> headers)
    {
        _tcp = tcp;
        _tls = tls;
        _pending = new byte[1 << 20];
        leftover.CopyTo(_pending, 0);
        _pendingCount = leftover.Length;
        StatusLine = statusLine;
        Headers = headers;
    }

    public string StatusLine { get; }

    public List<(string Name, string Value)> Headers { get; }

    public string? Header(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    public sealed record Frame(bool Fin, int Opcode, byte[] Payload, byte[] Wire)
    {
        public string Hex => Convert.ToHexStringLower(Payload);

        public string WireHex => Convert.ToHexStringLower(Wire);

        public static string OpcodeName(int op) => op switch
        {
            1 => "text",
            2 => "binary",
            8 => "close",
            9 => "ping",
            10 => "pong",
            0 => "continuation",
            _ => "op" + op,
        };
    }

    /// <summary>Sends the upgrade request; <paramref name="protocols"/> null sends no Sec-WebSocket-Protocol header.</summary>
    public static async Task<RawWebSocket> ConnectAsync(KubeSimServer server, string pathAndQuery, string? protocols, bool upgrade = true)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
        var tls = new SslStream(tcp.GetStream(), false, (_, cert, _, _) => SimClient.Trusts(server, cert));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost", ApplicationProtocols = [SslApplicationProtocol.Http11] });
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var sb = new StringBuilder();
        sb.Append("GET ").Append(pathAndQuery).Append(" HTTP/1.1\r\nHost: ").Append(server.BaseAddress.Authority).Append("\r\n");
        sb.Append("Authorization: Bearer ").Append(server.AdminToken).Append("\r\n");
        if (upgrade) sb.Append("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ").Append(key).Append("\r\n");
        if (protocols is not null) sb.Append("Sec-WebSocket-Protocol: ").Append(protocols).Append("\r\n");
        sb.Append("\r\n");
        await tls.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));

        using var head = new MemoryStream();
        var buf = new byte[65536];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int end;
        while (true)
        {
            var n = await tls.ReadAsync(buf, cts.Token);
            if (n == 0) throw new IOException("closed during handshake: " + Encoding.ASCII.GetString(head.ToArray()));
            head.Write(buf, 0, n);
            end = head.GetBuffer().AsSpan(0, (int)head.Length).IndexOf("\r\n\r\n"u8);
            if (end >= 0) break;
        }
        var all = head.ToArray();
        var lines = Encoding.ASCII.GetString(all, 0, end).Split("\r\n");
        var headers = lines.Skip(1).Select(l => (l[..l.IndexOf(':', StringComparison.Ordinal)], l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())).ToList();
        return new RawWebSocket(tcp, tls, all[(end + 4)..], lines[0], headers);
    }

    /// <summary>Reads the rest of a non-101 response body (Content-Length framed).</summary>
    public async Task<string> ReadBodyAsync()
    {
        var length = int.Parse(Header("Content-Length") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        await FillAsync(length);
        var text = Encoding.UTF8.GetString(_pending, 0, length);
        return text;
    }

    public async Task<Frame?> ReadFrameAsync()
    {
        if (!await FillAsync(2)) return null;
        var b0 = _pending[0];
        var b1 = _pending[1];
        var len = (long)(b1 & 0x7F);
        var header = 2;
        if (len == 126)
        {
            await FillAsync(4);
            len = BinaryPrimitives.ReadUInt16BigEndian(_pending.AsSpan(2));
            header = 4;
        }
        else if (len == 127)
        {
            await FillAsync(10);
            len = (long)BinaryPrimitives.ReadUInt64BigEndian(_pending.AsSpan(2));
            header = 10;
        }
        if ((b1 & 0x80) != 0) throw new InvalidDataException("server frames must not be masked");
        var total = header + (int)len;
        await FillAsync(total);
        var wire = _pending.AsSpan(0, total).ToArray();
        var payload = wire[header..];
        Array.Copy(_pending, total, _pending, 0, _pendingCount - total);
        _pendingCount -= total;
        return new Frame((b0 & 0x80) != 0, b0 & 0x0F, payload, wire);
    }

    private async Task<bool> FillAsync(int count)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (_pendingCount < count)
        {
            var n = await _tls.ReadAsync(_pending.AsMemory(_pendingCount), cts.Token);
            if (n == 0) return false;
            _pendingCount += n;
        }
        return true;
    }

    public async Task SendFrameAsync(int opcode, byte[] payload)
    {
        var mask = RandomNumberGenerator.GetBytes(4);
        using var ms = new MemoryStream();
        ms.WriteByte((byte)(0x80 | opcode));
        if (payload.Length < 126)
        {
            ms.WriteByte((byte)(0x80 | payload.Length));
        }
        else if (payload.Length <= 0xFFFF)
        {
            ms.WriteByte(0x80 | 126);
            ms.WriteByte((byte)(payload.Length >> 8));
            ms.WriteByte((byte)payload.Length);
        }
        else
        {
            ms.WriteByte(0x80 | 127);
            var l = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(l, (ulong)payload.Length);
            ms.Write(l);
        }
        ms.Write(mask);
        for (var i = 0; i < payload.Length; i++) ms.WriteByte((byte)(payload[i] ^ mask[i % 4]));
        await _tls.WriteAsync(ms.ToArray());
        await _tls.FlushAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _tls.DisposeAsync();
        _tcp.Dispose();
    }
}
