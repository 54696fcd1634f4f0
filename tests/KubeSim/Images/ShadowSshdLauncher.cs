using System.Text;
using KtConnect.Engine;
using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// kt-connect's shadow image: OpenSSH sshd as root with the public key from the ConfigMap mounted at
/// /root/authorized (its run.sh copies it to /root/.ssh/authorized_keys; here the copy goes to the pod's
/// own directory and sshd_config points AuthorizedKeysFile at it), GatewayPorts yes and the image's
/// restricted algorithms. Host keys (ECDSA, RSA) are generated once per node, shared by its pods and
/// visible in each shadow pod at /etc/ssh/ssh_host_*_key(.pub) with the sshd_config.
/// Differences from the image, because the pod shares the host's filesystem: UsePAM no (no PAM session
/// in a bare namespace), StrictModes no (the state directory may sit under /tmp), the shadow DNS server
/// (KT_DNS_PROTOCOL) is not started.
/// </summary>
public sealed class ShadowSshdLauncher : IImageLauncher
{
    public const string AuthorizedMountPath = "/root/authorized";
    private readonly SemaphoreSlim _hostKeyLock = new(1, 1);

    public string Name => "sshd";

    public async Task<PodCommand> PrepareAsync(PodLaunchContext context, CancellationToken cancellationToken)
    {
        var keyDir = Path.Combine(context.SharedDirectory, "ssh");
        var ecdsa = Path.Combine(keyDir, "ssh_host_ecdsa_key");
        var rsa = Path.Combine(keyDir, "ssh_host_rsa_key");
        await _hostKeyLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Directory.CreateDirectory(keyDir);
            await EnsureHostKeyAsync(ecdsa, ["-t", "ecdsa", "-b", "256"], cancellationToken).ConfigureAwait(false);
            await EnsureHostKeyAsync(rsa, ["-t", "rsa", "-b", "2048"], cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _hostKeyLock.Release();
        }

        // sshd's privilege separation directory; the image creates it at build time.
        if (OperatingSystem.IsLinux() && !Directory.Exists("/run/sshd")) Directory.CreateDirectory("/run/sshd", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        // run.sh: cp /root/authorized/authorized_keys /root/.ssh/authorized_keys (the ConfigMap key is
        // "authorized"; kt-connect mounts it under that name, some callers map it to authorized_keys).
        var authorizedKeys = context.HostPath("/root/.ssh/authorized_keys");
        Directory.CreateDirectory(Path.GetDirectoryName(authorizedKeys)!);
        var source = new[] { "authorized_keys", "authorized" }
            .Select(f => context.HostPath(AuthorizedMountPath + "/" + f)).FirstOrDefault(File.Exists);
        if (source is not null) File.Copy(source, authorizedKeys, overwrite: true);
        else await File.WriteAllTextAsync(authorizedKeys, "", cancellationToken).ConfigureAwait(false);
        if (OperatingSystem.IsLinux()) File.SetUnixFileMode(authorizedKeys, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        // run.sh: privateKey env (base64) → /root/.ssh/id_rsa.
        if (context.Spec.Env.TryGetValue("privateKey", out var privateKey) && privateKey.Length > 0)
        {
            var idRsa = context.HostPath("/root/.ssh/id_rsa");
            await File.WriteAllBytesAsync(idRsa, Convert.FromBase64String(privateKey), cancellationToken).ConfigureAwait(false);
            if (OperatingSystem.IsLinux()) File.SetUnixFileMode(idRsa, UnixFileMode.UserRead);
        }

        // The pod's /etc/ssh (an /etc overlay: exec `cat /etc/ssh/ssh_host_ecdsa_key.pub` shows the key
        // sshd presents, which is how a client can pin it through the API).
        var config = context.HostPath("/etc/ssh/sshd_config");
        Directory.CreateDirectory(Path.GetDirectoryName(config)!);
        var hostKeys = new List<string>();
        foreach (var key in new[] { ecdsa, rsa })
        {
            var name = "/etc/ssh/" + Path.GetFileName(key);
            File.Copy(key, context.HostPath(name), overwrite: true);
            File.Copy(key + ".pub", context.HostPath(name + ".pub"), overwrite: true);
            if (OperatingSystem.IsLinux()) File.SetUnixFileMode(context.HostPath(name), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            hostKeys.Add(context.SeenAs(name));
        }
        await File.WriteAllTextAsync(config, SshdConfig(hostKeys, authorizedKeys, Path.Combine(context.PodDirectory, "sshd.pid")),
            cancellationToken).ConfigureAwait(false);

        var sshd = File.Exists("/usr/sbin/sshd") ? "/usr/sbin/sshd" : "sshd";
        return new PodCommand([sshd, "-D", "-e", "-f", context.SeenAs("/etc/ssh/sshd_config")], new Dictionary<string, string>(), [22]);
    }

    /// <summary>The shadow image's sshd_config, with paths pointing into the pod directory.</summary>
    public static string SshdConfig(IEnumerable<string> hostKeys, string authorizedKeysFile, string pidFile)
    {
        var b = new StringBuilder();
        b.Append("# kt-connect shadow image sshd_config (KubeSim)\n");
        b.Append("Port 22\n");
        foreach (var k in hostKeys) b.Append("HostKey ").Append(k).Append('\n');
        b.Append("PidFile ").Append(pidFile).Append('\n');
        b.Append("PermitRootLogin yes\n");
        b.Append("PubkeyAuthentication yes\n");
        b.Append("AuthorizedKeysFile ").Append(authorizedKeysFile).Append('\n');
        b.Append("KbdInteractiveAuthentication no\n");
        b.Append("UsePAM no\n");
        b.Append("StrictModes no\n");
        b.Append("GatewayPorts yes\n");
        b.Append("X11Forwarding yes\n");
        b.Append("TCPKeepAlive yes\n");
        b.Append("PrintMotd no\n");
        b.Append("Ciphers aes128-ctr,aes192-ctr,aes256-ctr\n");
        b.Append("HostKeyAlgorithms ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,ssh-rsa,ssh-dss\n");
        b.Append("KexAlgorithms ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group14-sha1,")
            .Append("diffie-hellman-group-exchange-sha256,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1\n");
        b.Append("MACs hmac-sha2-256,hmac-sha2-512,hmac-sha1\n");
        b.Append("Subsystem sftp internal-sftp\n");
        return b.ToString();
    }

    private static async Task EnsureHostKeyAsync(string path, string[] type, CancellationToken cancellationToken)
    {
        if (File.Exists(path)) return;
        (await ProcessRunner.RunAsync("ssh-keygen", ["-q", "-N", "", .. type, "-f", path], cancellationToken: cancellationToken)
            .ConfigureAwait(false)).EnsureSuccess("SimHostKeyFailed");
    }
}
