using System.Text;
using KtConnect.Engine;

namespace KtConnect.KubeSim.Node;

/// <summary>
/// The cluster DNS: dnsmasq in the node namespace on the cluster DNS IP, answering
/// <c>svc.ns.svc.&lt;domain&gt;</c> from an addn-hosts file (ClusterIP, or every endpoint for headless
/// Services), NXDOMAIN for other names under the cluster domain, and never forwarding anywhere
/// (--no-resolv, no servers). Updates rewrite the file and SIGHUP dnsmasq; the update returns once
/// dnsmasq has logged that it re-read the file, so a query right after sees the new records.
/// </summary>
public sealed class ClusterDns : IAsyncDisposable
{
    private readonly string _hostsPath;
    private readonly string _logPath;
    private readonly string _outPath;
    private readonly string _domain;
    private NsProcess? _process;

    private ClusterDns(string directory, string domain)
    {
        _hostsPath = Path.Combine(directory, "hosts");
        _logPath = Path.Combine(directory, "dnsmasq.log");
        _outPath = Path.Combine(directory, "dnsmasq.out");
        _domain = domain;
    }

    public int Pid => _process?.Pid ?? 0;

    public static async Task<ClusterDns> StartAsync(string nodeNetNs, string dnsIp, string domain, string directory,
        IReadOnlyDictionary<string, string> hostRecords, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        var dns = new ClusterDns(directory, domain);
        await File.WriteAllTextAsync(dns._hostsPath, "", cancellationToken).ConfigureAwait(false);
        string[] argv =
        [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
            "--user=root", "--group=root", "--bind-interfaces", "--listen-address=" + dnsIp, "--port=53",
            "--addn-hosts=" + dns._hostsPath, "--local=/" + domain + "/", "--local=/in-addr.arpa/",
            "--pid-file=" + Path.Combine(directory, "dnsmasq.pid"), "--log-facility=" + dns._logPath,
            .. hostRecords.Select(r => $"--host-record={r.Key},{r.Value}"),
        ];
        dns._process = NsProcess.Start(nodeNetNs, argv, new Dictionary<string, string> { ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin" },
            dns._outPath);
        await dns.WaitForReadsAsync(1, cancellationToken).ConfigureAwait(false);
        return dns;
    }

    /// <summary>Replaces every record with those of <paramref name="services"/>.</summary>
    public async Task UpdateAsync(IEnumerable<ServiceLite> services, CancellationToken cancellationToken)
    {
        var reads = CountReads();
        var tmp = _hostsPath + ".tmp";
        await File.WriteAllTextAsync(tmp, RenderHosts(services, _domain), cancellationToken).ConfigureAwait(false);
        File.Move(tmp, _hostsPath, overwrite: true);
        _ = NsProcess.Kill(Pid, NsProcess.SigHup);
        await WaitForReadsAsync(reads + 1, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>addn-hosts lines: "IP name" per ClusterIP, one per endpoint for headless Services.</summary>
    public static string RenderHosts(IEnumerable<ServiceLite> services, string domain)
    {
        var b = new StringBuilder();
        foreach (var svc in services.OrderBy(s => s.Namespace, StringComparer.Ordinal).ThenBy(s => s.Name, StringComparer.Ordinal))
        {
            ServiceRules.Validate(svc);
            var name = svc.DnsName(domain);
            var ips = svc.Headless || string.IsNullOrEmpty(svc.ClusterIp) || svc.ClusterIp == "None"
                ? svc.Endpoints.Distinct()
                : [svc.ClusterIp];
            foreach (var ip in ips) b.Append(ip).Append(' ').Append(name).Append('\n');
        }
        return b.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null) await _process.DisposeAsync().ConfigureAwait(false);
    }

    private static string ReadIfExists(string path) => File.Exists(path) ? File.ReadAllText(path) : "";

    private int CountReads()
    {
        if (!File.Exists(_logPath)) return 0;
        using var f = new FileStream(_logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var r = new StreamReader(f);
        var needle = "read " + _hostsPath + " ";
        var count = 0;
        while (r.ReadLine() is { } line)
        {
            if (line.Contains(needle, StringComparison.Ordinal)) count++;
        }
        return count;
    }

    private async Task WaitForReadsAsync(int count, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (CountReads() < count)
        {
            if (_process!.Exited.IsCompleted)
                throw new KtException("SimDnsFailed", KtErrorCategory.InvalidOperation,
                    "dnsmasq exited: " + ReadIfExists(_outPath) + ReadIfExists(_logPath), target: _logPath);
            if (DateTime.UtcNow > deadline)
                throw new KtException("SimDnsTimeout", KtErrorCategory.OperationTimeout, "dnsmasq did not (re)load its hosts file in time.", target: _hostsPath);
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }
}
