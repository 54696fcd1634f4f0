using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KtConnect.Engine.Kube.Models;

/// <summary>A Kubernetes time: RFC 3339, read leniently (null or empty is null), written as UTC in <c>format</c>.</summary>
public abstract class KubeTimeConverterBase(string format) : JsonConverter<DateTimeOffset?>
{
    public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return null;
        var s = reader.GetString();
        if (string.IsNullOrEmpty(s)) return null;
        return DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else writer.WriteStringValue(value.Value.UtcDateTime.ToString(format, CultureInfo.InvariantCulture));
    }
}

/// <summary>metav1.Time: RFC 3339 with second precision, written as UTC with a 'Z' like the API server does.</summary>
public sealed class KubeTimeConverter() : KubeTimeConverterBase("yyyy-MM-dd'T'HH:mm:ss'Z'");

/// <summary>metav1.MicroTime (Lease acquire/renew times): RFC 3339 with six fractional digits.</summary>
public sealed class KubeMicroTimeConverter() : KubeTimeConverterBase("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'");

/// <summary>intstr.IntOrString: a Service targetPort is either a number or a container port name.</summary>
[JsonConverter(typeof(IntOrStringConverter))]
public readonly record struct IntOrString
{
    public IntOrString(int value)
    {
        IntValue = value;
        StringValue = null;
    }

    public IntOrString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        IntValue = null;
        StringValue = value;
    }

    public int? IntValue { get; }
    public string? StringValue { get; }
    public bool IsInt => IntValue.HasValue;

    public static implicit operator IntOrString(int value) => new(value);
    public static implicit operator IntOrString(string value) => new(value);
    public static IntOrString FromInt32(int value) => new(value);
    public static IntOrString FromString(string value) => new(value);

    public override string ToString() => IntValue?.ToString(CultureInfo.InvariantCulture) ?? StringValue ?? "";
}

public sealed class IntOrStringConverter : JsonConverter<IntOrString>
{
    public override IntOrString Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Number => new IntOrString(reader.GetInt32()),
        JsonTokenType.String => new IntOrString(reader.GetString()!),
        _ => throw new JsonException("IntOrString must be a number or a string"),
    };

    public override void Write(Utf8JsonWriter writer, IntOrString value, JsonSerializerOptions options)
    {
        if (value.IntValue is int i) writer.WriteNumberValue(i);
        else writer.WriteStringValue(value.StringValue ?? "");
    }
}
