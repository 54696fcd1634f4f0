using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace KtConnect.Engine.Net.Windows;

/// <summary>
/// Finds wintun.dll for this process's architecture. We ship it per RID under
/// Dependencies/runtimes/win-&lt;arch&gt;/native/ and load it from exactly there (never from PATH or System32,
/// which could hold another version): the DLL's PE machine type must match the process, and a failure names
/// every path searched.
/// </summary>
public static class WintunLocator
{
    public const ushort MachineX86 = 0x014C;
    public const ushort MachineX64 = 0x8664;
    public const ushort MachineArm64 = 0xAA64;
    public const ushort MachineArm = 0x01C4;

    public static string RidArch(Architecture arch) => arch switch
    {
        Architecture.X64 => "x64",
        Architecture.X86 => "x86",
        Architecture.Arm64 => "arm64",
        Architecture.Arm => "arm",
        _ => throw new KtException("WintunArchitectureUnsupported", KtErrorCategory.NotImplemented, $"Wintun has no build for {arch}."),
    };

    public static ushort MachineOf(Architecture arch) => arch switch
    {
        Architecture.X64 => MachineX64,
        Architecture.X86 => MachineX86,
        Architecture.Arm64 => MachineArm64,
        Architecture.Arm => MachineArm,
        _ => 0,
    };

    /// <summary>Where we look, in order, relative to the directory of our assemblies.</summary>
    public static IReadOnlyList<string> Candidates(string baseDirectory, Architecture arch)
    {
        var rid = "win-" + RidArch(arch);
        return
        [
            Path.Combine(baseDirectory, "runtimes", rid, "native", "wintun.dll"),
            Path.Combine(baseDirectory, "Dependencies", "runtimes", rid, "native", "wintun.dll"),
            Path.Combine(baseDirectory, "..", "runtimes", rid, "native", "wintun.dll"),
        ];
    }

    /// <summary>The first candidate that exists and matches <paramref name="arch"/>; a typed error otherwise.</summary>
    public static string Resolve(string baseDirectory, Architecture arch, Func<string, bool>? exists = null, Func<string, ushort?>? machineOf = null)
    {
        exists ??= File.Exists;
        machineOf ??= ReadMachine;
        var candidates = Candidates(baseDirectory, arch);
        var wrongArch = new List<string>();
        foreach (var path in candidates)
        {
            if (!exists(path)) continue;
            var machine = machineOf(path);
            if (machine == MachineOf(arch)) return Path.GetFullPath(path);
            wrongArch.Add($"{path} (machine 0x{machine ?? 0:X4})");
        }
        if (wrongArch.Count > 0)
        {
            throw new KtException("WintunArchitectureMismatch", KtErrorCategory.NotInstalled,
                $"wintun.dll was found but not for {RidArch(arch)} (machine 0x{MachineOf(arch):X4}): {string.Join("; ", wrongArch)}.", target: wrongArch);
        }
        throw new KtException("WintunNotFound", KtErrorCategory.NotInstalled,
            "wintun.dll was not found. Searched: " + string.Join("; ", candidates) + ". Reinstall the module, or use -Mode Socks.", target: candidates);
    }

    /// <summary>The IMAGE_FILE_HEADER.Machine of a PE file, or null when it is not one.</summary>
    public static ushort? ReadMachine(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> head = stackalloc byte[64];
        if (f.Read(head) < 64 || head[0] != 'M' || head[1] != 'Z') return null;
        var peOffset = BinaryPrimitives.ReadInt32LittleEndian(head[0x3C..]);
        if (peOffset <= 0 || peOffset > f.Length - 6) return null;
        f.Position = peOffset;
        Span<byte> pe = stackalloc byte[6];
        if (f.Read(pe) < 6 || pe[0] != 'P' || pe[1] != 'E' || pe[2] != 0 || pe[3] != 0) return null;
        return BinaryPrimitives.ReadUInt16LittleEndian(pe[4..]);
    }
}

