using System.Management.Automation;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace KtConnect.Cmdlets;

/// <summary>
/// Loads KtConnect.Engine and everything it depends on from <c>Dependencies/</c> into a private
/// AssemblyLoadContext, so that our YamlDotNet (or any later dependency) never meets another module's copy.
/// Only the Engine's own name is answered from the default context; the private context answers the rest.
/// </summary>
public sealed class ModuleInit : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private static readonly string DependencyDirectory =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleInit).Assembly.Location) ?? ".", "Dependencies");

    private static readonly DependencyLoadContext Context = new(DependencyDirectory);

    public void OnImport() => AssemblyLoadContext.Default.Resolving += ResolveEngine;

    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        ModuleLifetime.OnRemove();
        AssemblyLoadContext.Default.Resolving -= ResolveEngine;
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext defaultContext, AssemblyName name) =>
        string.Equals(name.Name, "KtConnect.Engine", StringComparison.Ordinal) ? Context.LoadFromAssemblyName(name) : null;
}

/// <summary>Hooks run when the module is removed; sessions register their cleanup here.</summary>
public static class ModuleLifetime
{
    private static readonly List<Action> Hooks = [];

    public static void Register(Action onRemove)
    {
        lock (Hooks) Hooks.Add(onRemove);
    }

    internal static void OnRemove()
    {
        Action[] hooks;
        lock (Hooks)
        {
            hooks = [.. Hooks];
            Hooks.Clear();
        }
        foreach (var hook in hooks) hook();
    }
}

internal sealed class DependencyLoadContext : AssemblyLoadContext
{
    private readonly string _directory;

    public DependencyLoadContext(string directory)
        : base("KtConnect", isCollectible: false)
    {
        _directory = directory;
    }

    protected override Assembly? Load(AssemblyName assemblyName)
    {
        var path = Path.Combine(_directory, assemblyName.Name + ".dll");
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }

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
