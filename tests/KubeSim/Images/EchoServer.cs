using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// `KtConnect.KubeSim echo --name POD [--namespace NS] --port N [--port M ...]`: the process behind
/// every application image. Each HTTP/1.1 request gets 200 with a text body naming the pod, the port,
/// the request line and every request header as received, one per line; keep-alive is honoured. It is
/// a test double, so it is deliberately simple: one task per connection, heads up to 64 KiB.
/// </summary>
public static class EchoServer
{
    private const int MaxHead = 64 * 1024;

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        string? name = null;
        var ns = "default";
        var ports = new List<int>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--name": name = args[i + 1]; break;
                case "--namespace": ns = args[i + 1]; break;
                case "--port" when int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var p) && p is > 0 and < 65536: ports.Add(p); break;
                default:
                    await Console.Error.WriteLineAsync("echo: unknown argument " + args[i]).ConfigureAwait(false);
                    return 2;
            }
        }
        if (name is null || ports.Count == 0 || args.Length % 2 != 0)
        {
            await Console.Error.WriteLineAsync("usage: echo --name POD [--namespace NS] --port N [--port M ...]").ConfigureAwait(false);
            return 2;
        }

        var listeners = new List<Socket>();
        try
        {
            foreach (var port in ports)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listeners.Add(s);
                s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                s.Bind(new IPEndPoint(IPAddress.Any, port));
                s.Listen(512);
            }
            await Console.Out.WriteLineAsync($"echo {ns}/{name} listening on {string.Join(", ", ports)}").ConfigureAwait(false);
            await Task.WhenAll(listeners.Select((l, i) => AcceptLoopAsync(l, name, ns, ports[i], cancellationToken))).ConfigureAwait(false);
            return 0;
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        finally
        {
            foreach (var l in listeners) l.Dispose();
        }
    }

    private static async Task AcceptLoopAsync(Socket listener, string pod, string ns, int port, CancellationToken cancellationToken)
    {
        var connections = new List<Task>();
        while (!cancellationToken.IsCancellationRequested)
        {
            var client = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            // Head and body go out in two writes: without NODELAY, Nagle holds the body until the client's delayed ACK
            // (40 ms), which would make every keep-alive request look slow.
            client.NoDelay = true;
            connections.RemoveAll(t => t.IsCompleted);
            connections.Add(ServeAsync(client, pod, ns, port, cancellationToken));
        }
    }

    private static async Task ServeAsync(Socket client, string pod, string ns, int port, CancellationToken cancellationToken)
    {
        using var owned = client;
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var buffer = new byte[MaxHead];
        var filled = 0;
        try
        {
            while (true)
            {
                int headEnd;
                while ((headEnd = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
                {
                    if (filled == buffer.Length) return;
                    var n = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                    if (n == 0) return;
                    filled += n;
                }
                var head = Encoding.Latin1.GetString(buffer, 0, headEnd);
                var lines = head.Split("\r\n");
                long contentLength = 0;
                var expectContinue = false;
                var close = lines[0].EndsWith("HTTP/1.0", StringComparison.Ordinal);
                foreach (var line in lines.Skip(1))
                {
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    if (colon <= 0) continue;
                    var key = line[..colon].Trim();
                    var value = line[(colon + 1)..].Trim();
                    if (key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) _ = long.TryParse(value, CultureInfo.InvariantCulture, out contentLength);
                    if (key.Equals("Expect", StringComparison.OrdinalIgnoreCase) && value.Equals("100-continue", StringComparison.OrdinalIgnoreCase))
                        expectContinue = true;
                    if (key.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                        close = value.Equals("close", StringComparison.OrdinalIgnoreCase) || (close && !value.Equals("keep-alive", StringComparison.OrdinalIgnoreCase));
                }

                if (expectContinue && contentLength > 0) await stream.WriteAsync("HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);

                // Drop the body: what is already buffered first, then the rest from the stream.
                var consumed = headEnd + 4;
                var inBuffer = (int)Math.Min(contentLength, filled - consumed);
                consumed += inBuffer;
                var remaining = contentLength - inBuffer;
                Buffer.BlockCopy(buffer, consumed, buffer, 0, filled - consumed);
                filled -= consumed;
                while (remaining > 0)
                {
                    var n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), cancellationToken).ConfigureAwait(false);
                    if (n == 0) return;
                    remaining -= n;
                }

                var body = new StringBuilder()
                    .Append("pod: ").Append(pod).Append('\n')
                    .Append("namespace: ").Append(ns).Append('\n')
                    .Append("port: ").Append(port.ToString(CultureInfo.InvariantCulture)).Append('\n')
                    .Append("request: ").Append(lines[0]).Append('\n');
                foreach (var line in lines.Skip(1)) body.Append("header: ").Append(line).Append('\n');
                var bodyBytes = Encoding.UTF8.GetBytes(body.ToString());
                var response = Encoding.ASCII.GetBytes(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n" +
                    $"Content-Length: {bodyBytes.Length.ToString(CultureInfo.InvariantCulture)}\r\nX-Pod-Name: {pod}\r\n" +
                    (close ? "Connection: close\r\n" : "") + "\r\n");
                await stream.WriteAsync(response, cancellationToken).ConfigureAwait(false);
                await stream.WriteAsync(bodyBytes, cancellationToken).ConfigureAwait(false);
                if (close) return;
            }
        }
        catch (IOException)
        {
        }
        catch (SocketException)
        {
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The process entry: runs until SIGTERM/SIGINT.</summary>
    public static int RunMain(string[] args)
    {
        using var cts = new CancellationTokenSource();
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            cts.Cancel();
        });
        return RunAsync(args, cts.Token).GetAwaiter().GetResult();
    }
}
