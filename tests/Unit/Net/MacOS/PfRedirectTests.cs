using System.Net;
using System.Net.Sockets;
using KtConnect.Engine;
using KtConnect.Engine.Net;
using KtConnect.Engine.Net.MacOS;
using KtConnect.Engine.Net.Redirect;

namespace KtConnect.Tests.Unit.Net.MacOS;

/// <summary>macOS pf redirect: the pfctl command sequence, the journal, crash undo and the listener's lookup hook.</summary>
public sealed class PfRedirectTests : IDisposable
{
    private const string StockNat = "nat-anchor \"com.apple/*\" all\nrdr-anchor \"com.apple/*\" all\n";
    private const string StockRules = "scrub-anchor \"com.apple/*\" all fragment reassemble\nanchor \"com.apple/*\" all\n";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ktnet-pf-" + Guid.NewGuid().ToString("N"));

    private sealed class FakePfctl
    {
        public List<(string File, string[] Args, string? Stdin)> Calls { get; } = [];
        public string Nat { get; set; } = StockNat;
        public string Rules { get; set; } = StockRules;
        public Func<string[], bool> Fails { get; set; } = _ => false;

        public Task<ProcessResult> Run(string file, IReadOnlyList<string> args, string? stdin, CancellationToken ct)
        {
            var a = args.ToArray();
            Calls.Add((file, a, stdin));
            if (Fails(a)) return Task.FromResult(new ProcessResult(file, a, 1, "", "pfctl: Invalid argument"));
            var stdout = a switch
            {
                ["-s", "nat"] => Nat,
                ["-s", "rules"] => Rules,
                _ => "",
            };
            var stderr = a is ["-E"] ? "No ALTQ support in kernel\npf enabled\nToken : 9876543210\n" : "";
            return Task.FromResult(new ProcessResult(file, a, 0, stdout, stderr));
        }

        public IEnumerable<string> Lines => Calls.Select(c => string.Join(' ', c.Args));
    }

    private static RedirectRule Rule => new([IPNetwork.Parse("10.96.0.0/12")], [], 15001);

    [Fact]
    public async Task A_second_redirect_on_the_same_anchor_is_refused_while_the_first_is_live_and_changes_nothing()
    {
        var pf = new FakePfctl();
        var journal = new ChangeJournal(_dir);
        await using var first = await PfRedirect.ApplyAsync(Rule, journal, runner: pf.Run);
        var calls = pf.Calls.Count;
        var entries = journal.ReadAll().Count;
        var e = await Assert.ThrowsAsync<KtException>(() => PfRedirect.ApplyAsync(Rule, journal, runner: pf.Run));
        Assert.Equal("RedirectInUse", e.ErrorId);
        Assert.DoesNotContain(pf.Calls.Skip(calls), c => c.Args.Contains("-F") || c.Args.Contains("-f") || c.Args.Contains("-E"));
        Assert.Equal(entries, journal.ReadAll().Count);
    }

