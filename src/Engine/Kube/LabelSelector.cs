using System.Globalization;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

public enum LabelOperator
{
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// <summary>One requirement of a label selector: key, operator and (for In/NotIn/=/!=/gt/lt) values.</summary>
public sealed record LabelRequirement(string Key, LabelOperator Operator, IReadOnlyList<string> Values)
{
    public bool Matches(IReadOnlyDictionary<string, string>? labels)
    {
        string? value = null;
        var has = labels is not null && labels.TryGetValue(Key, out value);
        return Operator switch
        {
            LabelOperator.Equals or LabelOperator.In => has && Values.Contains(value!, StringComparer.Ordinal),
            LabelOperator.NotEquals or LabelOperator.NotIn => !has || !Values.Contains(value!, StringComparer.Ordinal),
            LabelOperator.Exists => has,
            LabelOperator.DoesNotExist => !has,
            LabelOperator.GreaterThan => has && long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var g)
                && g > long.Parse(Values[0], CultureInfo.InvariantCulture),
            LabelOperator.LessThan => has && long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l)
                && l < long.Parse(Values[0], CultureInfo.InvariantCulture),
            _ => false,
        };
    }

    public override string ToString() => Operator switch
    {
        LabelOperator.Equals => Key + "=" + Values[0],
        LabelOperator.NotEquals => Key + "!=" + Values[0],
        LabelOperator.In => Key + " in (" + string.Join(",", Values) + ")",
        LabelOperator.NotIn => Key + " notin (" + string.Join(",", Values) + ")",
        LabelOperator.Exists => Key,
        LabelOperator.DoesNotExist => "!" + Key,
        LabelOperator.GreaterThan => Key + ">" + Values[0],
        LabelOperator.LessThan => Key + "<" + Values[0],
        _ => Key,
    };
}

/// <summary>
/// An immutable label selector in apimachinery's grammar (labels.Parse):
/// <c>req ("," req)*</c> with <c>req := [!]key [ (=|==|!=) value | (in|notin) "(" v ("," v)* ")" | (&gt;|&lt;) int ]</c>.
/// Build one with the fluent methods, parse one with <see cref="Parse"/>, send it with <see cref="ToString"/>.
/// </summary>
public sealed class LabelSelector
{
    private readonly LabelRequirement[] _requirements;

    private LabelSelector(LabelRequirement[] requirements) => _requirements = requirements;

    /// <summary>Selects everything.</summary>
    public static LabelSelector Everything { get; } = new([]);

    public IReadOnlyList<LabelRequirement> Requirements => _requirements;

    public bool IsEmpty => _requirements.Length == 0;

    public LabelSelector Equal(string key, string value) => Add(key, LabelOperator.Equals, value);
    public LabelSelector NotEqual(string key, string value) => Add(key, LabelOperator.NotEquals, value);
    public LabelSelector In(string key, params string[] values) => Add(key, LabelOperator.In, values);
    public LabelSelector NotIn(string key, params string[] values) => Add(key, LabelOperator.NotIn, values);
    public LabelSelector Exists(string key) => Add(key, LabelOperator.Exists);
    public LabelSelector DoesNotExist(string key) => Add(key, LabelOperator.DoesNotExist);

    /// <summary>key=value for each entry (a Service selector or matchLabels).</summary>
    public static LabelSelector FromLabels(IEnumerable<KeyValuePair<string, string>>? labels)
    {
        var s = Everything;
        if (labels is null) return s;
        foreach (var kv in labels.OrderBy(k => k.Key, StringComparer.Ordinal)) s = s.Equal(kv.Key, kv.Value);
        return s;
    }

    /// <summary>A spec's metav1.LabelSelector (matchLabels and matchExpressions).</summary>
    public static LabelSelector FromSpec(LabelSelectorSpec? spec)
    {
        if (spec is null) return Everything;
        var s = FromLabels(spec.MatchLabels);
        foreach (var e in spec.MatchExpressions ?? [])
        {
            var key = e.Key ?? throw InvalidSelector("matchExpressions entry without key", "");
            var values = (e.Values ?? []).ToArray();
            s = e.Operator switch
            {
                "In" => s.Add(key, LabelOperator.In, values),
                "NotIn" => s.Add(key, LabelOperator.NotIn, values),
                "Exists" => s.Add(key, LabelOperator.Exists),
                "DoesNotExist" => s.Add(key, LabelOperator.DoesNotExist),
                _ => throw InvalidSelector($"unknown matchExpressions operator \"{e.Operator}\"", key),
            };
        }
        return s;
    }