/// <summary>Limits Wintun imposes on sessions and packets (wintun.h).</summary>
public static class WintunLimits
{
    public const int MinRingCapacity = 0x20000;
    public const int MaxRingCapacity = 0x4000000;
    public const int MaxIpPacketSize = 0xFFFF;

    /// <summary>A ring capacity Wintun accepts: a power of two between 128 KiB and 64 MiB.</summary>
    public static int ValidateRingCapacity(int capacity)
    {
        if (capacity < MinRingCapacity || capacity > MaxRingCapacity || (capacity & (capacity - 1)) != 0)
            throw new KtException("WintunRingCapacityInvalid", KtErrorCategory.InvalidArgument,
                $"Wintun ring capacity {capacity} must be a power of two between {MinRingCapacity} and {MaxRingCapacity}.");
        return capacity;
    }

    /// <summary>Packets Wintun can carry: non-empty IP packets up to 65535 bytes.</summary>
    public static bool CanSend(ReadOnlySpan<byte> packet) => packet.Length is > 0 and <= MaxIpPacketSize && (packet[0] >> 4) is 4 or 6;
}

/// <summary>
/// A Wintun adapter and session, through function pointers resolved from the DLL <see cref="WintunLocator"/>
/// picked. Compiles everywhere; only Windows runs it.
/// </summary>
[SupportedOSPlatform("windows")]
public sealed unsafe class WintunDevice : ITunDevice
{
    private const int ErrorNoMoreItems = 259;

    private readonly nint _library;
    private readonly nint _adapter;
    private readonly nint _session;
    private readonly nint _readEvent;
    private readonly nint _quitEvent;
    private readonly delegate* unmanaged<nint, uint*, byte*> _receive;
    private readonly delegate* unmanaged<nint, byte*, void> _release;
    private readonly delegate* unmanaged<nint, uint, byte*> _allocate;
    private readonly delegate* unmanaged<nint, byte*, void> _send;
    private readonly delegate* unmanaged<nint, void> _endSession;
    private readonly delegate* unmanaged<nint, void> _closeAdapter;
    private int _disposed;
    private readonly DeviceGate _gate = new();
    private readonly DeviceGate.PacketReader _readCore;

    private WintunDevice(nint library, nint adapter, nint session, string name, ulong luid, int mtu)
    {
        _readCore = ReadPacketCore;
        _library = library;
        _adapter = adapter;
        _session = session;
        Name = name;
        Luid = luid;
        Mtu = mtu;
        _receive = (delegate* unmanaged<nint, uint*, byte*>)NativeLibrary.GetExport(library, "WintunReceivePacket");
        _release = (delegate* unmanaged<nint, byte*, void>)NativeLibrary.GetExport(library, "WintunReleaseReceivePacket");
        _allocate = (delegate* unmanaged<nint, uint, byte*>)NativeLibrary.GetExport(library, "WintunAllocateSendPacket");
        _send = (delegate* unmanaged<nint, byte*, void>)NativeLibrary.GetExport(library, "WintunSendPacket");
        _endSession = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(library, "WintunEndSession");
        _closeAdapter = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(library, "WintunCloseAdapter");
        var getEvent = (delegate* unmanaged<nint, nint>)NativeLibrary.GetExport(library, "WintunGetReadWaitEvent");
        _readEvent = getEvent(session);
        _quitEvent = CreateEventW(0, 1, 0, null);
    }

    /// <summary>The interface alias Windows gave the adapter (what routes and IP Helper name it by).</summary>
    public string Name { get; }

    /// <summary>The adapter's NET_LUID (WintunGetAdapterLUID): addresses and routes are bound to it.</summary>
    public ulong Luid { get; }

    public int Mtu { get; }

