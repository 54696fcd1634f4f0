using System.Text;
using KtConnect.KubeSim.Node;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// kt-connect's router image: nginx with the image's nginx.conf, an http block that includes
/// /etc/nginx/conf.d/*.conf and nothing in conf.d, so it serves nothing until routes are written (as
/// the real image). A volume mounted at /etc/nginx with an nginx.conf replaces the default. The pod's
/// /etc/nginx is its own (an /etc overlay, see <see cref="PodPaths"/>): exec'd commands see it at the
/// real path, the host reaches it at <c>HostPath("/etc/nginx/conf.d/route.conf")</c>; a reload is
/// SIGHUP to the pod's process, as the router binary does to PID 1. Ready once nginx has
/// written its pid file (the router pod has no readiness probe). The image's <see cref="RouterPath"/> is
/// <see cref="RouterCommand"/>: an exec of it runs this assembly's <c>router</c> mode in the pod, with the
/// container's /etc/kt.conf and /var/kt.lock (stored under the pod directory, see <see cref="PodPaths"/>)
/// and this nginx's prefix, config, error log and pid file.
/// </summary>
public sealed class RouterNginxLauncher : IImageLauncher
{
    public string Name => "nginx";

    /// <summary>The router binary's path in the image.</summary>
    public const string RouterPath = "/usr/sbin/router";

    public async Task<PodCommand> PrepareAsync(PodLaunchContext context, CancellationToken cancellationToken)
    {
        var prefix = Path.Combine(context.PodDirectory, "nginx");
        foreach (var d in new[] { "client_body", "proxy", "fastcgi", "uwsgi", "scgi", "logs" })
            Directory.CreateDirectory(Path.Combine(prefix, d));
        Directory.CreateDirectory(context.HostPath("/etc/nginx/conf.d"));
        var pidFile = Path.Combine(prefix, "nginx.pid");
        var config = context.HostPath("/etc/nginx/nginx.conf");
        if (!File.Exists(config))
            await File.WriteAllTextAsync(config, DefaultConfig(prefix, context.SeenAs("/etc/nginx/conf.d")), cancellationToken).ConfigureAwait(false);
        var errorLog = Path.Combine(prefix, "logs", "error.log");
        // The Dockerfile's `touch /var/kt.lock`.
        var lockFile = context.HostPath("/var/kt.lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        await File.WriteAllBytesAsync(lockFile, [], cancellationToken).ConfigureAwait(false);
        IReadOnlyList<string> router =
        [
            .. EchoLauncher.KubeSimCommand(), "router",
            "--state", context.SeenAs("/etc/kt.conf"),
            "--lock", context.SeenAs("/var/kt.lock"),
            "--route", context.SeenAs("/etc/nginx/conf.d/route.conf"),
            "--nginx-prefix", prefix + "/",
            "--nginx-conf", context.SeenAs("/etc/nginx/nginx.conf"),
            "--nginx-error-log", errorLog,
            "--nginx-pid", pidFile,
            "--",
        ];
        return new PodCommand(
            ["nginx", "-p", prefix + "/", "-e", errorLog, "-c", context.SeenAs("/etc/nginx/nginx.conf"), "-g", "daemon off; pid " + pidFile + ";"],
            new Dictionary<string, string>(), [], pidFile,
            new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal) { [RouterPath] = router });
    }

    /// <summary>The image's nginx.conf; the pid file is given on the command line so a mounted config gets it too.</summary>
    public static string DefaultConfig(string prefix, string confD)
    {
        var b = new StringBuilder();
        b.Append("# kt-connect router image nginx.conf (KubeSim)\n");
        b.Append("user root;\nworker_processes 1;\n");
        b.Append("events { worker_connections 512; }\n");
        b.Append("http {\n");
        b.Append("    access_log off;\n");
        b.Append("    client_body_temp_path ").Append(prefix).Append("/client_body;\n");
        b.Append("    proxy_temp_path ").Append(prefix).Append("/proxy;\n");
        b.Append("    fastcgi_temp_path ").Append(prefix).Append("/fastcgi;\n");
        b.Append("    uwsgi_temp_path ").Append(prefix).Append("/uwsgi;\n");
        b.Append("    scgi_temp_path ").Append(prefix).Append("/scgi;\n");
        b.Append("    include ").Append(confD).Append("/*.conf;\n");
        b.Append("}\n");
        return b.ToString();
    }
}
