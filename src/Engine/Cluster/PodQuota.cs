using System.Globalization;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Cluster;

/// <summary>
/// ktctl's <c>--podQuota</c>: comma-separated <c>&lt;n&gt;c</c> for CPU cores and <c>&lt;n&gt;k|m|g</c> for memory
/// (binary units: <c>512m</c> is 512Mi; <c>Ki/Mi/Gi</c> are accepted as written). Both go into limits and requests.
/// </summary>
public sealed record PodQuota(string? Cpu, string? Memory)
{
    /// <summary>Parses <c>0.5c,512m</c>; malformed input throws <see cref="PodQuotaInvalidException"/>.</summary>
    public static PodQuota Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string? cpu = null, memory = null;
        foreach (var raw in text.Split(','))
        {
            var part = raw.Trim();
            if (part.Length == 0) throw new PodQuotaInvalidException(text, "empty entry");
            if (part[^1] is 'c' or 'C')
            {
                if (cpu is not null) throw new PodQuotaInvalidException(text, "CPU given twice");
                cpu = Number(part[..^1], text);
                continue;
            }
            if (memory is not null) throw new PodQuotaInvalidException(text, "memory given twice");
            var unitLength = part.EndsWith('i') ? 2 : 1;
            if (part.Length <= unitLength) throw new PodQuotaInvalidException(text, $"'{part}' has no number");
            var unit = part[^unitLength..];
            var suffix = char.ToLowerInvariant(unit[0]) switch
            {
                'k' => "Ki",
                'm' => "Mi",
                'g' => "Gi",
                _ => throw new PodQuotaInvalidException(text, $"'{part}' is neither CPU (<n>c) nor memory (<n>k, <n>m, <n>g)"),
            };
            if (unitLength == 2 && unit[0] is 'm') throw new PodQuotaInvalidException(text, $"'{part}': use Mi");
            memory = Number(part[..^unitLength], text) + suffix;
        }
        return new PodQuota(cpu, memory);
    }

    private static string Number(string s, string text)
    {
        if (s.Length == 0 || !decimal.TryParse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n) || n <= 0)
        {
            throw new PodQuotaInvalidException(text, $"'{s}' is not a positive number");
        }
        return s;
    }

    /// <summary>The container resources: the same values as limits and requests.</summary>
    public ResourceRequirements ToResources()
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Cpu is not null) values["cpu"] = Cpu;
        if (Memory is not null) values["memory"] = Memory;
        return new ResourceRequirements
        {
            Limits = new Dictionary<string, string>(values, StringComparer.Ordinal),
            Requests = new Dictionary<string, string>(values, StringComparer.Ordinal),
        };
    }
}

public sealed class PodQuotaInvalidException(string text, string detail)
    : KtException("PodQuotaInvalid", KtErrorCategory.InvalidArgument,
        $"Invalid pod quota '{text}': {detail}. Use for example '0.5c,512m' (0.5 CPU, 512Mi memory).", null, text)
{
    public string Text { get; } = text;
}
