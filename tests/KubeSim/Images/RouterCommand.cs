using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Images;

/// <summary>
/// kt-connect's router binary (<c>/usr/sbin/router</c> in the router image), written from its described behaviour.
/// In a router pod an exec of <c>/usr/sbin/router</c> runs <c>KtConnect.KubeSim router &lt;paths&gt; -- &lt;argv&gt;</c> in the
/// pod (see <see cref="RouterNginxLauncher"/>), where argv is
/// <list type="bullet">
/// <item><c>setup &lt;service&gt; &lt;svcPort:targetPort,...&gt; &lt;header:version&gt;</c>: a fresh state with that one version;</item>
/// <item><c>add &lt;header:version&gt;</c>: adds a version; fails if the header is not the one set up;</item>
/// <item><c>remove &lt;header:version&gt;</c>: drops a version; with none left route.conf is deleted.</item>
/// </list>
/// Each run holds the file lock /var/kt.lock, keeps its state in /etc/kt.conf as JSON
/// (<c>{"Service":..,"Ports":[["80","8080"]],"Header":"version","Versions":["v1"]}</c>, '-' of the header as '_'),
/// renders /etc/nginx/conf.d/route.conf, checks it with <c>nginx -t</c>, sends SIGHUP to nginx (the container's
/// main process) and returns 0 once new workers serve the new config. Any failure is exit 1 with the reason
/// (nginx's own error for a rejected config or a failed reload) on stderr, and the previous route.conf and
/// state are put back, so what is on disk is what nginx serves; a bad command line is exit 2.
/// </summary>
public static partial class RouterCommand
{
    public const int Failed = 1;
    public const int Usage = 2;

    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The router's state file, as the real binary writes it.</summary>
    public sealed class RouterState
    {
        public string Service { get; set; } = "";

        public List<string[]> Ports { get; set; } = [];

        public string Header { get; set; } = "";

        public List<string> Versions { get; set; } = [];
    }

    /// <summary>Where the router finds its files and its nginx; paths as the pod's process sees them.</summary>
    public sealed record RouterPaths(string State, string Lock, string Route, string NginxPrefix, string NginxConf, string NginxErrorLog, string NginxPid);

    public static int RunMain(string[] args)
    {
        var split = Array.IndexOf(args, "--");
        if (split < 0 || !TryParsePaths(args[..split], out var paths))
        {
            Console.Error.WriteLine("usage: router --state F --lock F --route F --nginx-prefix D --nginx-conf F --nginx-error-log F --nginx-pid F -- setup|add|remove ...");
            return Usage;
        }
        try
        {
            return Run(paths, args[(split + 1)..], Console.Out, Console.Error);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            Console.Error.WriteLine("router: " + e.Message);
            return Failed;
        }
    }

    public static int Run(RouterPaths paths, string[] argv, TextWriter stdout, TextWriter stderr)
    {
        // The command line first: a wrong one touches nothing.
        string? service = null;
        List<string[]>? ports = null;
        (string Header, string Version) mark;
        switch (argv)
        {
            case ["setup", var svc, var portSpec, var m] when TryParsePorts(portSpec, out var p) && TryParseMark(m, out mark) && IsServiceName(svc):
                service = svc;
                ports = p;
                break;
            case ["add" or "remove", var m] when TryParseMark(m, out mark):
                break;
            default:
                stderr.WriteLine("usage: router setup <service> <svcPort:targetPort,...> <header:version> | router add <header:version> | router remove <header:version>");
                return Usage;
        }

        using var lockFile = AcquireLock(paths.Lock);
        var before = File.Exists(paths.State) ? File.ReadAllText(paths.State) : null;
        RouterState state;
        if (argv[0] == "setup")
        {
            state = new RouterState { Service = service!, Ports = ports!, Header = mark.Header, Versions = [mark.Version] };
        }
        else
        {
            state = before is null ? null! : JsonSerializer.Deserialize<RouterState>(before)!;
            if (state is null || state.Service.Length == 0)
            {
                stderr.WriteLine($"router: not set up ({paths.State} has no route), run 'router setup' first");
                return Failed;
            }
            if (state.Header != mark.Header)
            {
                stderr.WriteLine($"router: header '{mark.Header}' differs from '{state.Header}' that this router routes by");
                return Failed;
            }
            if (argv[0] == "add" && !state.Versions.Contains(mark.Version)) state.Versions.Add(mark.Version);
            if (argv[0] == "remove") state.Versions.Remove(mark.Version);
        }

        var oldRoute = File.Exists(paths.Route) ? File.ReadAllText(paths.Route) : null;
        var newRoute = state.Versions.Count == 0 ? null : RenderRoute(state);
        Write(paths.Route, newRoute);
        Write(paths.State, JsonSerializer.Serialize(state));
        var error = CheckConfig(paths) ?? Reload(paths);
        if (error is not null)
        {
            Write(paths.Route, oldRoute);
            Write(paths.State, before);
            stderr.WriteLine(error.TrimEnd());
            return Failed;
        }
        stdout.WriteLine(newRoute is null
            ? $"route of {state.Service} removed, all requests go to {state.Service}-kt-stuntman"
            : $"{state.Service} routed by header '{state.Header}': {string.Join(", ", state.Versions)}");
        return 0;
    }

