using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using KtConnect.KubeSim.Api;

namespace KtConnect.Tests.Unit.KubeSim;

/// <summary>
/// HTTP/1.1 over TLS by hand, so tests see what HttpClient hides: the status line, headers in wire order,
/// Content-Length vs chunked framing and every chunk.
/// </summary>
internal sealed record RawResponse(string StatusLine, int Status, List<(string Name, string Value)> Headers, byte[] Body, List<byte[]>? Chunks)
{
    public string? Header(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    public string BodyText => Encoding.UTF8.GetString(Body);

    public static async Task<RawResponse> SendAsync(KubeSimServer server, string method, string pathAndQuery, string? token,
        IEnumerable<(string, string)>? headers = null, byte[]? body = null)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
        await using var tls = new SslStream(tcp.GetStream(), false, (_, cert, _, _) => SimClient.Trusts(server, cert));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = [SslApplicationProtocol.Http11],
        });
        var sb = new StringBuilder();
        sb.Append(method).Append(' ').Append(pathAndQuery).Append(" HTTP/1.1\r\n");
        sb.Append("Host: ").Append(server.BaseAddress.Authority).Append("\r\n");
        sb.Append("User-Agent: kubesim-fidelity/1.0\r\nAccept: application/json\r\n");
        if (token is not null) sb.Append("Authorization: Bearer ").Append(token).Append("\r\n");
        var hasConnection = false;
        foreach (var (n, v) in headers ?? [])
        {
            sb.Append(n).Append(": ").Append(v).Append("\r\n");
            hasConnection |= n.Equals("Connection", StringComparison.OrdinalIgnoreCase);
        }
        if (!hasConnection) sb.Append("Connection: close\r\n");
        if (body is not null) sb.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        sb.Append("\r\n");
        await tls.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));
        if (body is not null) await tls.WriteAsync(body);
        await tls.FlushAsync();

        using var all = new MemoryStream();
        var buffer = new byte[65536];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var headerEnd = -1;
        while (true)
        {
            int n;
            try
            {
                n = await tls.ReadAsync(buffer, cts.Token);
            }
            catch (IOException)
            {
                break;
            }
            if (n == 0) break;
            all.Write(buffer, 0, n);
            var bytes = all.GetBuffer().AsSpan(0, (int)all.Length);
            if (headerEnd < 0) headerEnd = bytes.IndexOf("\r\n\r\n"u8);
            if (headerEnd >= 0 && IsComplete(bytes, headerEnd)) break;
        }
        return Parse(all.ToArray());
    }

    private static bool IsComplete(ReadOnlySpan<byte> bytes, int headerEnd)
    {
        var head = Encoding.ASCII.GetString(bytes[..headerEnd]);
        var body = bytes[(headerEnd + 4)..];
        if (head.StartsWith("HTTP/1.1 101", StringComparison.Ordinal)) return true;
        foreach (var line in head.Split("\r\n"))
        {
            if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            {
                return body.Length >= int.Parse(line[15..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return head.Contains("chunked", StringComparison.OrdinalIgnoreCase) && body.EndsWith("0\r\n\r\n"u8);
    }

    private static RawResponse Parse(byte[] raw)
    {
        var headerEnd = raw.AsSpan().IndexOf("\r\n\r\n"u8);
        var head = Encoding.ASCII.GetString(raw, 0, headerEnd).Split("\r\n");
        var headers = head.Skip(1).Select(l => (l[..l.IndexOf(':', StringComparison.Ordinal)], l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())).ToList();
        var body = raw.AsSpan(headerEnd + 4).ToArray();
        var status = int.Parse(head[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        List<byte[]>? chunks = null;
        if (headers.Any(h => h.Item1.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) && h.Item2 == "chunked"))
        {
            chunks = [];
            using var joined = new MemoryStream();
            var i = 0;
            while (i < body.Length)
            {
                var lineEnd = body.AsSpan(i).IndexOf("\r\n"u8) + i;
                var size = Convert.ToInt32(Encoding.ASCII.GetString(body, i, lineEnd - i), 16);
                i = lineEnd + 2;
                if (size == 0) break;
                chunks.Add(body.AsSpan(i, size).ToArray());
                joined.Write(body, i, size);
                i += size + 2;
            }
            body = joined.ToArray();
        }
        return new RawResponse(head[0], status, headers, body, chunks);
    }
}
