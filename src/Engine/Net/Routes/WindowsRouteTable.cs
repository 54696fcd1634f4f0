using System.ComponentModel;
using System.Net;
using System.Runtime.Versioning;

namespace KtConnect.Engine.Net.Routes;

/// <summary>
/// Windows routes through IP Helper (GetIpForwardTable2, CreateIpForwardEntry2, DeleteIpForwardEntry2): no
/// process per route and no localised text to parse. A route is bound to the interface's LUID, so it goes away
/// with the Wintun adapter even if our cleanup never runs; the journal undoes it otherwise. The row layout and
/// its conversions are in <see cref="MibIpForwardRow2"/> and unit-tested; what is here is only the system calls.
/// </summary>
[SupportedOSPlatform("windows")]
public sealed class WindowsRouteTable : IRouteTable
{
    public string Platform => "windows";

    public unsafe Task<IReadOnlyList<RouteEntry>> ReadAsync(CancellationToken cancellationToken)
    {
        nint table;
        var rc = IpHelperNative.GetIpForwardTable2(IpHelperNative.AfUnspec, &table);
        if (rc != IpHelperNative.ErrorSuccess) throw Failure("RouteReadFailed", "GetIpForwardTable2", rc, null);
        try
        {
            var count = *(uint*)table;
            var rows = (MibIpForwardRow2*)(table + IpHelperNative.TableRowsOffset);
            var aliases = new Dictionary<ulong, string?>();
            var list = new List<RouteEntry>((int)count);
            for (var i = 0; i < count; i++)
            {
                list.Add(rows[i].ToEntry(luid =>
                {
                    if (!aliases.TryGetValue(luid, out var name)) aliases[luid] = name = AliasOf(luid);
                    return name;
                }));
            }
            return Task.FromResult<IReadOnlyList<RouteEntry>>(list);
        }
        finally
        {
            IpHelperNative.FreeMibTable(table);
        }
    }

    public unsafe Task AddAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        var row = Row(destination, LuidOf(device, "RouteAddFailed"));
        var rc = IpHelperNative.CreateIpForwardEntry2(&row);
        // The same route through the same interface already there is the state we want.
        if (rc != IpHelperNative.ErrorSuccess && rc != IpHelperNative.ErrorObjectAlreadyExists)
            throw Failure("RouteAddFailed", "CreateIpForwardEntry2", rc, destination);
        return Task.CompletedTask;
    }

    public unsafe Task RemoveAsync(IPNetwork destination, string device, CancellationToken cancellationToken)
    {
        ulong luid;
        var rc = IpHelperNative.ConvertInterfaceAliasToLuid(device, &luid);
        if (rc != IpHelperNative.ErrorSuccess) return Task.CompletedTask; // the interface is gone, and its routes with it
        var row = Row(destination, luid);
        rc = IpHelperNative.DeleteIpForwardEntry2(&row);
        if (rc is not (IpHelperNative.ErrorSuccess or IpHelperNative.ErrorNotFound or IpHelperNative.ErrorFileNotFound))
            throw Failure("RouteRemoveFailed", "DeleteIpForwardEntry2", rc, destination);
        return Task.CompletedTask;
    }

    private static unsafe MibIpForwardRow2 Row(IPNetwork destination, ulong luid)
    {
        var row = default(MibIpForwardRow2);
        IpHelperNative.InitializeIpForwardEntry(&row);
        row.SetRoute(destination, luid);
        return row;
    }

    private static unsafe ulong LuidOf(string device, string errorId)
    {
        ulong luid;
        var rc = IpHelperNative.ConvertInterfaceAliasToLuid(device, &luid);
        if (rc != IpHelperNative.ErrorSuccess) throw Failure(errorId, $"ConvertInterfaceAliasToLuid({device})", rc, device);
        return luid;
    }

    /// <summary>The interface alias of a LUID, or null when there is no such interface.</summary>
    internal static unsafe string? AliasOf(ulong luid)
    {
        var buf = stackalloc char[IpHelperNative.AliasChars];
        return IpHelperNative.ConvertInterfaceLuidToAlias(&luid, buf, IpHelperNative.AliasChars) == IpHelperNative.ErrorSuccess
            ? new string(buf)
            : null;
    }

    private static KtException Failure(string errorId, string call, uint code, object? target) =>
        new(errorId, KtErrorCategory.InvalidOperation, $"{call} failed: {new Win32Exception((int)code).Message} ({code}).", target: target);
}
