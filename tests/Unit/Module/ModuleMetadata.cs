using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace KtConnect.Tests.Unit.Module;

/// <summary>
/// The built KtConnect.Cmdlets.dll read with MetadataLoadContext: the cmdlets' shape (attributes, parameters,
/// output types, what loading a type needs) is checked from metadata, against the manifest and the help pages in
/// the source tree, fast and without pwsh. tests/Pester runs the built module in a real pwsh.
/// </summary>
public sealed class ModuleMetadata : IDisposable
{
    private readonly MetadataLoadContext _context;

    public ModuleMetadata()
    {
        RepoRoot = FindRepoRoot();
        Configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name; // bin/<cfg>/net10.0
        CmdletsPath = Path.Combine(RepoRoot, "src", "Cmdlets", "bin", Configuration, "net8.0", "KtConnect.Cmdlets.dll");
        EnginePath = Path.Combine(Path.GetDirectoryName(CmdletsPath)!, "KtConnect.Engine.dll");
        var paths = new List<string>(Directory.GetFiles(RuntimeEnvironment.GetRuntimeDirectory(), "*.dll"))
        {
            CmdletsPath,
            EnginePath,
            FindPowerShellReferenceAssembly(),
        };
        paths.AddRange(Directory.GetFiles(Path.GetDirectoryName(CmdletsPath)!, "*.dll")
            .Where(p => !paths.Any(q => Path.GetFileName(q) == Path.GetFileName(p))));
        _context = new MetadataLoadContext(new PathAssemblyResolver(paths));
        Cmdlets = _context.LoadFromAssemblyPath(CmdletsPath);
        Engine = _context.LoadFromAssemblyPath(EnginePath);
    }

    public string RepoRoot { get; }

    /// <summary>Debug or Release: the configuration this test assembly was built in.</summary>
    public string Configuration { get; }

    public string CmdletsPath { get; }

    public string EnginePath { get; }

    public Assembly Cmdlets { get; }

    public Assembly Engine { get; }

    public void Dispose() => _context.Dispose();

    public Assembly LoadReferenced(AssemblyName name) => _context.LoadFromAssemblyName(name);

    public string ManifestText => File.ReadAllText(Path.Combine(RepoRoot, "KtConnect.Module", "KtConnect.psd1"));

    /// <summary>The names in a manifest list such as <c>CmdletsToExport = @('A', 'B')</c>.</summary>
    public IReadOnlyList<string> ManifestList(string key)
    {
        var m = Regex.Match(ManifestText, key + @"\s*=\s*@\(([^)]*)\)", RegexOptions.Singleline);
        Assert.True(m.Success, $"{key} is not an explicit @() list in the manifest");
        return Regex.Matches(m.Groups[1].Value, "'([^']+)'").Select(x => x.Groups[1].Value).ToList();
    }

    public string ManifestValue(string key)
    {
        var m = Regex.Match(ManifestText, @"^\s*" + key + @"\s*=\s*'([^']*)'", RegexOptions.Multiline);
        Assert.True(m.Success, $"{key} is not set in the manifest");
        return m.Groups[1].Value;
    }

    /// <summary>Every public type with [Cmdlet], with its PowerShell name (Verb-Noun).</summary>
    public IReadOnlyList<(Type Type, string Name, CustomAttributeData Attribute)> CmdletTypes() =>
        Cmdlets.GetTypes()
            .Select(t => (t, a: t.GetCustomAttributesData().FirstOrDefault(a => a.AttributeType.FullName == "System.Management.Automation.CmdletAttribute")))
            .Where(x => x.a is not null)
            .Select(x => (x.t, $"{x.a!.ConstructorArguments[0].Value}-{x.a.ConstructorArguments[1].Value}", x.a!))
            .OrderBy(x => x.Item2, StringComparer.Ordinal)
            .ToList();

    public static object? Named(CustomAttributeData attribute, string name) =>
        attribute.NamedArguments.FirstOrDefault(n => n.MemberName == name).TypedValue.Value;

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "KtConnect.slnx"))) return dir.FullName;
        }
        throw new InvalidOperationException("cannot find the repository root above " + AppContext.BaseDirectory);
    }

    /// <summary>PowerShellStandard.Library's reference assembly, from the package folder restore used.</summary>
    private string FindPowerShellReferenceAssembly()
    {
        var assets = Path.Combine(RepoRoot, "src", "Cmdlets", "obj", "project.assets.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(assets));
        foreach (var folder in doc.RootElement.GetProperty("packageFolders").EnumerateObject())
        {
            var candidate = Path.Combine(folder.Name, "powershellstandard.library", "5.1.0-preview-06", "lib", "netstandard2.0",
                "System.Management.Automation.dll");
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException("PowerShellStandard.Library is not in any restored package folder");
    }
}