    public static WintunDevice Create(string name, string tunnelType, int mtu, int ringCapacity = 0x400000)
    {
        WintunLimits.ValidateRingCapacity(ringCapacity);
        var path = WintunLocator.Resolve(AppContext.BaseDirectory, RuntimeInformation.ProcessArchitecture);
        var lib = NativeLibrary.Load(path);
        var create = (delegate* unmanaged<char*, char*, Guid*, nint>)NativeLibrary.GetExport(lib, "WintunCreateAdapter");
        var start = (delegate* unmanaged<nint, uint, nint>)NativeLibrary.GetExport(lib, "WintunStartSession");
        nint adapter;
        fixed (char* n = name)
        fixed (char* t = tunnelType)
        {
            adapter = create(n, t, null);
        }
        if (adapter == 0)
            throw new TunDeviceException("TunOpenFailed", $"WintunCreateAdapter failed (error {Marshal.GetLastSystemError()}); run as Administrator.", target: name);
        var session = start(adapter, (uint)ringCapacity);
        if (session == 0)
        {
            ((delegate* unmanaged<nint, void>)NativeLibrary.GetExport(lib, "WintunCloseAdapter"))(adapter);
            throw new TunDeviceException("TunOpenFailed", "WintunStartSession failed.", target: name);
        }
        ulong luid;
        ((delegate* unmanaged<nint, ulong*, void>)NativeLibrary.GetExport(lib, "WintunGetAdapterLUID"))(adapter, &luid);
        // Windows may have given the adapter another alias than the one asked for (one already taken): use its own.
        return new WintunDevice(lib, adapter, session, Routes.WindowsRouteTable.AliasOf(luid) ?? name, luid, mtu);
    }

    public int ReadPacket(Span<byte> buffer) => _gate.Read(buffer, _readCore);

    private int ReadPacketCore(Span<byte> buffer)
    {
        var handles = stackalloc nint[2] { _readEvent, _quitEvent };
        while (Volatile.Read(ref _disposed) == 0)
        {
            uint size;
            var packet = _receive(_session, &size);
            if (packet != null)
            {
                try
                {
                    if (size > buffer.Length) continue; // larger than our MTU: drop
                    new ReadOnlySpan<byte>(packet, (int)size).CopyTo(buffer);
                    return (int)size;
                }
                finally
                {
                    _release(_session, packet);
                }
            }
            if (Marshal.GetLastSystemError() != ErrorNoMoreItems) return 0;
            WaitForMultipleObjects(2, handles, 0, 0xFFFFFFFF);
        }
        return 0;
    }

    public void WritePacket(ReadOnlySpan<byte> packet)
    {
        if (!WintunLimits.CanSend(packet) || !_gate.TryEnter()) return;
        try
        {
            var dst = _allocate(_session, (uint)packet.Length);
            if (dst == null) return; // ring full: the packet is lost, TCP recovers
            packet.CopyTo(new Span<byte>(dst, packet.Length));
            _send(_session, dst);
        }
        finally
        {
            _gate.Exit();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // Calls in flight still use the session and the library: wake the reader and let them leave first. One stuck
        // past the timeout keeps them (a leak) rather than running into freed memory.
        if (!_gate.Close(() => SetEvent(_quitEvent), TimeSpan.FromSeconds(5))) return;
        _endSession(_session);
        _closeAdapter(_adapter);
        CloseHandle(_quitEvent);
        NativeLibrary.Free(_library);
    }

    [DllImport("kernel32", SetLastError = true, CharSet = CharSet.Unicode)]
#pragma warning disable SYSLIB1054, CA5392 // kernel32 is a known system DLL
    private static extern nint CreateEventW(nint attributes, int manualReset, int initialState, string? name);

    [DllImport("kernel32", SetLastError = true)]
    private static extern int SetEvent(nint handle);

    [DllImport("kernel32", SetLastError = true)]
    private static extern int CloseHandle(nint handle);

    [DllImport("kernel32", SetLastError = true)]
    private static extern uint WaitForMultipleObjects(uint count, nint* handles, int waitAll, uint milliseconds);
#pragma warning restore SYSLIB1054, CA5392
}