    /// <summary>route.conf for <paramref name="state"/>: per port the stuntman upstream and one per version, a server on the target port.</summary>
    public static string RenderRoute(RouterState state)
    {
        var b = new StringBuilder();
        var svc = state.Service;
        foreach (var port in state.Ports)
        {
            var (svcPort, targetPort) = (port[0], port[1]);
            foreach (var ver in state.Versions)
            {
                b.Append("upstream ").Append(svc).Append("-kt-mesh-").Append(ver).Append('-').Append(svcPort).Append(" {\n")
                    .Append("    server ").Append(svc).Append("-kt-mesh-").Append(ver).Append(':').Append(svcPort).Append(";\n}\n");
            }
            b.Append("upstream ").Append(svc).Append("-kt-stuntman-").Append(svcPort).Append(" {\n")
                .Append("    server ").Append(svc).Append("-kt-stuntman:").Append(svcPort).Append(";\n}\n");
            b.Append("server {\n")
                .Append("    listen ").Append(targetPort).Append(";\n")
                .Append("    listen [::]:").Append(targetPort).Append(";\n")
                .Append("    underscores_in_headers on;\n")
                .Append("    error_page 500 502 503 504 /kt-mesh-error;\n")
                .Append("    location = /kt-mesh-error {\n")
                .Append("        internal;\n")
                .Append("        default_type text/plain;\n")
                .Append("        return 200 \"KtConnect mesh error: ").Append(svc).Append(" port ").Append(svcPort).Append(" is not reachable\\n\";\n")
                .Append("    }\n")
                .Append("    location / {\n")
                .Append("        proxy_http_version 1.1;\n");
            foreach (var ver in state.Versions)
            {
                b.Append("        if ($http_").Append(state.Header).Append(" = \"").Append(ver).Append("\") {\n")
                    .Append("            proxy_pass http://").Append(svc).Append("-kt-mesh-").Append(ver).Append('-').Append(svcPort).Append(";\n")
                    .Append("        }\n");
            }
            b.Append("        proxy_pass http://").Append(svc).Append("-kt-stuntman-").Append(svcPort).Append(";\n")
                .Append("    }\n")
                .Append("}\n");
        }
        return b.ToString();
    }

    /// <summary>"80:8080,443:8443" → [["80","8080"],["443","8443"]].</summary>
    public static bool TryParsePorts(string text, out List<string[]> ports)
    {
        ports = [];
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pair = item.Split(':');
            if (pair.Length != 2 || !pair.All(IsPort)) return false;
            ports.Add(pair);
        }
        return ports.Count > 0;

