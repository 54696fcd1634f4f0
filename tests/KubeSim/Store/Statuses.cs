using System.Text.Json.Nodes;

namespace KtConnect.KubeSim.Store;

/// <summary>metav1.Status bodies, with the key order Go produces.</summary>
public static class Statuses
{
    public static JsonObject Failure(int code, string reason, string message, JsonObject? details, bool omitDetails = false)
    {
        var s = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
        };
        if (!omitDetails && details is not null) s["details"] = details;
        s["code"] = code;
        return s;
    }

    /// <summary>What DELETE answers for most resources: Success with the deleted object's name, group, kind, uid.</summary>
    public static JsonObject DeleteSuccess(ResourceType type, string name, string? uid)
    {
        var d = KubeApiException.Details(type, name);
        if (uid is not null) d["uid"] = uid;
        return new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Success",
            ["details"] = d,
        };
    }
}
