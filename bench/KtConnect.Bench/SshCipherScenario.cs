using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using KtConnect.Engine.Ssh;

namespace KtConnect.Bench;

/// <summary>
/// The SSH packet ciphers alone, on 32 KiB packets (the size sshd sends a forward's data in): each packet is sealed
/// by one of our ciphers and opened by its pair, and the figure is MiB per second of one direction. The peer is
/// OpenSSL's own measurement (<c>openssl speed</c>) of the same primitives on 32 KiB blocks: the library OpenSSH
/// calls. For CTR + HMAC the two OpenSSL rates are combined as one pass of each over the same bytes.
/// </summary>
public sealed class SshCipherScenario : IScenario
{
    private const int PacketBytes = 32 * 1024;

    public string Name => "ssh-cipher";

    public string Description => "one direction of aes256-ctr + hmac-sha2-256 and aes128-gcm on 32 KiB packets: ours vs openssl speed";

    public async Task RunAsync(BenchContext context, CancellationToken cancellationToken)
    {
        await context.CompareAsync(Name, "aes256-ctr-hmac-sha2-256", "MiB/s", true,
            _ => Task.FromResult(Ours(SshAlgorithms.Aes256Ctr, SshAlgorithms.HmacSha256)),
            "openssl speed (aes-256-ctr, hmac sha256)",
            async ct => Combined(await OpenSslAsync(ct, "-evp", "aes-256-ctr"), await OpenSslAsync(ct, "-hmac", "sha256")),
            cancellationToken);
        await context.CompareAsync(Name, "aes128-gcm", "MiB/s", true,
            _ => Task.FromResult(Ours(SshAlgorithms.Aes128Gcm, null)),
            "openssl speed (aes-128-gcm)",
            ct => OpenSslAsync(ct, "-evp", "aes-128-gcm"),
            cancellationToken);
    }

    /// <summary>Seals and opens 512 MiB of packets; returns MiB/s of one direction.</summary>
    private static double Ours(string cipher, string? mac)
    {
        var key = RandomNumberGenerator.GetBytes(SshAlgorithms.KeySize(cipher));
        var iv = RandomNumberGenerator.GetBytes(SshAlgorithms.IvSize(cipher));
        var macKey = mac is null ? [] : RandomNumberGenerator.GetBytes(SshAlgorithms.MacKeySize(mac));
        using var seal = SshAlgorithms.CreateCipher(cipher, mac, key, iv, macKey);
        using var open = SshAlgorithms.CreateCipher(cipher, mac, key, iv, macKey);
        var bodyLength = PacketBytes - (seal.LengthInClear ? 0 : 4);
        var packet = new byte[4 + bodyLength];
        var tag = new byte[seal.MacSize];
        const int Packets = 512 * 1024 * 1024 / PacketBytes;
        var sw = Stopwatch.StartNew();
        for (uint seq = 0; seq < Packets; seq++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)bodyLength);
            seal.Encrypt(seq, packet, tag);
            open.DecryptLength(seq, packet.AsSpan(0, open.FirstBlockSize));
            if (!open.DecryptRest(seq, packet, tag)) throw new InvalidOperationException("a sealed packet failed to open");
        }
        // Both directions ran over every byte: one direction's rate is twice the pair's.
        return 2.0 * Packets * PacketBytes / 1048576.0 / sw.Elapsed.TotalSeconds;
    }

    /// <summary>One pass of each primitive over the same bytes.</summary>
    private static double Combined(double a, double b) => 1.0 / (1.0 / a + 1.0 / b);

    /// <summary>Runs <c>openssl speed</c> for one second on 32 KiB blocks; returns MiB/s.</summary>
    private static async Task<double> OpenSslAsync(CancellationToken ct, params string[] algorithm)
    {
        var psi = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["speed", "-elapsed", "-seconds", "1", "-bytes", PacketBytes.ToString(CultureInfo.InvariantCulture), .. algorithm])
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start openssl");
        var output = await p.StandardOutput.ReadToEndAsync(ct).ConfigureAwait(false);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        // The last line is "<name>  <thousands of bytes per second>k".
        var last = output.TrimEnd().Split('\n')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1];
        if (p.ExitCode != 0 || !last.EndsWith('k'))
            throw new InvalidOperationException($"openssl speed {string.Join(' ', algorithm)} printed no rate: {output}");
        return double.Parse(last.TrimEnd('k'), CultureInfo.InvariantCulture) * 1000 / 1048576.0;
    }
}