        static bool IsPort(string p) => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < 65536;
    }

    /// <summary>"kt-version:v1" → ("kt_version", "v1"): nginx sees request headers as $http_ with '-' as '_'.</summary>
    public static bool TryParseMark(string text, out (string Header, string Version) mark)
    {
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        mark = colon > 0 && colon < text.Length - 1 ? (text[..colon].Replace('-', '_'), text[(colon + 1)..]) : default;
        return mark.Header is { Length: > 0 } h && h.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')
            && mark.Version.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_');
    }

    // A Service name (DNS-1035 label); it ends up unquoted in route.conf.
    private static bool IsServiceName(string name) =>
        name.Length is > 0 and <= 63 && char.IsAsciiLetterLower(name[0]) && name[^1] != '-'
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');

    private static bool TryParsePaths(string[] args, out RouterPaths paths)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2) map[args[i]] = args[i + 1];
        string Get(string k) => map.TryGetValue(k, out var v) ? v : "";
        paths = new RouterPaths(Get("--state"), Get("--lock"), Get("--route"), Get("--nginx-prefix"), Get("--nginx-conf"), Get("--nginx-error-log"), Get("--nginx-pid"));
        return args.Length % 2 == 0 && new[] { paths.State, paths.Lock, paths.Route, paths.NginxConf, paths.NginxPid }.All(p => p.Length > 0);
    }

    // flock(LOCK_EX) through FileShare.None, waited for as the real binary waits on its lock.
    private static FileStream AcquireLock(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var deadline = DateTime.UtcNow + LockTimeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }
        }
    }

    private static void Write(string path, string? text)
    {
        if (text is null)
        {
            File.Delete(path);
            return;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = path + ".tmp"; // not *.conf: nginx's include never picks it up
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    // `nginx -t` with the main process's prefix, config and error log; null when nginx accepts the config.
    private static string? CheckConfig(RouterPaths paths)
    {
        List<string> args = ["-t", "-q", "-c", paths.NginxConf, "-g", "pid " + paths.NginxPid + ";"];
        if (paths.NginxPrefix.Length > 0) args.InsertRange(0, ["-p", paths.NginxPrefix]);
        if (paths.NginxErrorLog.Length > 0) args.InsertRange(0, ["-e", paths.NginxErrorLog]);
        var r = ProcessRunner.RunAsync("nginx", args, timeout: TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        return r.Succeeded ? null : (r.StandardError + r.StandardOutput).Trim() is { Length: > 0 } text ? text : $"nginx -t failed with exit code {r.ExitCode}";
    }

    // SIGHUP to nginx's master, then wait for the new generation of workers (the old ones shutting down)
    // or for an [emerg] line in its error log (nginx keeps the old config then).
    private static string? Reload(RouterPaths paths)
    {
        if (!File.Exists(paths.NginxPid) || !int.TryParse(File.ReadAllText(paths.NginxPid).Trim(), CultureInfo.InvariantCulture, out var master) || !Alive(master))
            return $"router: nginx is not running (no live pid in {paths.NginxPid})";
        var oldWorkers = Workers(master).ToHashSet();
        var logOffset = paths.NginxErrorLog.Length > 0 && File.Exists(paths.NginxErrorLog) ? new FileInfo(paths.NginxErrorLog).Length : 0;
        if (Kill(master, 1) != 0) return $"router: cannot signal nginx (pid {master}): errno {Marshal.GetLastPInvokeError()}";
        var deadline = DateTime.UtcNow + ReloadTimeout;
        while (DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
            if (NewErrors(paths.NginxErrorLog, logOffset) is not null)
            {
                // The failed attempt may still be going (nginx retries a bind five times, 500 ms apart): the
                // error is whole, and the next run's log offset clean, once the log has been quiet for a second.
                var length = new FileInfo(paths.NginxErrorLog).Length;
                var quietSince = DateTime.UtcNow;
                while (DateTime.UtcNow - quietSince < TimeSpan.FromSeconds(1) && DateTime.UtcNow < deadline + ReloadTimeout)
                {
                    Thread.Sleep(50);
                    var now = new FileInfo(paths.NginxErrorLog).Length;
                    if (now != length) (length, quietSince) = (now, DateTime.UtcNow);
                }
                return "nginx: " + NewErrors(paths.NginxErrorLog, logOffset);
            }
            if (!Alive(master)) return $"router: nginx (pid {master}) exited during the reload";
            var workers = Workers(master);
            var fresh = workers.Where(w => !oldWorkers.Contains(w) && Title(w) == "nginx: worker process").ToList();
            var stillServing = oldWorkers.Where(w => Title(w) == "nginx: worker process").ToList();
            if (fresh.Count > 0 && stillServing.Count == 0)
            {
                // Old workers close their listeners right after changing their title; let them finish that.
                var settle = DateTime.UtcNow.AddSeconds(1);
                while (DateTime.UtcNow < settle && oldWorkers.Any(Alive)) Thread.Sleep(20);
                return null;
            }
        }
        return $"router: nginx did not reload within {ReloadTimeout.TotalSeconds:0}s";
    }

    private static string? NewErrors(string errorLog, long offset)
    {
        if (errorLog.Length == 0 || !File.Exists(errorLog)) return null;
        using var f = new FileStream(errorLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (f.Length <= offset) return null;
        f.Seek(offset, SeekOrigin.Begin);
        using var reader = new StreamReader(f);
        var lines = reader.ReadToEnd().Split('\n').Where(l => l.Contains("[emerg]", StringComparison.Ordinal)).ToList();
        lines = [.. lines.Select(l => LogPrefix().Replace(l[l.IndexOf("[emerg]", StringComparison.Ordinal)..], "[emerg] ")).Distinct()];
        // "2024/01/02 03:04:05 [emerg] 12#12: bind() ..." as nginx -t prints it: "[emerg] bind() ...".
        return lines.Count == 0 ? null : string.Join("\nnginx: ", lines);
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^\[emerg\] \d+#\d+: ")]
    private static partial System.Text.RegularExpressions.Regex LogPrefix();

    private static List<int> Workers(int master)
    {
        var children = $"/proc/{master}/task/{master}/children";
        if (File.Exists(children))
        {
            try
            {
                return [.. File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
            }
            catch (IOException)
            {
                return [];
            }
        }
        var list = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields.Length > 1 && fields[1] == master.ToString(CultureInfo.InvariantCulture)) list.Add(pid);
            }
            catch (IOException)
            {
                // Gone meanwhile.
            }
        }
        return list;
    }

    private static string Title(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static bool Alive(int pid) => Directory.Exists("/proc/" + pid.ToString(CultureInfo.InvariantCulture));

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