    [Fact]
    public async Task Apply_ChecksReferences_JournalsBeforeLoading_EnablesWithToken_AndDisposeUndoesInOrder()
    {
        var pf = new FakePfctl();
        var journal = new ChangeJournal(_dir);
        await using (var redirect = await PfRedirect.ApplyAsync(Rule, journal, runner: pf.Run))
        {
            Assert.Equal("9876543210", redirect.EnableToken);
            Assert.Equal(["-s nat", "-s rules", "-a com.apple/ktconnect -F all", "-a com.apple/ktconnect -f -", "-E"], pf.Lines);
            Assert.All(pf.Calls, c => Assert.Equal("/sbin/pfctl", c.File));
            Assert.Equal(PfRedirect.AnchorRules(Rule), pf.Calls[3].Stdin);
            var entries = journal.ReadAll().OrderBy(e => e.Time).ToList();
            Assert.Equal(2, entries.Count);
            Assert.All(entries, e => Assert.Equal("firewall", e.Kind));
            Assert.Contains(entries, e => e.Data["backend"] == "pf" && e.Data["anchor"] == "com.apple/ktconnect");
            Assert.Contains(entries, e => e.Data["backend"] == "pf-token" && e.Data["token"] == "9876543210");
        }
        Assert.Equal(["-a com.apple/ktconnect -F all", "-X 9876543210"], pf.Lines.Skip(5));
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task Apply_RefusesWhenTheMainRulesetDoesNotEvaluateTheAnchor_WithoutChangingAnything()
    {
        var pf = new FakePfctl { Nat = "", Rules = "anchor \"com.apple/*\" all\n" };
        var journal = new ChangeJournal(_dir);
        var e = await Assert.ThrowsAsync<KtException>(() => PfRedirect.ApplyAsync(Rule, journal, runner: pf.Run));
        Assert.Equal("PfAnchorNotReferenced", e.ErrorId);
        Assert.Contains("rdr-anchor", e.Message, StringComparison.Ordinal);
        Assert.Equal(["-s nat", "-s rules"], pf.Lines);
        Assert.Empty(journal.ReadAll());
    }

    [Fact]
    public async Task Apply_ThatFailsToLoad_FlushesAndLeavesNoJournalEntry()
    {
        var pf = new FakePfctl { Fails = a => a.Contains("-f") };
        var journal = new ChangeJournal(_dir);
        var e = await Assert.ThrowsAsync<KtException>(() => PfRedirect.ApplyAsync(Rule, journal, runner: pf.Run));
        Assert.Equal("FirewallApplyFailed", e.ErrorId);
        Assert.DoesNotContain("-E", pf.Lines);
        Assert.Equal("-a com.apple/ktconnect -F all", pf.Lines.Last());
        Assert.Empty(journal.ReadAll());
    }

    [Theory]
    [InlineData("com.apple/ktconnect", "rdr-anchor \"com.apple/*\" all", "anchor \"com.apple/*\" all", "")]
    [InlineData("ktconnect", "rdr-anchor \"ktconnect\" all", "anchor \"ktconnect\" all", "")]
    [InlineData("com.apple/a/b", "rdr-anchor \"com.apple/*\" all", "anchor \"com.apple/*\" all", "rdr-anchor,anchor")]
    [InlineData("com.apple/ktconnect", "nat-anchor \"com.apple/*\" all", "", "rdr-anchor,anchor")]
    [InlineData("other/x", "rdr-anchor \"com.apple/*\" all", "anchor \"other/*\" all", "rdr-anchor")]
    public void AnchorReferences_HonourExactNamesAndOneLevelWildcards(string anchor, string nat, string rules, string missing)
    {
        Assert.Equal(missing, string.Join(',', PfRedirect.MissingAnchorReferences(anchor, nat, rules)));
    }

    [Fact]
    public async Task UndoHandler_FlushesTheAnchor_ReleasesTheToken_AndIsIdempotent()
    {
        var pf = new FakePfctl();
        var handler = new FirewallUndoHandler(pf.Run);
        JournalEntry Entry(params (string K, string V)[] data) => new()
        {
            Id = "x", Kind = "firewall", OwnerPid = 1, Time = DateTimeOffset.UnixEpoch, Data = data.ToDictionary(d => d.K, d => d.V),
        };
        await handler.UndoAsync(Entry(("backend", "pf"), ("anchor", "com.apple/ktconnect")), default);
        await handler.UndoAsync(Entry(("backend", "pf-token"), ("token", "42")), default);
        Assert.Equal(["-a com.apple/ktconnect -F all", "-X 42"], pf.Lines);

        // Already undone: pfctl fails, the undo does not.
        pf.Fails = _ => true;
        await handler.UndoAsync(Entry(("backend", "pf-token"), ("token", "42")), default);
        var bad = await Assert.ThrowsAsync<KtException>(() => handler.UndoAsync(Entry(("backend", "pf-token"), ("token", "1; rm")), default));
        Assert.Equal("FirewallRemoveFailed", bad.ErrorId);
        var badAnchor = await Assert.ThrowsAsync<KtException>(() => handler.UndoAsync(Entry(("backend", "pf"), ("anchor", "../x y")), default));
        Assert.Equal("FirewallTableNameInvalid", badAnchor.ErrorId);
    }

    [Fact]
    public unsafe void NatlookQuery_MapsDualModeAddressesToIPv4_AndEncodesIPv6()
    {
        Assert.Equal(0xC0544417u, PfiocNatlook.Iowr('D', 23, 84));
        var q = PfiocNatlook.Query(new IPEndPoint(IPAddress.Parse("::ffff:192.168.1.5"), 1), new IPEndPoint(IPAddress.Parse("::ffff:127.0.0.1"), 2));
        Assert.Equal(PfiocNatlook.AfInet, q.Af);
        Assert.Equal((byte)192, q.SAddr[0]);
        Assert.Equal((byte)127, q.DAddr[0]);
        var v6 = PfiocNatlook.Query(new IPEndPoint(IPAddress.Parse("fd00::5"), 443), new IPEndPoint(IPAddress.IPv6Loopback, 15001));
        var bytes = new ReadOnlySpan<byte>(&v6, sizeof(PfiocNatlook));
        Assert.Equal(IPAddress.Parse("fd00::5").GetAddressBytes(), bytes[..16].ToArray());
        Assert.Equal(IPAddress.IPv6Loopback.GetAddressBytes(), bytes[16..32].ToArray());
        Assert.Equal(new byte[] { 0x01, 0xBB, 0, 0, 0x3A, 0x99, 0, 0 }, bytes[64..72].ToArray());
        Assert.Equal(new byte[] { 30, 6, 0, 2 }, bytes[80..84].ToArray());
        Assert.Throws<KtException>(() => PfiocNatlook.Query(new IPEndPoint(IPAddress.Parse("fd00::5"), 1), new IPEndPoint(IPAddress.Loopback, 2)));
        var unknown = default(PfiocNatlook);
        unknown.Af = 7;
        Assert.Throws<KtException>(() => unknown.OriginalDestination);
    }

    [Fact]
    public async Task TransparentListener_UsesTheInjectedLookup_AndDialsTheOriginalDestination()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        using var server = new TcpListener(IPAddress.Loopback, 0);
        server.Start();
        var serverEp = (IPEndPoint)server.LocalEndpoint;
        var pretend = new IPEndPoint(IPAddress.Parse("10.96.0.10"), 80);
        var asked = new List<(EndPoint?, EndPoint?)>();
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        socket.Listen(16);
        var dialer = new MapDialer(pretend, serverEp);
        await using var listener = new TransparentListener(socket, dialer, originalDestination: s =>
        {
            lock (asked) asked.Add((s.RemoteEndPoint, s.LocalEndPoint));
            return pretend;
        });
        listener.Start();
        using var client = new TcpClient(AddressFamily.InterNetwork);
        await client.ConnectAsync(listener.LocalEndPoint.Address, listener.LocalEndPoint.Port);
        using var accepted = await server.AcceptTcpClientAsync();
        await client.GetStream().WriteAsync("ping"u8.ToArray());
        var buf = new byte[4];
        await accepted.GetStream().ReadExactlyAsync(buf);
        Assert.Equal("ping"u8.ToArray(), buf);
        Assert.Equal([pretend], dialer.Dialed);
        lock (asked) Assert.Equal(client.Client.LocalEndPoint, Assert.Single(asked).Item1);
    }

    private sealed class MapDialer(IPEndPoint from, IPEndPoint to) : IFlowDialer
    {
        public List<IPEndPoint> Dialed { get; } = [];

        public async Task<Stream> DialAsync(IPEndPoint destination, CancellationToken cancellationToken)
        {
            lock (Dialed) Dialed.Add(destination);
            Assert.Equal(from, destination);
            var c = new TcpClient();
            await c.ConnectAsync(to, cancellationToken);
            return c.GetStream();
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }
}
