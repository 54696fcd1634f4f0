using System.Text;
using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>
/// apimachinery's label selector grammar: comma-separated requirements, each one of <c>key</c>, <c>!key</c>,
/// <c>key=v</c>, <c>key==v</c>, <c>key!=v</c>, <c>key in (a,b)</c>, <c>key notin (a,b)</c>, <c>key&gt;n</c>, <c>key&lt;n</c>.
/// A malformed selector throws a 400 <see cref="KubeApiException"/>.
/// </summary>
public sealed class LabelSelector
{
    private readonly List<Requirement> _requirements;

    private LabelSelector(List<Requirement> requirements) => _requirements = requirements;

    public static LabelSelector Everything { get; } = new([]);

    public bool IsEmpty => _requirements.Count == 0;

    public static LabelSelector Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return Everything;
        var p = new Parser(text);
        return new LabelSelector(p.ParseAll());
    }

    public bool Matches(IReadOnlyDictionary<string, string> labels) => _requirements.All(r => r.Matches(labels));

    /// <summary>Matches an object's metadata.labels.</summary>
    public bool Matches(JsonObject obj) => IsEmpty || Matches(LabelsOf(obj));

    public static Dictionary<string, string> LabelsOf(JsonObject obj)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (obj["metadata"] is JsonObject m && m["labels"] is JsonObject labels)
        {
            foreach (var (k, v) in labels)
            {
                if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) result[k] = s;
            }
        }
        return result;
    }

    private enum Op { Exists, NotExists, Equals, NotEquals, In, NotIn, Greater, Less }

    private sealed record Requirement(string Key, Op Op, string[] Values)
    {
        public bool Matches(IReadOnlyDictionary<string, string> labels)
        {
            var has = labels.TryGetValue(Key, out var v);
            return Op switch
            {
                Op.Exists => has,
                Op.NotExists => !has,
                Op.Equals or Op.In => has && Values.Contains(v, StringComparer.Ordinal),
                Op.NotEquals or Op.NotIn => !has || !Values.Contains(v, StringComparer.Ordinal),
                Op.Greater => has && long.TryParse(v, out var a) && a > long.Parse(Values[0], System.Globalization.CultureInfo.InvariantCulture),
                Op.Less => has && long.TryParse(v, out var b) && b < long.Parse(Values[0], System.Globalization.CultureInfo.InvariantCulture),
                _ => false,
            };
        }
    }

    private ref struct Parser
    {
        private readonly string _s;
        private int _i;

        public Parser(string s)
        {
            _s = s;
            _i = 0;
        }

        public List<Requirement> ParseAll()
        {
            var list = new List<Requirement>();
            while (true)
            {
                SkipWs();
                list.Add(ParseRequirement());
                SkipWs();
                if (_i >= _s.Length) return list;
                if (_s[_i] != ',') throw Error($"found '{_s[_i]}', expected: ',' or 'end of string'");
                _i++;
            }
        }

        private Requirement ParseRequirement()
        {
            if (Peek() == '!')
            {
                _i++;
                SkipWs();
                var k = ReadKey();
                return new Requirement(k, Op.NotExists, []);
            }
            var key = ReadKey();
            SkipWs();
            if (_i >= _s.Length || _s[_i] == ',') return new Requirement(key, Op.Exists, []);
            if (Match("==")) return new Requirement(key, Op.Equals, [ReadValue()]);
            if (Match("!=")) return new Requirement(key, Op.NotEquals, [ReadValue()]);
            if (Match("=")) return new Requirement(key, Op.Equals, [ReadValue()]);
            if (Match(">")) return new Requirement(key, Op.Greater, [ReadNumber()]);
            if (Match("<")) return new Requirement(key, Op.Less, [ReadNumber()]);
            if (MatchWord("notin")) return new Requirement(key, Op.NotIn, ReadSet());
            if (MatchWord("in")) return new Requirement(key, Op.In, ReadSet());
            throw Error($"found '{Rest()}', expected: in, notin, =, ==, !=, gt, lt");
        }

        private string ReadKey()
        {
            var start = _i;
            while (_i < _s.Length && IsKeyChar(_s[_i])) _i++;
            if (_i == start) throw Error($"found '{Rest()}', expected: identifier");
            return _s[start.._i];
        }

        private string ReadValue()
        {
            SkipWs();
            var start = _i;
            while (_i < _s.Length && IsKeyChar(_s[_i])) _i++;
            return _s[start.._i];
        }

        private string ReadNumber()
        {
            var v = ReadValue();
            if (!long.TryParse(v, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out _))
            {
                throw Error($"for 'Gt', 'Lt' operators, the value must be an integer");
            }
            return v;
        }

        private string[] ReadSet()
        {
            SkipWs();
            if (Peek() != '(') throw Error($"found '{Rest()}', expected: '('");
            _i++;
            var values = new List<string>();
            while (true)
            {
                SkipWs();
                values.Add(ReadValue());
                SkipWs();
                if (Peek() == ',')
                {
                    _i++;
                    continue;
                }
                if (Peek() == ')')
                {
                    _i++;
                    return [.. values];
                }
                throw Error($"found '{Rest()}', expected: ',', ')' or identifier");
            }
        }

        private bool Match(string token)
        {
            if (string.CompareOrdinal(_s, _i, token, 0, token.Length) != 0) return false;
            _i += token.Length;
            return true;
        }

        private bool MatchWord(string word)
        {
            if (string.CompareOrdinal(_s, _i, word, 0, word.Length) != 0) return false;
            var after = _i + word.Length;
            if (after < _s.Length && IsKeyChar(_s[after])) return false;
            _i = after;
            return true;
        }

        private readonly char Peek() => _i < _s.Length ? _s[_i] : '\0';

        private readonly string Rest() => _i < _s.Length ? _s[_i..] : "";

        private void SkipWs()
        {
            while (_i < _s.Length && _s[_i] == ' ') _i++;
        }

        private static bool IsKeyChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/';

        private readonly KubeApiException Error(string what) =>
            KubeApiException.BadRequest($"unable to parse requirement: {what}");
    }

    public override string ToString() => string.Join(",", _requirements.Select(r => r.Key + " " + r.Op));

    /// <summary>The selector string the Scale subresource reports for a LabelSelector object.</summary>
    public static string Format(JsonObject? selector)
    {
        if (selector is null) return "";
        var parts = new List<string>();
        if (selector["matchLabels"] is JsonObject ml)
        {
            foreach (var (k, v) in ml.OrderBy(p => p.Key, StringComparer.Ordinal)) parts.Add(k + "=" + v?.GetValue<string>());
        }
        if (selector["matchExpressions"] is JsonArray me)
        {
            foreach (var e in me.OfType<JsonObject>())
            {
                var key = e["key"]?.GetValue<string>() ?? "";
                IEnumerable<string> values = (e["values"] as JsonArray)?.Select(x => x?.GetValue<string>() ?? "").Order(StringComparer.Ordinal) ?? Enumerable.Empty<string>();
                var sb = new StringBuilder();
                switch (e["operator"]?.GetValue<string>())
                {
                    case "In": sb.Append(key).Append(" in (").AppendJoin(',', values).Append(')'); break;
                    case "NotIn": sb.Append(key).Append(" notin (").AppendJoin(',', values).Append(')'); break;
                    case "Exists": sb.Append(key); break;
                    case "DoesNotExist": sb.Append('!').Append(key); break;
                    default: continue;
                }
                parts.Add(sb.ToString());
            }
        }
        return string.Join(",", parts.Order(StringComparer.Ordinal));
    }
}
