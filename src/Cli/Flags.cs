using System.Globalization;
using KtConnect.Engine;

namespace KtConnect.Cli;

/// <summary>One flag: kt-connect's camelCase long name, an optional one-letter alias, and whether it takes a value.</summary>
internal sealed record FlagSpec(string Name, string? Alias, bool TakesValue, string Help, string? Default = null);

/// <summary>
/// Parsed command line: a verb, its positional arguments and flag values. Flags may come before or after
/// the verb (kt-connect's global flags are persistent), as <c>--name value</c>, <c>--name=value</c> or
/// <c>-n value</c>; boolean flags take no value but accept <c>--flag=false</c>.
/// </summary>
internal sealed class ParsedArgs
{
    private readonly Dictionary<string, string> _values;

    public ParsedArgs(string verb, IReadOnlyList<string> positional, Dictionary<string, string> values)
    {
        Verb = verb;
        Positional = positional;
        _values = values;
    }

    public string Verb { get; }

    public IReadOnlyList<string> Positional { get; }

    public bool Has(string name) => _values.ContainsKey(name);

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name) ?? fallback;

    public bool Flag(string name) => _values.TryGetValue(name, out var v) && v != "false";

    public int Int(string name, int fallback)
    {
        if (!_values.TryGetValue(name, out var v)) return fallback;
        return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0
            ? n
            : throw Usage($"--{name} needs a non-negative number, not '{v}'");
    }

    /// <summary>A comma-separated list (<c>--excludeIps 10.0.0.0/8,192.168.1.1</c>), empty entries dropped.</summary>
    public IReadOnlyList<string> List(string name) =>
        (Get(name) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary><c>k1=v1,k2=v2</c> as kt-connect's --withLabel, --nodeSelector and --withAnnotation take them.</summary>
    public IReadOnlyDictionary<string, string> Map(string name)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in List(name))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw Usage($"--{name} takes key=value pairs separated by commas, not '{pair}'");
            map[pair[..eq].Trim()] = pair[(eq + 1)..].Trim();
        }
        return map;
    }

    public static KtException Usage(string message) => new("InvalidCommandLine", KtErrorCategory.InvalidArgument, message);
}

internal static class FlagParser
{
    /// <summary>
    /// Parses <paramref name="args"/>. Global flags may come anywhere (kt-connect's are persistent); the verb's
    /// own flags only after the verb, as with cobra.
    /// </summary>
    public static ParsedArgs Parse(IReadOnlyList<string> args, IReadOnlyList<FlagSpec> global, Func<string, IReadOnlyList<FlagSpec>?> verbFlags)
    {
        string? verb = null;
        IReadOnlyList<FlagSpec> specs = global;
        var positional = new List<string>();
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a == "--")
            {
                positional.AddRange(args.Skip(i + 1));
                break;
            }
            if (a.StartsWith('-') && a.Length > 1)
            {
                var (name, inline) = Split(a);
                var spec = Find(specs, name) ?? throw ParsedArgs.Usage(verb is null
                    ? $"unknown flag '{a}'; run 'kt --help'"
                    : $"unknown flag '{a}' for '{verb}'; run 'kt {verb} --help'");
                i = Consume(args, i, spec, inline, values);
                continue;
            }
            if (verb is null)
            {
                verb = a;
                specs = [.. global, .. verbFlags(verb) ?? throw ParsedArgs.Usage($"unknown command '{verb}'; run 'kt --help' for the list")];
                continue;
            }
            positional.Add(a);
        }
        return new ParsedArgs(verb ?? "", positional, values);
    }

    private static int Consume(IReadOnlyList<string> args, int i, FlagSpec spec, string? inline, Dictionary<string, string> values)
    {
        if (!spec.TakesValue)
        {
            if (inline is not null && inline is not ("true" or "false"))
                throw ParsedArgs.Usage($"--{spec.Name} is a switch; it takes no value (or =true/=false)");
            values[spec.Name] = inline ?? "true";
            return i;
        }
        if (inline is not null)
        {
            values[spec.Name] = inline;
            return i;
        }
        if (i + 1 >= args.Count) throw ParsedArgs.Usage($"--{spec.Name} needs a value");
        values[spec.Name] = args[i + 1];
        return i + 1;
    }

    private static (string Name, string? Inline) Split(string token)
    {
        var body = token.TrimStart('-');
        var eq = body.IndexOf('=', StringComparison.Ordinal);
        return eq < 0 ? (body, null) : (body[..eq], body[(eq + 1)..]);
    }

    private static FlagSpec? Find(IReadOnlyList<FlagSpec> specs, string name) =>
        specs.FirstOrDefault(s => s.Name == name || s.Alias == name);
}