    public bool Matches(IReadOnlyDictionary<string, string>? labels)
    {
        foreach (var r in _requirements)
        {
            if (!r.Matches(labels)) return false;
        }
        return true;
    }

    public override string ToString() => string.Join(",", _requirements.Select(r => r.ToString()));

    private LabelSelector Add(string key, LabelOperator op, params string[] values)
    {
        ValidateKey(key);
        switch (op)
        {
            case LabelOperator.Equals or LabelOperator.NotEquals:
                if (values.Length != 1) throw InvalidSelector("exactly one value required", key);
                break;
            case LabelOperator.In or LabelOperator.NotIn:
                if (values.Length == 0) throw InvalidSelector("for 'in', 'notin' operators, values set can't be empty", key);
                break;
            case LabelOperator.Exists or LabelOperator.DoesNotExist:
                if (values.Length != 0) throw InvalidSelector("values set must be empty for exists and does not exist", key);
                break;
            case LabelOperator.GreaterThan or LabelOperator.LessThan:
                if (values.Length != 1 || !long.TryParse(values[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
                    throw InvalidSelector("for 'Gt', 'Lt' operators, exactly one integer value is required", key);
                break;
        }
        if (op is not (LabelOperator.GreaterThan or LabelOperator.LessThan))
        {
            foreach (var v in values) ValidateValue(v, key);
        }
        var sortedValues = op is LabelOperator.In or LabelOperator.NotIn
            ? values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray()
            : values;
        var list = new LabelRequirement[_requirements.Length + 1];
        _requirements.CopyTo(list, 0);
        list[^1] = new LabelRequirement(key, op, sortedValues);
        return new LabelSelector(list);
    }

    /// <summary>Parses a selector string; the empty string selects everything.</summary>
    public static LabelSelector Parse(string selector)
    {
        ArgumentNullException.ThrowIfNull(selector);
        var p = new Parser(selector);
        return p.ParseAll();
    }

    public static bool TryParse(string selector, out LabelSelector? result)
    {
        try
        {
            result = Parse(selector);
            return true;
        }
        catch (KtException)
        {
            result = null;
            return false;
        }
    }

    internal static KtException InvalidSelector(string message, string near) =>
        new("KubeInvalidLabelSelector", KtErrorCategory.InvalidArgument,
            near.Length == 0 ? "Invalid label selector: " + message : $"Invalid label selector near \"{near}\": {message}", null, near);

    private static void ValidateKey(string key)
    {
        if (string.IsNullOrEmpty(key)) throw InvalidSelector("empty label key", key);
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        var name = key;
        if (slash >= 0)
        {
            var prefix = key[..slash];
            name = key[(slash + 1)..];
            if (prefix.Length == 0 || prefix.Length > 253 || !IsDnsSubdomain(prefix))
                throw InvalidSelector("prefix part must be a lowercase RFC 1123 subdomain", key);
        }
        if (name.Length == 0 || name.Length > 63 || !IsQualifiedName(name))
            throw InvalidSelector("name part must consist of alphanumeric characters, '-', '_' or '.', start and end with an alphanumeric character, and be at most 63 characters", key);
    }

    private static void ValidateValue(string value, string key)
    {
        if (value.Length == 0) return;
        if (value.Length > 63 || !IsQualifiedName(value))
            throw InvalidSelector($"invalid label value \"{value}\": must be 63 characters or less, alphanumeric, '-', '_' or '.', starting and ending with an alphanumeric character", key);
    }

    private static bool IsAlnum(char c) => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9');

    private static bool IsQualifiedName(string s)
    {
        if (!IsAlnum(s[0]) || !IsAlnum(s[^1])) return false;
        foreach (var c in s)
        {
            if (!IsAlnum(c) && c is not ('-' or '_' or '.')) return false;
        }
        return true;
    }

    private static bool IsDnsSubdomain(string s)
    {
        foreach (var label in s.Split('.'))
        {
            if (label.Length == 0 || label.Length > 63) return false;
            if (!IsLowerAlnum(label[0]) || !IsLowerAlnum(label[^1])) return false;
            foreach (var c in label)
            {
                if (!IsLowerAlnum(c) && c != '-') return false;
            }
        }
        return true;
    }

    private static bool IsLowerAlnum(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');

    /// <summary>A small hand-written lexer/parser in the shape of apimachinery's (tokens: identifier, ! = == != ( ) , in notin &gt; &lt;).</summary>
    private ref struct Parser
    {
        private readonly string _s;
        private int _pos;

        public Parser(string s)
        {
            _s = s;
            _pos = 0;
        }

        public LabelSelector ParseAll()
        {
            var sel = Everything;
            SkipWs();
            if (_pos >= _s.Length) return sel;
            while (true)
            {
                sel = ParseRequirement(sel);
                SkipWs();
                if (_pos >= _s.Length) return sel;
                if (_s[_pos] != ',') throw InvalidSelector("expected ',' or end of selector", Rest());
                _pos++;
                SkipWs();
                if (_pos >= _s.Length) throw InvalidSelector("expected a requirement after ','", "");
            }
        }

        private LabelSelector ParseRequirement(LabelSelector sel)
        {
            SkipWs();
            var negated = false;
            if (Peek() == '!')
            {
                negated = true;
                _pos++;
                SkipWs();
            }
            var key = ReadIdentifier();
            if (key.Length == 0) throw InvalidSelector("expected a label key", Rest());
            SkipWs();
            if (negated) return sel.DoesNotExist(key);
            if (_pos >= _s.Length || _s[_pos] == ',') return sel.Exists(key);
            var c = _s[_pos];
            if (c == '=')
            {
                _pos++;
                if (Peek() == '=') _pos++;
                return sel.Equal(key, ReadValue());
            }
            if (c == '!')
            {
                _pos++;
                if (Peek() != '=') throw InvalidSelector("expected '=' after '!'", key);
                _pos++;
                return sel.NotEqual(key, ReadValue());
            }
            if (c == '>' || c == '<')
            {
                _pos++;
                var v = ReadValue();
                return sel.Add(key, c == '>' ? LabelOperator.GreaterThan : LabelOperator.LessThan, v);
            }
            var word = ReadIdentifier();
            if (word == "in" || word == "notin")
            {
                var values = ReadSet(key);
                return sel.Add(key, word == "in" ? LabelOperator.In : LabelOperator.NotIn, values);
            }
            throw InvalidSelector("expected one of =, ==, !=, in, notin, >, <", key);
        }

        private string[] ReadSet(string key)
        {
            SkipWs();
            if (Peek() != '(') throw InvalidSelector("expected '(' after in/notin", key);
            _pos++;
            var values = new List<string>();
            while (true)
            {
                SkipWs();
                var v = ReadIdentifier();
                values.Add(v);
                SkipWs();
                var c = Peek();
                _pos++;
                if (c == ')') break;
                if (c != ',') throw InvalidSelector("expected ',' or ')' in value set", key);
            }
            return values.ToArray();
        }

        private string ReadValue()
        {
            SkipWs();
            return ReadIdentifier();
        }

        private string ReadIdentifier()
        {
            var start = _pos;
            while (_pos < _s.Length && !IsSpecial(_s[_pos]) && !char.IsWhiteSpace(_s[_pos])) _pos++;
            return _s[start.._pos];
        }

        private static bool IsSpecial(char c) => c is ',' or '=' or '!' or '(' or ')' or '<' or '>';

        private readonly char Peek() => _pos < _s.Length ? _s[_pos] : '\0';

        private void SkipWs()
        {
            while (_pos < _s.Length && char.IsWhiteSpace(_s[_pos])) _pos++;
        }

        private readonly string Rest() => _pos < _s.Length ? _s[_pos..] : "";
    }
}
