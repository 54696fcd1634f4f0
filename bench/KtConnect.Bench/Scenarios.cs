using System.Globalization;
using System.Text.Json;

namespace KtConnect.Bench;

/// <summary>A side-by-side measurement: ours and a real peer in the same run, alternating, after a warm-up.</summary>
public interface IScenario
{
    /// <summary>Name used on the command line, for example <c>ssh-local-forward</c>.</summary>
    string Name { get; }

    string Description { get; }

    Task RunAsync(BenchContext context, CancellationToken cancellationToken);
}

/// <summary>What a scenario reports through: one JSON object per line and per figure (DESIGN.md §7).</summary>
public sealed class BenchContext
{
    private readonly TextWriter _out;

    public BenchContext(TextWriter output, int runs, IReadOnlyCollection<string>? metrics = null, string? hold = null)
    {
        _out = output;
        Runs = runs;
        Metrics = metrics ?? [];
        Hold = hold;
    }

    /// <summary>
    /// <c>--hold FILE</c>: before measuring a figure, create FILE and wait until it is deleted, so the scenario's
    /// setup (cluster, kt, peers) can be measured or profiled by hand while nothing else runs.
    /// </summary>
    public string? Hold { get; }

    /// <summary>When not empty, only these metrics are measured by <see cref="CompareAsync"/> (<c>--metric</c>, for profiling one figure).</summary>
    public IReadOnlyCollection<string> Metrics { get; }

    /// <summary>Whether <paramref name="metric"/> is to be measured in this run.</summary>
    public bool Wants(string metric) => Metrics.Count == 0 || Metrics.Contains(metric);

    /// <summary>How many measured runs of each side (after one warm-up).</summary>
    public int Runs { get; }

    /// <summary>
    /// Runs <paramref name="ours"/> and <paramref name="peer"/> alternately: one warm-up each, then
    /// <see cref="Runs"/> measured runs each. Each delegate returns its figure for one run.
    /// </summary>
    public async Task CompareAsync(string scenario, string metric, string unit, bool higherIsBetter,
        Func<CancellationToken, Task<double>> ours, string peerName, Func<CancellationToken, Task<double>> peer,
        CancellationToken cancellationToken)
    {
        if (!Wants(metric)) return;
        if (Hold is not null)
        {
            await File.WriteAllTextAsync(Hold, $"{scenario} {metric} vs {peerName}\n", cancellationToken).ConfigureAwait(false);
            await Console.Error.WriteLineAsync($"bench: holding before {scenario} {metric} vs {peerName}; delete {Hold} to go on").ConfigureAwait(false);
            while (File.Exists(Hold)) await Task.Delay(500, cancellationToken).ConfigureAwait(false);
        }
        await ours(cancellationToken).ConfigureAwait(false);
        await peer(cancellationToken).ConfigureAwait(false);
        var a = new List<double>();
        var b = new List<double>();
        for (var i = 0; i < Runs; i++)
        {
            a.Add(await ours(cancellationToken).ConfigureAwait(false));
            b.Add(await peer(cancellationToken).ConfigureAwait(false));
        }
        Report(scenario, metric, unit, higherIsBetter, a, peerName, b);
    }

    /// <summary>Prints one figure from samples already taken (medians, ratio ours/peer).</summary>
    public void Report(string scenario, string metric, string unit, bool higherIsBetter,
        IReadOnlyList<double> ours, string peerName, IReadOnlyList<double> peer)
    {
        var o = Median(ours);
        var p = Median(peer);
        var line = new Dictionary<string, object>
        {
            ["scenario"] = scenario,
            ["metric"] = metric,
            ["unit"] = unit,
            ["better"] = higherIsBetter ? "higher" : "lower",
            ["ours"] = Math.Round(o, 3),
            ["peer"] = peerName,
            ["peer_value"] = Math.Round(p, 3),
            ["ratio"] = p == 0 ? 0 : Math.Round(o / p, 3),
            ["runs"] = Math.Min(ours.Count, peer.Count),
        };
        lock (_out) _out.WriteLine(JsonSerializer.Serialize(line));
    }

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return 0;
        var s = values.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>The p-th percentile (0..100) of latency samples.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0) return 0;
        var s = values.Order().ToArray();
        var rank = (int)Math.Ceiling(p / 100.0 * s.Length) - 1;
        return s[Math.Clamp(rank, 0, s.Length - 1)];
    }
}

internal static class Scenarios
{
    /// <summary>Every <see cref="IScenario"/> in this assembly, found by reflection so a scenario is one file.</summary>
    private static IReadOnlyList<IScenario> All() =>
        typeof(Scenarios).Assembly.GetTypes()
            .Where(t => typeof(IScenario).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (IScenario)Activator.CreateInstance(t)!)
            .OrderBy(s => s.Name, StringComparer.Ordinal)
            .ToList();

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var runs = 5;
        var names = new List<string>();
        var metrics = new List<string>();
        string? hold = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--runs" && i + 1 < args.Length) runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--metric" && i + 1 < args.Length) metrics.Add(args[++i]);
            else if (args[i] == "--hold" && i + 1 < args.Length) hold = Path.GetFullPath(args[++i]);
            else if (args[i] == "--list")
            {
                foreach (var s in All()) stdout.WriteLine($"{s.Name}\t{s.Description}");
                return 0;
            }
            else names.Add(args[i]);
        }
        var all = All();
        var unknown = names.Where(n => all.All(s => s.Name != n)).ToList();
        if (unknown.Count > 0)
        {
            stderr.WriteLine($"bench: unknown scenario(s): {string.Join(", ", unknown)}; --list shows them");
            return 2;
        }
        var selected = names.Count == 0 ? all : all.Where(s => names.Contains(s.Name)).ToList();
        if (selected.Count == 0)
        {
            stderr.WriteLine("bench: no scenarios in this build");
            return 0;
        }
        var context = new BenchContext(stdout, runs, metrics, hold);
        var failed = 0;
        foreach (var s in selected)
        {
            try
            {
                await s.RunAsync(context, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failed++;
                stderr.WriteLine($"bench: {s.Name} failed: {e.Message}");
            }
        }
        return failed == 0 ? 0 : 1;
    }

}
