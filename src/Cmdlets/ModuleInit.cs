using System.Management.Automation;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace KtConnect.Cmdlets;

/// <summary>
/// Loads KtConnect.Engine and everything it depends on from <c>Dependencies/</c> into a private
/// AssemblyLoadContext, so that our YamlDotNet (or any later dependency) never meets another module's copy.
/// The default context asks us only for what it cannot find itself; we answer with the private context's copy
/// of any assembly shipped in <c>Dependencies/</c>, so nothing of ours is ever loaded into the default context.
/// No public type of this assembly may name an engine type in its shape (base type, interface, generic
/// constraint): PowerShell enumerates them before <see cref="OnImport"/> runs (tests/Unit/Module checks this).
/// </summary>
public sealed class ModuleInit : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private static readonly string DependencyDirectory =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleInit).Assembly.Location) ?? ".", "Dependencies");

    private static readonly DependencyLoadContext Context = new(DependencyDirectory);

    private static PosixSignalRegistration[] _signals = [];

    public void OnImport()
    {
        AssemblyLoadContext.Default.Resolving += ResolveDependency;
        // Since .NET 10 a SIGTERM (a CI agent cancelling, a supervisor) or SIGHUP (a closed terminal; on Windows the console
        // window's close and shutdown) ends the process without ProcessExit: the sessions are stopped here first. Not
        // cancelled, so the signal's own action (the end of pwsh) follows; pwsh started with them ignored keeps ignoring them.
        _signals = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGHUP }.Select(signal =>
            PosixSignalRegistration.Create(signal, _ => ModuleLifetime.OnRemove(Context)))];
    }

    /// <summary>Remove-Module: every session this module started is stopped and undone before the module goes.</summary>
    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        try
        {
            ModuleLifetime.OnRemove(Context);
        }
        finally
        {
            foreach (var registration in _signals) registration.Dispose();
            _signals = [];
            AssemblyLoadContext.Default.Resolving -= ResolveDependency;
        }
    }

    private static Assembly? ResolveDependency(AssemblyLoadContext defaultContext, AssemblyName name) =>
        Context.Ships(name) ? Context.LoadFromAssemblyName(name) : null;
}

/// <summary>What runs when the module is removed, or pwsh is terminated: the sessions of this process are stopped and undone.</summary>
internal static class ModuleLifetime
{
    internal static void OnRemove(DependencyLoadContext context)
    {
        // An engine never loaded has no sessions; loading it only to find none would be wasted work.
        if (!context.Assemblies.Any(a => a.GetName().Name == "KtConnect.Engine")) return;
        StopSessions();
    }

    // Separate method: its body names engine types, so it is compiled only when the engine is already loaded.
    private static void StopSessions() => KtConnect.Engine.Sessions.SessionRegistry.Default.StopAll();
}

internal sealed class DependencyLoadContext : AssemblyLoadContext
{
    private readonly string _directory;

    public DependencyLoadContext(string directory)
        : base("KtConnect", isCollectible: false)
    {
        _directory = directory;
    }

    /// <summary>Whether <c>Dependencies/</c> holds this assembly.</summary>
    internal bool Ships(AssemblyName name) => name.Name is { Length: > 0 } n && File.Exists(PathOf(n));

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        if (assemblyName.Name is not { Length: > 0 } n) return null;
        var path = PathOf(n);
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }

    private string PathOf(string simpleName) => Path.Combine(_directory, simpleName + ".dll");

    /// <summary>
    /// Native libraries (wintun) ship per RID under Dependencies/runtimes/&lt;rid&gt;/native. The architecture
    /// is checked here, and a missing file is left to the engine's resolver, which names the paths it searched.
    /// </summary>
    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        var rid = NativeRid();
        if (rid is null) return IntPtr.Zero;
        var file = OperatingSystem.IsWindows() ? unmanagedDllName + ".dll"
            : OperatingSystem.IsMacOS() ? "lib" + unmanagedDllName + ".dylib"
            : "lib" + unmanagedDllName + ".so";
        var path = Path.Combine(_directory, "runtimes", rid, "native", file);
        return File.Exists(path) ? LoadUnmanagedDllFromPath(path) : IntPtr.Zero;
    }

    internal static string? NativeRid()
    {
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : OperatingSystem.IsLinux() ? "linux" : null;
        var arch = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x64",
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            _ => null,
        };
        return os is null || arch is null ? null : os + "-" + arch;
    }
}
