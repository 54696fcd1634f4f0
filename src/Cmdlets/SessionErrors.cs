using KtConnect.Engine;

namespace KtConnect.Cmdlets;

internal static class SessionErrors
{
    public static KtException NotFound(int id) =>
        new("SessionNotFound", KtErrorCategory.ObjectNotFound, $"There is no KtConnect session with Id {id} in this process; Get-KtSession lists them.", target: id);
}
