using System.Net;
using System.Security.Cryptography;
using System.Text;
using KtConnect.Engine.Net;

namespace KtConnect.Tests.Integration.Net;

/// <summary>
/// The kernel as the fragmenting peer: a UDP datagram larger than the tun's MTU (1500), sent from the laptop
/// namespace to the DNS handler's address, arrives as IPv4 or IPv6 fragments; the stack must reassemble it and
/// hand the whole datagram to the handler.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class FragmentIntegrationTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    private const string Script = """
import socket, sys, hashlib
host = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((host, 53))
data = bytes((i * 7 + 3) & 255 for i in range(int(sys.argv[2])))
s.send(data)
try:
    print(s.recv(200).decode())
except socket.timeout:
    print('TIMEOUT')
print(hashlib.sha256(data).hexdigest())
""";

    private sealed class DigestHandler : IUdpDatagramHandler
    {
        public bool Serves(IPEndPoint destination) => destination.Port == 53;

        public ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> datagram, IPEndPoint client, IPEndPoint destination,
            CancellationToken cancellationToken) =>
            ValueTask.FromResult<ReadOnlyMemory<byte>>(Encoding.ASCII.GetBytes(
                $"{datagram.Length} {Convert.ToHexStringLower(SHA256.HashData(datagram.Span))}"));
    }

    [LinuxRootTheory("python3")]
    [InlineData("10.96.0.53")]
    [InlineData("fd00:96::53")]
    public async Task ADatagramLargerThanTheMtu_ArrivesInFragments_AndIsReassembledForTheHandler(string address)
    {
        await using var lab = await TunLab.CreateAsync(new DigestHandler(), mtu: 1500);
        var r = await lab.Laptop.RunAsync(["python3", "-c", Script, address, "4000"], timeout: Long);
        var lines = r.StandardOutput.Trim().Split('\n');
        Assert.True(lines.Length == 2, r.StandardOutput + r.StandardError);
        Assert.Equal($"4000 {lines[1].Trim()}", lines[0].Trim());
        Assert.True(lab.Stack.Counters.Fragments >= 3, lab.Stack.Counters.ToString());
        Assert.Equal(1, lab.Stack.Counters.FragmentsReassembled);
    }
}
