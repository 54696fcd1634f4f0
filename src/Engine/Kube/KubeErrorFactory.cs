using System.Globalization;
using System.Text;
using System.Text.Json;
using KtConnect.Engine.Kube.Json;
using KtConnect.Engine.Kube.Models;

namespace KtConnect.Engine.Kube;

/// <summary>Turns a failed response (a Status body, or whatever else came back) into the matching typed exception.</summary>
public static class KubeErrorFactory
{
    /// <summary>The reason client-go assumes for a code when the body carries none (NewGenericServerResponse).</summary>
    public static string ReasonForCode(int code) => code switch
    {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };

    /// <summary>The typed exception for one error.</summary>
    public static KubeApiException Create(KubeApiError error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return error.Reason switch
        {
            "BadRequest" => new KubeBadRequestException(error),
            "Unauthorized" => new KubeUnauthorizedException(error),
            "Forbidden" => new KubeForbiddenException(error),
            "NotFound" => new KubeNotFoundException(error),
            "MethodNotAllowed" => new KubeMethodNotAllowedException(error),
            "NotAcceptable" => new KubeNotAcceptableException(error),
            "AlreadyExists" => new KubeAlreadyExistsException(error),
            "Conflict" => new KubeConflictException(error),
            "Gone" or "Expired" => new KubeGoneException(error),
            "RequestEntityTooLarge" => new KubeRequestEntityTooLargeException(error),
            "UnsupportedMediaType" => new KubeUnsupportedMediaTypeException(error),
            "Invalid" => new KubeInvalidException(error),
            "TooManyRequests" => new KubeTooManyRequestsException(error),
            "InternalError" => new KubeInternalErrorException(error),
            "ServiceUnavailable" => new KubeServiceUnavailableException(error),
            "Timeout" or "ServerTimeout" => new KubeServerTimeoutException(error),
            _ => CreateByCode(error),
        };
    }

    private static KubeApiException CreateByCode(KubeApiError error)
    {
        // An unknown or empty reason: fall back to the code's meaning, keep the reason the server sent.
        var byCode = ReasonForCode(error.Code);
        if (byCode != "Unknown" && byCode != error.Reason) return Create(error with { Reason = byCode });
        return new KubeApiException(error, "KubeApiError", error.Code >= 500 ? KtErrorCategory.NotSpecified : KtErrorCategory.InvalidOperation);
    }

    /// <summary>
    /// Builds the error from an HTTP status and body. A JSON Status body is used as is; anything else (text/plain
    /// "404 page not found", an HTML proxy page, nothing) keeps its first line as the message.
    /// </summary>
    public static KubeApiError FromResponse(int httpCode, ReadOnlySpan<byte> body, string? retryAfterHeader, KubeRequestInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        var status = TryParseStatus(body);
        int? retryAfter = status?.Details?.RetryAfterSeconds;
        if (retryAfter is null && retryAfterHeader is not null
            && int.TryParse(retryAfterHeader.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var ra) && ra >= 0)
        {
            retryAfter = ra;
        }
        string message;
        string reason;
        int code;
        if (status is not null)
        {
            code = status.Code is int c and > 0 ? c : httpCode;
            reason = string.IsNullOrEmpty(status.Reason) ? ReasonForCode(code) : status.Reason;
            message = status.Message ?? "";
        }
        else
        {
            code = httpCode;
            reason = ReasonForCode(code);
            var text = DescribeBody(body);
            message = text.Length == 0
                ? $"the server responded with HTTP {httpCode} and no body"
                : $"the server responded with HTTP {httpCode}: {text}";
        }
        return Create(code, reason, message, status, retryAfter, info);
    }

    /// <summary>Builds the error from a Status that arrived inside a stream (a watch ERROR event).</summary>
    public static KubeApiError FromStatus(KubeStatus status, KubeRequestInfo info)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(info);
        var code = status.Code ?? 500;
        return Create(code, string.IsNullOrEmpty(status.Reason) ? ReasonForCode(code) : status.Reason, status.Message ?? "", status,
            status.Details?.RetryAfterSeconds, info);
    }

    private static KubeApiError Create(int code, string reason, string message, KubeStatus? status, int? retryAfter, KubeRequestInfo info) => new()
    {
        Code = code,
        Reason = reason,
        ServerMessage = message,
        Status = status,
        RetryAfterSeconds = retryAfter,
        Verb = info.Verb,
        Resource = info.Resource,
        Namespace = info.Namespace,
        Name = info.Name,
        Server = info.Server,
        Context = info.Context,
    };

    /// <summary>A Status if the body is a JSON object that looks like one (kind Status, or status+code/reason without kind as on the exec channel).</summary>
    public static KubeStatus? TryParseStatus(ReadOnlySpan<byte> body)
    {
        var trimmed = TrimWhite(body);
        if (trimmed.Length == 0 || trimmed[0] != (byte)'{') return null;
        try
        {
            var status = JsonSerializer.Deserialize(trimmed, KubeJsonContext.Default.KubeStatus);
            if (status is null) return null;
            if (status.Kind is not null && status.Kind != "Status") return null;
            if (status.Kind is null && status.Status is null && status.Reason is null && status.Code is null) return null;
            return status;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static ReadOnlySpan<byte> TrimWhite(ReadOnlySpan<byte> s)
    {
        int a = 0, b = s.Length;
        while (a < b && s[a] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') a++;
        while (b > a && s[b - 1] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') b--;
        return s[a..b];
    }

    private static string DescribeBody(ReadOnlySpan<byte> body)
    {
        var trimmed = TrimWhite(body);
        if (trimmed.Length > 512) trimmed = trimmed[..512];
        var text = Encoding.UTF8.GetString(trimmed);
        var nl = text.IndexOf('\n', StringComparison.Ordinal);
        if (nl >= 0) text = text[..nl].TrimEnd('\r') + " ...";
        // Keep messages printable: control characters from a binary body would garble a terminal.
        var sb = new StringBuilder(text.Length);
        foreach (var ch in text) sb.Append(char.IsControl(ch) ? '?' : ch);
        return sb.ToString();
    }
}

/// <summary>What a request was about, for error messages.</summary>
public sealed record KubeRequestInfo(string Verb, string Resource, string? Namespace, string? Name, string Server, string Context);
