using System.Buffers.Binary;
using System.Text;

namespace KtConnect.Engine.Cluster;

/// <summary>One sshd host public key as read from the shadow: algorithm name and the base64 key blob.</summary>
public sealed record ShadowHostKey(string Algorithm, string Base64Key)
{
    /// <summary>The decoded SSH wire blob (string algorithm, then key fields).</summary>
    public byte[] Blob() => Convert.FromBase64String(Base64Key);
}

/// <summary>Parses OpenSSH <c>.pub</c> lines (<c>algorithm base64 [comment]</c>) into <see cref="ShadowHostKey"/>s.</summary>
public static class HostKeyParser
{
    /// <summary>The files the shadow image's sshd uses (kt-connect's HostKeyAlgorithms prefer ECDSA, then RSA).</summary>
    public static readonly IReadOnlyList<string> ShadowHostKeyFiles = ["/etc/ssh/ssh_host_ecdsa_key.pub", "/etc/ssh/ssh_host_rsa_key.pub"];

    /// <summary>
    /// Every non-empty, non-comment line must be <c>algorithm base64 [comment]</c> whose blob starts with the same algorithm
    /// name; anything else throws <see cref="ShadowPodException"/> (<see cref="ShadowPodErrors.HostKeyInvalid"/>).
    /// </summary>
    public static IReadOnlyList<ShadowHostKey> Parse(string text, string podName = "")
    {
        ArgumentNullException.ThrowIfNull(text);
        var keys = new List<ShadowHostKey>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var fields = line.Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 2) throw Invalid(podName, line, "expected '<algorithm> <base64>'");
            var algorithm = fields[0];
            byte[] blob;
            try
            {
                blob = Convert.FromBase64String(fields[1]);
            }
            catch (FormatException)
            {
                throw Invalid(podName, line, "the key is not base64");
            }
            if (blob.Length < 4) throw Invalid(podName, line, "the key blob is too short");
            var nameLength = BinaryPrimitives.ReadUInt32BigEndian(blob);
            if (nameLength > (uint)(blob.Length - 4)) throw Invalid(podName, line, "the key blob's algorithm name runs past its end");
            var embedded = Encoding.ASCII.GetString(blob, 4, (int)nameLength);
            if (!string.Equals(embedded, algorithm, StringComparison.Ordinal))
            {
                throw Invalid(podName, line, $"the line says '{algorithm}' but the key is '{embedded}'");
            }
            keys.Add(new ShadowHostKey(algorithm, fields[1]));
        }
        return keys;
    }

    private static ShadowPodException Invalid(string pod, string line, string detail) =>
        new(ShadowPodErrors.HostKeyInvalid, KtErrorCategory.InvalidData,
            $"The shadow pod '{pod}' returned a host key line that cannot be read ({detail}): '{Shorten(line)}'.", pod);

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..80] + "...";
}
